package main

import (
	"strings"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// BenchmarkMissNoStoreWasm is the response phase of a miss whose answer
// cannot be stored (Cache-Control: no-store), through the real Wasm build:
// the miss the edge benchmark measures. The request phase runs once; each
// iteration restores the origin's header and runs the response phase.
func BenchmarkMissNoStoreWasm(b *testing.B) {
	p := wasmtest.Load(b, ".", nil)
	req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/miss", RawQuery: "a=1"}
	ex := host.MemExchange{Req: req}
	if act, err := p.OnRequest(&ex); act != abi.ActionContinue || err != nil {
		b.Fatal("not a forward", act, err)
	}
	origin := []host.HeaderField{
		{Name: "Cache-Control", Value: "no-store"},
		{Name: "Content-Type", Value: "text/plain"},
		{Name: "Date", Value: "Fri, 27 Nov 2026 12:00:00 GMT"},
		{Name: "Last-Modified", Value: "Fri, 27 Nov 2026 11:00:00 GMT"},
		{Name: "Vary", Value: "Accept-Encoding"},
	}
	ex.Resp = host.Response{Status: 200, Body: []byte("hello")}
	b.ReportAllocs()
	defer wasmtest.ReportCPU(b)()
	for b.Loop() {
		ex.Resp.Header.Fields = append(ex.Resp.Header.Fields[:0], origin...)
		if err := p.OnResponse(&ex); err != nil {
			b.Fatal(err)
		}
	}
	if cs, _ := ex.Resp.Header.Get("Cache-Status"); cs != "wedge; fwd=uri-miss; fwd-status=200; detail=no-store" {
		b.Fatalf("Cache-Status %q", cs)
	}
}

// readLog is an exchange that records which header fields a plugin reads.
type readLog struct {
	*host.MemExchange
	reads []string // "request Name" or "response Name"
}

func (x *readLog) note(m abi.Msg, name []byte) {
	which := "response "
	if m == abi.MsgRequest {
		which = "request "
	}
	x.reads = append(x.reads, which+string(name))
}

func (x *readLog) HeaderGet(m abi.Msg, name []byte) ([]byte, bool) {
	x.note(m, name)
	return x.MemExchange.HeaderGet(m, name)
}

func (x *readLog) AppendHeaderValues(dst []byte, m abi.Msg, name []byte) []byte {
	x.note(m, name)
	return x.MemExchange.AppendHeaderValues(dst, m, name)
}

// TestNoStoreReadsNoMore: a response that cannot be stored is decided from
// its status and directives alone; the fields only a stored response needs
// (dates, Age, validators, Vary, tags) and the request's Authorization are
// not read. (Expires is looked at for its presence, with the directives.) A miss answered with no-store is the common miss, and in a Go
// guest each parse costs what a whole hit should.
func TestNoStoreReadsNoMore(t *testing.T) {
	p := wasmtest.Load(t, ".", nil)
	for _, cc := range []string{"no-store", "private, max-age=60"} {
		req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/lean"}
		req.Header.Add("Authorization", "Bearer x")
		ex := &readLog{MemExchange: &host.MemExchange{Req: req}}
		if act, err := p.OnRequest(ex); act != abi.ActionContinue || err != nil {
			t.Fatal("not a forward", act, err)
		}
		ex.Resp = host.Response{Status: 200, Body: []byte("hello")}
		for _, f := range [][2]string{{"Cache-Control", cc}, {"Date", "Fri, 27 Nov 2026 12:00:00 GMT"},
			{"Last-Modified", "Fri, 27 Nov 2026 11:00:00 GMT"}, {"Expires", "Fri, 27 Nov 2026 13:00:00 GMT"},
			{"Age", "3"}, {"ETag", `"e"`}, {"Vary", "Accept-Encoding"}, {"Surrogate-Key", "a"}} {
			ex.Resp.Header.Add(f[0], f[1])
		}
		ex.reads = nil
		if err := p.OnResponse(ex); err != nil {
			t.Fatal(err)
		}
		if cs, _ := ex.Resp.Header.Get("Cache-Status"); !strings.HasSuffix(cs, "; fwd-status=200; detail="+strings.Split(cc, ",")[0]) {
			t.Fatalf("%s: Cache-Status %q", cc, cs)
		}
		for _, r := range ex.reads {
			switch r {
			case "response Date", "response Last-Modified", "response Age", "response ETag",
				"response Vary", "response Surrogate-Key", "response Cache-Tag", "request Authorization":
				t.Errorf("%s: the response phase read %s", cc, r)
			}
		}
	}
}

// BenchmarkHitReusedWasm is a fresh hit, both phases, through the real
// Wasm build on one exchange reused from request to request as the edge
// reuses its own: what is left in allocs/op is the host's, and cpu-ns/op
// is the CPU the whole hit costs, whatever else runs on the machine.
func BenchmarkHitReusedWasm(b *testing.B) {
	p := wasmtest.Load(b, ".", nil)
	p.Origin = func(*host.Request) host.Response {
		r := host.Response{Status: 200, Body: []byte("hello")}
		r.Header.Add("Cache-Control", "max-age=3600")
		r.Header.Add("ETag", `"e"`)
		return r
	}
	req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/bench", RawQuery: "a=1"}
	p.Do(req) // stores
	ex := &host.MemExchange{Req: req}
	b.ReportAllocs()
	defer wasmtest.ReportCPU(b)()
	for b.Loop() {
		ex.Reset()
		ex.Req = req
		if act, err := p.OnRequest(ex); act != abi.ActionAnswer || err != nil {
			b.Fatal("not a hit", err)
		}
		if err := p.OnResponse(ex); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMissRequestWasm is the request phase of a GET miss through the
// real Wasm build, on one exchange reused as the edge reuses its own: the
// forward cache_request prepares, and what the plugin adds to it.
func BenchmarkMissRequestWasm(b *testing.B) {
	p := wasmtest.Load(b, ".", nil)
	req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/miss", RawQuery: "a=1"}
	ex := &host.MemExchange{Req: req}
	b.ReportAllocs()
	defer wasmtest.ReportCPU(b)()
	for b.Loop() {
		ex.Reset()
		ex.Req = req
		if act, err := p.OnRequest(ex); act != abi.ActionContinue || err != nil {
			b.Fatal("not a forward", act, err)
		}
	}
}
