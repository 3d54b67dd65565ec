package edge

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// writes accounts for the responses the server is writing: how many, and
// the bytes of their bodies that nothing but the write holds, within a
// node-wide limit (Limits.MaxWriteBytes).
//
// # Why
//
// fasthttp holds a response until its client has taken all of it or the
// write deadline passes, so a client that reads slowly, or not at all,
// holds its body that long. Handing fasthttp a copy of each body made 300
// slow readers of one 8 MiB cached object hold 2.4 GB. Bodies are now
// handed over as they lie (a cached body is shared with the cache, which
// never writes into it again; any other is the request's own), so a cached
// body costs nothing per reader, and what only a write holds is counted
// against the limit. Past it a response is refused rather than queued: a
// queue would hold the very bytes the limit is for.
type writes struct {
	limit int64
	bytes atomic.Int64 // bodies only a write holds
	n     atomic.Int64 // responses handed to the server and not yet done
}

// start takes cost bytes for a response about to be handed to the server;
// false if the limit has no room for them.
func (w *writes) start(cost int64) bool {
	if !w.take(cost) {
		return false
	}
	w.n.Add(1)
	return true
}

// take counts cost more bytes held for a write; false if the limit has no
// room for them. Give them back with w.bytes.Add(-cost), or with done.
func (w *writes) take(cost int64) bool {
	// Add first and give back on failure: the bytes held never pass the
	// limit, at the price of a rare refusal while another start races.
	if cost > 0 && w.bytes.Add(cost) > w.limit {
		w.bytes.Add(-cost)
		return false
	}
	return true
}

func (w *writes) done(cost int64) {
	w.bytes.Add(-cost)
	w.n.Add(-1)
}

// body is a response body handed to fasthttp as a stream. fasthttp writes
// it with WriteTo, straight from b to the connection (past the part that
// fills its write buffer behind the header), and calls Close once it is
// done with it, written or not: after the write, or when the response is
// reset. That is when its bytes go back to the writes.
type body struct {
	b    []byte
	off  int
	cost int64
	w    *writes
	own  *[]byte // the answer buffer b lies in, back to its pool on Close
}

var bodyPool = sync.Pool{New: func() any { return new(body) }}

// setBody hands b to fasthttp without copying it; cost is what it counts
// against w, already taken with w.start; own, if not nil, is the pooled
// answer buffer b lies in.
func setBody(ctx *fasthttp.RequestCtx, b []byte, cost int64, w *writes, own *[]byte) {
	r := bodyPool.Get().(*body)
	r.b, r.cost, r.w, r.own = b, cost, w, own
	ctx.Response.SetBodyStream(r, len(b))
}

func (r *body) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// WriteTo writes what is left of the body in one call, so a large body
// goes to the connection without passing through a buffer.
func (r *body) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.b[r.off:])
	r.off += n
	return int64(n), err
}

// SupportsBodyWriteTo tells fasthttp that WriteTo may stand in for Read.
func (r *body) SupportsBodyWriteTo() bool { return true }

// Close is fasthttp saying it is done with the body.
func (r *body) Close() error {
	r.w.done(r.cost)
	if r.own != nil {
		answerPool.Put(r.own)
	}
	*r = body{}
	bodyPool.Put(r)
	return nil
}

// date gives a response without a Date field the node's clock (RFC 9110
// §6.6.1): the server adds none itself (NoDefaultDate), so that a Date the
// response carries, the origin's or a cached one, is the one sent.
func date(h *fasthttp.ResponseHeader) {
	if h.Peek("Date") != nil {
		return
	}
	setDate(h, httpDate(time.Now()))
}

// httpDate is now as an HTTP date. The text of the current second is
// kept, as fasthttp keeps its own: formatting costs more than a load, and
// every response the node dates itself needs it.
func httpDate(now time.Time) string {
	sec := now.Unix()
	if d := dateText.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &secondText{sec: sec, text: string(fasthttp.AppendHTTPDate(nil, now))}
	dateText.Store(d)
	return d.text
}

type secondText struct {
	sec  int64
	text string
}

var dateText atomic.Pointer[secondText]

// setDate puts a Date field with value v in h.
//
// fasthttp drops a Date that a handler adds (it calls the field its own),
// but keeps one that comes back from the trailer section, as a parsed one:
// so v is added while Date is announced as a trailer, and withdrawing the
// announcement moves it into the header section. h must announce no other
// trailers; the edge never does (Trailer is hop-by-hop).
func setDate(h *fasthttp.ResponseHeader, v string) {
	_ = h.SetTrailer("Date")
	h.Add("Date", v)
	_ = h.SetTrailer("")
}
