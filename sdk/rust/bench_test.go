package rust_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// hellos are the two plugins with the same logic the benchmarks compare.
var hellos = []struct{ name, dir string }{{"go", goHello}, {"rust", rustHello}}

// BenchmarkHello compares the Go and the Rust hello, the axes:
//
//   - call: one GET /hello?name=Ada through both phases (the request phase
//     answers, the response phase sets X-Hello), in ns/op and cpu-ns/op,
//     with module-bytes, the size of the module built;
//   - instantiate: the time to instantiate and configure one instance, in
//     us/instance: loading 33 instances less loading 1, over 32;
//   - memory: the linear memory of one instance after 10,000 calls, in
//     KiB/instance.
//
// Run it as deploy/bench does: under flock /tmp/wedge-bench.lock, with
// -count 3 or more.
func BenchmarkHello(b *testing.B) {
	for _, h := range hellos {
		bin := wasmtest.Build(b, h.dir)
		b.Run(h.name+"/call", func(b *testing.B) {
			rt := wasmtest.NewRuntime(b, wasm.NewConfig())
			p := wasmtest.LoadSpec(b, rt, wasm.Spec{Name: "hello", Version: "bench", Binary: bin})
			x := &host.MemExchange{}
			defer wasmtest.ReportCPU(b)()
			b.ReportAllocs()
			for b.Loop() {
				helloCall(b, p.Module, x)
			}
			// After the loop: b.Loop's timer reset drops earlier metrics.
			b.ReportMetric(float64(len(bin)), "module-bytes")
		})
		b.Run(h.name+"/instantiate", func(b *testing.B) {
			rt := wasmtest.NewRuntime(b, wasm.NewConfig())
			load := func(n int) time.Duration {
				start := time.Now()
				m, err := rt.Load(context.Background(), wasm.Spec{Name: "hello", Version: "bench", Binary: bin, PoolSize: n})
				if err != nil {
					b.Fatal(err)
				}
				d := time.Since(start)
				m.Close()
				return d
			}
			load(1) // compiles, once
			var per time.Duration
			for b.Loop() {
				per += (load(33) - load(1)) / 32
			}
			b.ReportMetric(float64(per.Microseconds())/float64(b.N), "us/instance")
		})
		b.Run(h.name+"/memory", func(b *testing.B) {
			reg := prometheus.NewRegistry()
			rt := wasmtest.NewRuntime(b, wasm.NewConfig().WithPoolSize(1).WithRegisterer(reg))
			p := wasmtest.LoadSpec(b, rt, wasm.Spec{Name: "hello", Version: "bench", Binary: bin})
			x := &host.MemExchange{}
			for b.Loop() {
				for range 10000 {
					helloCall(b, p.Module, x)
				}
			}
			mem := wasmtest.Metric(b, reg, "wedge_plugin_memory_bytes", map[string]string{"plugin": "hello", "version": "bench"})
			b.ReportMetric(mem/1024, "KiB/instance")
		})
	}
}

// helloCall runs GET /hello?name=Ada through both phases of m.
func helloCall(b *testing.B, m *wasm.Module, x *host.MemExchange) {
	x.Reset()
	x.Req.Method, x.Req.Path, x.Req.RawQuery = "GET", "/hello", "name=Ada"
	if act, err := m.OnRequest(x); err != nil || act != abi.ActionAnswer {
		b.Fatal(act, err)
	}
	if err := m.OnResponse(x); err != nil || x.Resp.Status != 200 {
		b.Fatal(x.Resp.Status, err)
	}
}
