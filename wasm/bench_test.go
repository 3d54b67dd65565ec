package wasm_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/internal/wasmbin"
	"github.com/talowa/wedge/wasm/wasmtest"
)

const hs256Secret = "bench-secret, 32 bytes for HS256"

// hs256Tokens returns n distinct valid tokens (sub differs), signed ahead of
// the timed loop. The host never caches HMAC results, so no token is cheaper
// for having been seen.
func hs256Tokens(n int) []string {
	exp := time.Now().Add(time.Hour).Unix()
	toks := make([]string, n)
	for i := range toks {
		tok, err := jwstest.Token("HS256", []byte(hs256Secret), "", map[string]any{"sub": "user-" + strconv.Itoa(i), "exp": exp})
		if err != nil {
			panic(err)
		}
		toks[i] = "Bearer " + tok
	}
	return toks
}

func loadBench(b *testing.B, guestName string, cfg wasm.Config, config string) (*wasm.Module, *prometheus.Registry) {
	b.Helper()
	reg := prometheus.NewRegistry()
	rt := wasmtest.NewRuntime(b, cfg.WithRegisterer(reg))
	p := wasmtest.LoadSpec(b, rt, wasm.Spec{Name: guestName, Version: "bench", Binary: guest(b, guestName), Config: []byte(config)})
	return p.Module, reg
}

// BenchmarkCallNoop is the fixed cost of a plugin call: pool checkout, the
// guest export, metrics, return. Runaway protection is on, as in production.
func BenchmarkCallNoop(b *testing.B) {
	m, _ := loadBench(b, "noop", wasm.NewConfig(), "")
	x := &host.MemExchange{}
	b.ReportAllocs()
	for b.Loop() {
		if act, err := m.OnRequest(x); err != nil || act != abi.ActionContinue {
			b.Fatal(act, err)
		}
	}
}

// BenchmarkCallBare is the host's share of BenchmarkCallNoop: the same call
// on a hand-made module whose on_request only returns, so what is left is
// the pool, the deadline, the metrics and wazero's entry and exit, without
// the Go guest runtime's export wrapper.
func BenchmarkCallBare(b *testing.B) {
	funcs, exports := abiExports("")
	for i := range exports {
		exports[i].Index = uint32(i)
	}
	m := wasmbin.Module{Funcs: funcs, Exports: append(exports, wasmbin.Export{Name: "memory", Memory: true}),
		Memory: &wasmbin.Limits{Min: 1}}
	rt := wasmtest.NewRuntime(b, wasm.NewConfig())
	p := wasmtest.LoadSpec(b, rt, wasm.Spec{Name: "bare", Version: "bench", Binary: m.Encode()})
	x := &host.MemExchange{}
	b.ReportAllocs()
	for b.Loop() {
		if act, err := p.OnRequest(x); err != nil || act != abi.ActionContinue {
			b.Fatal(act, err)
		}
	}
}

// BenchmarkCallNoopParallel is the same call from GOMAXPROCS goroutines.
func BenchmarkCallNoopParallel(b *testing.B) {
	m, _ := loadBench(b, "noop", wasm.NewConfig(), "")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := &host.MemExchange{}
		for pb.Next() {
			if _, err := m.OnRequest(x); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchHS256(b *testing.B, protected bool) {
	m, _ := loadBench(b, "hs256", wasm.NewConfig().WithProtection(protected), hs256Secret)
	toks := hs256Tokens(min(b.N, 1<<20))
	x := &host.MemExchange{}
	x.Req.Header.Add("Authorization", "")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x.Req.Header.Fields[0].Value = toks[i%len(toks)]
		if act, err := m.OnRequest(x); err != nil || act != abi.ActionContinue {
			b.Fatalf("token %d: action %d, status %d, %v", i, act, x.Resp.Status, err)
		}
	}
}

// BenchmarkCallAuthHS256 reads a bearer token, parses the JWT in the guest
// and verifies it through host crypto, a different token each iteration,
// without runaway protection.
func BenchmarkCallAuthHS256(b *testing.B) { benchHS256(b, false) }

// BenchmarkCallAuthHS256Protected is the same with runaway protection on:
// the fuel check at every guest loop header.
func BenchmarkCallAuthHS256Protected(b *testing.B) { benchHS256(b, true) }

// BenchmarkInstanceMemory reports the linear memory of one instance after
// 10,000 HS256 calls (memory only grows, so this is its high-water mark).
func BenchmarkInstanceMemory(b *testing.B) {
	m, reg := loadBench(b, "hs256", wasm.NewConfig().WithPoolSize(1), hs256Secret)
	toks := hs256Tokens(10000)
	x := &host.MemExchange{}
	x.Req.Header.Add("Authorization", "")
	labels := map[string]string{"plugin": "hs256", "version": "bench"}
	before := wasmtest.Metric(b, reg, "wedge_plugin_memory_bytes", labels)
	for b.Loop() {
		for _, tok := range toks {
			x.Req.Header.Fields[0].Value = tok
			if _, err := m.OnRequest(x); err != nil {
				b.Fatal(err)
			}
		}
	}
	after := wasmtest.Metric(b, reg, "wedge_plugin_memory_bytes", labels)
	b.ReportMetric(before/(1<<20), "MiB-before")
	b.ReportMetric(after/(1<<20), "MiB-after-10k-calls")
}
