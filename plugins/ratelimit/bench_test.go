package main

import (
	"testing"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// benchConfigs are allowances no benchmark loop can exhaust, so every
// request is an allowed take: the hit path. The longest period keeps each
// key's theoretical arrival time ahead of the clock (a take moves it 16
// ms): over "1s" it fell behind within a nanosecond, the key was at its
// full burst, and when the two keys of "two" shared a shard (1 run in 64,
// by the shards' random seed) each insert dropped the other as expired,
// so every request inserted both again (4 allocations).
var benchConfigs = []struct{ name, config string }{
	{"value", `{"policies":[{"name":"peruser","key":"value:identity-sub","limit":2147483647,"period":"9600h"}]}`},
	{"value-noheaders", `{"headers":false,"policies":[{"name":"peruser","key":"value:identity-sub","limit":2147483647,"period":"9600h"}]}`},
	{"ip", `{"policies":[{"name":"perip","key":"ip","limit":2147483647,"period":"9600h"}]}`},
	{"two", `{"policies":[{"name":"peruser","key":"value:identity-sub","limit":2147483647,"period":"9600h"},
		{"name":"perip","key":"ip","limit":2147483647,"period":"9600h"}]}`},
}

// benchRequest is a request with the identity an auth plugin verified.
func benchExchange() *host.MemExchange {
	return &host.MemExchange{Req: host.Request{Method: "GET", Scheme: "https", Host: "api.example",
		Path: "/items", Proto: "HTTP/1.1", ClientAddr: "203.0.113.7:40000", ID: "bench"}}
}

// nextRequest readies x for the next request as the edge does with its
// pooled exchanges: storage kept, contents gone, the identity set.
func nextRequest(x *host.MemExchange, req host.Request) {
	x.Reset()
	x.Req = req
	x.Vals.Set([]byte("identity-sub"), []byte("alice"), abi.ValueForward)
}

// BenchmarkTakeWasm is an allowed request through the real Wasm build:
// "request" is the request phase on a reused exchange, "chain" both phases
// as the edge calls them (the response phase is skipped by the host when
// the plugin has none). Host allocations are reported; the guest's own
// show as time (its GC), and TestHitPathAllocs holds the plugin logic to
// none natively.
func BenchmarkTakeWasm(b *testing.B) {
	for _, c := range benchConfigs {
		p := wasmtest.Load(b, ".", []byte(c.config))
		x := benchExchange()
		req := x.Req
		b.Run(c.name+"/request", func(b *testing.B) {
			b.ReportAllocs()
			defer wasmtest.ReportCPU(b)()
			for b.Loop() {
				nextRequest(x, req)
				if act, err := p.OnRequest(x); act != abi.ActionContinue || err != nil {
					b.Fatal(act, err)
				}
			}
		})
		b.Run(c.name+"/chain", func(b *testing.B) {
			b.ReportAllocs()
			defer wasmtest.ReportCPU(b)()
			for b.Loop() {
				nextRequest(x, req)
				if act, err := p.OnRequest(x); act != abi.ActionContinue || err != nil {
					b.Fatal(act, err)
				}
				if err := p.OnResponse(x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// refuseConfigs are allowances the first request spends, so every
// request after it is refused: the 429 answer.
var refuseConfigs = []struct{ name, config string }{
	{"value", `{"policies":[{"name":"peruser","key":"value:identity-sub","limit":1,"period":"24h"}]}`},
	{"two", `{"policies":[{"name":"peruser","key":"value:identity-sub","limit":1,"period":"24h"},
		{"name":"perip","key":"ip","limit":1,"period":"24h"}]}`},
}

// BenchmarkRefuseWasm is a refused request through the real Wasm build:
// the request phase that answers 429 with Retry-After, the RateLimit
// fields and the problem body, on a reused exchange.
func BenchmarkRefuseWasm(b *testing.B) {
	for _, c := range refuseConfigs {
		p := wasmtest.Load(b, ".", []byte(c.config))
		x := benchExchange()
		req := x.Req
		nextRequest(x, req)
		if act, err := p.OnRequest(x); act != abi.ActionContinue || err != nil {
			b.Fatal(act, err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			defer wasmtest.ReportCPU(b)()
			for b.Loop() {
				nextRequest(x, req)
				if act, err := p.OnRequest(x); act != abi.ActionAnswer || err != nil || x.Resp.Status != 429 {
					b.Fatal(act, err, x.Resp.Status)
				}
			}
		})
	}
}
