package edge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// reads bounds, node-wide, the request bodies the HTTP/1.1 server is
// reading whole (limits.stream_threshold unset), within
// Limits.MaxReadBytes: from the end of the header section to the handler.
//
// # Why
//
// fasthttp allocates a body's whole Content-Length as soon as the header
// section is read, before a byte of the body arrives: 100 connections that
// each announced 8 MiB and sent nothing held 860 MB. So a body past
// max_header_bytes takes its announced length from the limit before it is
// read (the server's HeaderReceived hook), and one that finds no room is
// refused with 503 and Retry-After before anything is allocated. Smaller
// bodies cost a connection no more than its header section may.
//
// HeaderReceived sees only the request's header, so what it took is kept
// under the header's address, which is its request's for as long as the
// request lasts; the handler, once the body is in, or the error handler
// claims it and gives it back. A read body is then the request's, which
// the concurrency limit bounds (overload.go). A request that reaches
// neither (its connection failed as the server wrote 100 Continue) leaves
// an entry behind: one older than read_timeout, which bounds the body's
// read, is given back by the next sweep.
//
// With bodies streamed (limits.stream_threshold set) nothing is counted,
// and the entries are the HTTP/1.0 requests headerReceived refuses with
// 413 before their body is read (refuse).
type reads struct {
	limit   int64 // bytes that may be held; 0: none are counted (bodies stream)
	gate    int64 // bodies up to this long are not counted
	stale   int64 // an entry this old (ns) is left behind
	bytes   atomic.Int64
	pending atomic.Int64 // entries in held: a request skips the lock while there are none

	mu    sync.Mutex
	held  map[*fasthttp.RequestHeader]heldBody
	swept int64 // sinceStart of the last sweep
}

// heldBody is what a request's body took: cost 0 when it found no room,
// or when it is too large to be read at all.
type heldBody struct {
	cost  int64
	at    int64 // sinceStart
	large bool  // past its route's bound (refuse)
}

func (r *reads) init(l *Limits) {
	r.held = map[*fasthttp.RequestHeader]heldBody{}
	if l.StreamThreshold > 0 {
		return // bodies stream, and a buffer grows only as bytes arrive (stream.go)
	}
	r.limit, r.gate = int64(l.MaxReadBytes), int64(l.MaxHeaderBytes)
	r.stale = int64(time.Duration(l.ReadTimeout) + time.Second)
}

// take takes h's announced body length from the limit; false if it has no
// room (the request is refused: its body must not be read).
func (r *reads) take(h *fasthttp.RequestHeader) bool {
	size := int64(h.ContentLength())
	if r.limit == 0 || size <= r.gate {
		return true
	}
	now := sinceStart()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now-r.swept > r.stale {
		r.swept = now
		for k, e := range r.held {
			if now-e.at > r.stale {
				r.dropLocked(k, e)
			}
		}
	}
	if e, ok := r.held[h]; ok {
		r.dropLocked(h, e) // h's request before this one left it
	}
	e := heldBody{cost: size, at: now}
	if r.bytes.Add(size) > r.limit {
		r.bytes.Add(-size)
		e.cost = 0
	}
	r.held[h] = e
	r.pending.Add(1)
	return e.cost > 0
}

// refuse keeps that h's request is refused with 413, its body unread
// (headerReceived). The handler, or the error handler if its target does
// not parse, claims it: no read happens between, so none is left behind.
func (r *reads) refuse(h *fasthttp.RequestHeader) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.held[h]; ok {
		r.dropLocked(h, e)
	}
	r.held[h] = heldBody{at: sinceStart(), large: true}
	r.pending.Add(1)
}

func (r *reads) dropLocked(h *fasthttp.RequestHeader, e heldBody) {
	delete(r.held, h)
	r.pending.Add(-1)
	r.bytes.Add(-e.cost)
}

// refused reports that h's request found no room, without ending it.
func (r *reads) refused(h *fasthttp.RequestHeader) bool {
	if r.pending.Load() == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.held[h]
	return ok && e.cost == 0 && !e.large
}

// claim ends what h's request took: the bytes go back, and it returns the
// status the request is refused with: 503 when take found no room for its
// body, 413 when refuse refused it, 0 when it is served.
func (r *reads) claim(h *fasthttp.RequestHeader) (status int) {
	if r.pending.Load() == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.held[h]
	switch {
	case !ok:
		return 0
	case e.large:
		status = fasthttp.StatusRequestEntityTooLarge
	case e.cost == 0:
		status = fasthttp.StatusServiceUnavailable
	}
	r.dropLocked(h, e)
	return status
}

// headerReceivedH1 is the HTTP/1.1 server's HeaderReceived hook:
// headerReceived's bound, a body within it taking its length from the
// limit first, and the connection closed after a chunked request.
//
// fasthttp parses a chunked body's trailer section as leniently as it would
// a header section (a bare LF, obs-fold, a space in or after a name) and
// keeps no raw copy of it for lenient to check: "0\r\n\n" and then a
// request is one request to fasthttp and the start of the next, where a
// parser before the edge may read one longer request. Closing after the
// answer leaves nothing after a chunked body to be served: what a parser
// before the edge sent as part of this request cannot become another. It
// is decided here, before the body is read: fasthttp sets the length of an
// empty chunked body to 0 once read. The cost is a new connection after
// each chunked request, which browsers never send (their bodies have a
// length) and uploads of unknown length make once per body.
func (n *Node) headerReceivedH1(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() == -1 {
		h.SetConnectionClose()
	}
	rc := n.headerReceived(h)
	bound := rc.MaxRequestBodySize
	if bound == 0 {
		bound = n.srv.MaxRequestBodySize
	}
	if h.ContentLength() <= bound && !n.reads.take(h) {
		return fasthttp.RequestConfig{MaxRequestBodySize: 1} // readError answers it
	}
	return rc
}

// readError is the HTTP/1.1 server's ErrorHandler: a request whose body
// found no room in max_read_bytes gets 503, any other what
// transportError says.
func (n *Node) readError(ctx *fasthttp.RequestCtx, err error) {
	if n.reads.claim(&ctx.Request.Header) == fasthttp.StatusServiceUnavailable {
		n.readsFull(ctx)
	} else {
		n.transportError(ctx, err)
	}
	date(&ctx.Response.Header)
}

// readsFull answers a request whose body found no room in max_read_bytes.
func (n *Node) readsFull(ctx *fasthttp.RequestCtx) {
	n.m.shed.WithLabelValues("read_bytes").Inc()
	ctx.Error("503 Service Unavailable: too many request bodies being received, retry shortly\n", fasthttp.StatusServiceUnavailable)
	ctx.Response.Header.SetCanonical(retryAfterKey, retryAfter)
	ctx.SetConnectionClose() // its body may be on the way, unread
	n.logUnserved(ctx)
}
