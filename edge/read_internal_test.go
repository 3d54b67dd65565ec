package edge

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestReadsLeftBehind: what a request took and never claimed (its
// connection failed where neither handler runs) goes back when its header
// is taken again (the server's next request on that context) or once it
// is older than read_timeout, so the limit does not wear away.
func TestReadsLeftBehind(t *testing.T) {
	r := &reads{}
	r.init(&Limits{MaxReadBytes: 100, MaxHeaderBytes: 10, ReadTimeout: Duration(1 << 40)})
	header := func(size int) *fasthttp.RequestHeader {
		h := new(fasthttp.RequestHeader)
		h.SetContentLength(size)
		return h
	}
	a, b := header(60), header(60)
	if !r.take(a) || r.take(b) {
		t.Fatal("60 then 60 of 100: want the first taken, the second refused")
	}
	if r.claim(b) != fasthttp.StatusServiceUnavailable || r.claim(b) != 0 {
		t.Fatal("claim of the refused one: want refused once")
	}
	if !r.take(a) || r.bytes.Load() != 60 {
		t.Fatalf("a taken again: %d bytes held, want its 60 once", r.bytes.Load())
	}
	if small := header(10); !r.take(small) || r.pending.Load() != 1 {
		t.Fatal("a body no longer than the gate: want taken, not held")
	}

	r.stale = 1 // a is now left behind
	if c := header(60); !r.take(c) || r.bytes.Load() != 60 || r.pending.Load() != 1 {
		t.Fatalf("after the sweep: %d bytes in %d entries, want c's 60 alone", r.bytes.Load(), r.pending.Load())
	}
}
