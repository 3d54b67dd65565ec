package main

import (
	"testing"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/host"
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
