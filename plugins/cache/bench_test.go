package main

import (
	"testing"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// BenchmarkPolicy is the pure policy work of a miss that is stored.
func BenchmarkPolicy(b *testing.B) {
	resp := h("Cache-Control", "public, max-age=60, stale-while-revalidate=30", "Date", httpDate(t0), "ETag", `"e"`, "Vary", "Accept-Encoding")
	req := h("Accept-Encoding", "gzip, br")
	b.ReportAllocs()
	for b.Loop() {
		p := readResponse(resp)
		names, star := varyNames(resp.Values("Vary"))
		_ = storable("GET", 200, directives{}, p, false, star)
		_, _ = freshness(p, 200, t0, 10, 0)
		_ = initialAge(p, t0, t0)
		_ = variant(names, req)
	}
}

// BenchmarkHitNative is a fresh hit through the native host: the plugin's
// share of a hit, minus the Wasm boundary.
func BenchmarkHitNative(b *testing.B) {
	hs := sdktest.New(b, &cache{}, nil)
	hs.Origin = func(*host.Request) host.Response {
		r := host.Response{Status: 200, Body: []byte("hello")}
		r.Header.Add("Cache-Control", "max-age=3600")
		return r
	}
	req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/bench"}
	hs.Do(req)
	b.ReportAllocs()
	for b.Loop() {
		if res := hs.Do(req); !res.Answered {
			b.Fatal("not a hit")
		}
	}
}

// BenchmarkHitWasm is a hit through the real Wasm build, as the edge runs
// it: "hit" is both phases, "request" and "response" each phase alone (the
// response phase of a hit only has to see that the request phase answered).
// Host allocations are reported; the guest's own show up as time (its GC).
func BenchmarkHitWasm(b *testing.B) {
	for _, c := range []struct {
		name   string
		header []string // request fields
		resp   []string // origin fields beside Cache-Control
	}{
		{"fresh", nil, nil},
		{"vary", []string{"Accept-Encoding", "gzip"}, []string{"Vary", "Accept-Encoding"}},
	} {
		p := wasmtest.Load(b, ".", nil)
		p.Origin = func(*host.Request) host.Response {
			r := host.Response{Status: 200, Body: []byte("hello")}
			r.Header.Add("Cache-Control", "max-age=3600")
			r.Header.Add("ETag", `"e"`)
			for i := 0; i+1 < len(c.resp); i += 2 {
				r.Header.Add(c.resp[i], c.resp[i+1])
			}
			return r
		}
		req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/bench", RawQuery: "a=1"}
		for i := 0; i+1 < len(c.header); i += 2 {
			req.Header.Add(c.header[i], c.header[i+1])
		}
		p.Do(req) // stores
		if !p.Do(req).Answered {
			b.Fatal("not a hit")
		}
		b.Run(c.name+"/hit", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res := p.Do(req); !res.Answered || res.Resp.Status != 200 {
					b.Fatal("not a hit")
				}
			}
		})
		b.Run(c.name+"/request", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ex := host.MemExchange{Req: req}
				if act, err := p.OnRequest(&ex); act != abi.ActionAnswer || err != nil {
					b.Fatal("not a hit", err)
				}
			}
		})
		b.Run(c.name+"/response", func(b *testing.B) {
			ex := host.MemExchange{Req: req}
			if act, err := p.OnRequest(&ex); act != abi.ActionAnswer || err != nil {
				b.Fatal("not a hit", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := p.OnResponse(&ex); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
