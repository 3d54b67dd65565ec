package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// Streamed bodies. With limits.stream_threshold set, a request body larger
// than it, or of unknown length (chunked), is not read whole: the plugins see its first
// streamPrefix bytes (what a bounded body read asks for) and its full
// length, cannot replace it (wasm/abi/README.md, "Streamed bodies"), and the origin
// gets it as it comes, in chunks after the request's head
// (origin/wire/README.md, "Streamed bodies"). An answer the origin streams
// (a large body, one of unknown length, an event stream) goes to the client
// as it comes, each piece flushed. Either way the node holds a chunk of the
// body at a time, and a slow reader or writer at one end slows the other
// down rather than filling memory. The route's max_body_bytes bounds a
// request body (413, or the connection cut when a chunked one passes it),
// max_response_bytes a response (a streamed one is cut off mid-stream).

// streamPrefix is how much of a streamed request body plugins see.
const streamPrefix = abi.StreamedPrefix

// errTooLarge ends a streamed body past its route's maximum.
var errTooLarge = errors.New("edge: body larger than the route's maximum")

// routeMax is a route's bounds on its request and response bodies, from
// its config and the node's limits: no bound is 0.
func routeMax(rc *RouteConfig, l *Limits) (body, resp int64) {
	body = rc.MaxBodyBytes
	switch {
	case body == 0:
		body = int64(l.MaxBodyBytes)
	case body < 0:
		body = 0
	}
	if l.StreamThreshold <= 0 {
		// Bodies are read whole, within max_body_bytes.
		if body == 0 || body > int64(l.MaxBodyBytes) {
			body = int64(l.MaxBodyBytes)
		}
	}
	return body, max(rc.MaxResponseBytes, 0)
}

// headerReceived is the server's HeaderReceived hook: a request body past
// its route's maximum is refused before a byte of it is read. A body read
// whole gets the route's maximum as its bound, so fasthttp refuses it
// (413) on its Content-Length, or once a chunked one passes it. A
// streaming server would take a first piece of the body before the
// handler runs, which a client that sent only the header waits for until
// read_timeout: an HTTP/1.1 request gets an Expect of 100-continue
// instead (parsed, not in the header section passed on), and expect
// refuses it. fasthttp ignores an Expect in HTTP/1.0, which has none, so
// such a request is kept for refusal (reads.refuse) and its length set to
// 0, leaving fasthttp no body to read; the handler answers it as expect
// does, and the connection closes, its body unread.
func (n *Node) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if n.cfg.Limits.StreamThreshold <= 0 && !n.gen.Load().routeBodies {
		return fasthttp.RequestConfig{} // the server's bound is every route's: no lookup
	}
	if cl := h.ContentLength(); cl == 0 || cl == -2 {
		return fasthttp.RequestConfig{} // no body
	}
	rt := n.route(h)
	if rt == nil || rt.maxBody <= 0 {
		return fasthttp.RequestConfig{}
	}
	if n.cfg.Limits.StreamThreshold <= 0 {
		return fasthttp.RequestConfig{MaxRequestBodySize: int(rt.maxBody)}
	}
	switch {
	case int64(h.ContentLength()) <= rt.maxBody:
	case h.IsHTTP11():
		h.Set(fasthttp.HeaderExpect, "100-continue")
	default:
		n.reads.refuse(h)
		h.SetContentLength(0)
		h.SetConnectionClose()
	}
	return fasthttp.RequestConfig{}
}

// expect is the server's ExpectHandler: 413 for a declared body past the
// route's maximum, 503 for one the node sheds now or has no room to read,
// else fasthttp answers 100 Continue and reads on.
func (n *Node) expect(ctx *fasthttp.RequestCtx) int {
	rt := n.route(&ctx.Request.Header)
	if rt != nil && rt.maxBody > 0 && int64(ctx.Request.Header.ContentLength()) > rt.maxBody {
		n.reads.claim(&ctx.Request.Header) // no handler runs to claim it
		n.tooLarge(ctx)
		// fasthttp writes this answer without running the handler, which
		// dates the others (RFC 9110 §6.6.1).
		date(&ctx.Response.Header)
		return fasthttp.StatusRequestEntityTooLarge
	}
	if n.load.early(ctx) { // overload.go
		// Its body may be on the way regardless: not read, so not kept.
		ctx.SetConnectionClose()
		n.logUnserved(ctx)
		date(&ctx.Response.Header)
		return fasthttp.StatusServiceUnavailable
	}
	if n.reads.refused(&ctx.Request.Header) {
		// Refused before the client sends its body, not after.
		n.reads.claim(&ctx.Request.Header)
		n.readsFull(ctx)
		date(&ctx.Response.Header)
		return fasthttp.StatusServiceUnavailable
	}
	return fasthttp.StatusContinue
}

// tooLarge answers a request whose announced body is past its route's
// maximum before a byte of the body is read (expect, headerReceived); the
// connection closes after it, the body unread.
func (n *Node) tooLarge(ctx *fasthttp.RequestCtx) {
	n.m.refused.WithLabelValues("413").Inc()
	ctx.Error("413 Request Entity Too Large: request body larger than the limit\n", fasthttp.StatusRequestEntityTooLarge)
	ctx.SetConnectionClose()
	n.logUnserved(ctx)
}

// route is the route a request header names, matched as serve matches
// it: on the host and normalized path of the request's URI, so that an
// absolute-form target or an escaped path gets its route's bounds too.
func (n *Node) route(h *fasthttp.RequestHeader) *route {
	u := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(u)
	_ = u.Parse(h.Host(), h.RequestURI()) // as ctx.URI(): what parsed is what serve routes on
	return n.gen.Load().router.match(u.Host(), u.Path())
}

// stream is what one request streams: its pooled exchange holds it.
type stream struct {
	buf   []byte             // the body read whole, or what was read of a streamed one
	in    io.Reader          // the rest of a streamed request body; nil when whole
	size  int64              // a streamed body's Content-Length; -1 for chunked
	idle  idleReader         // the client's body as read, kept here so a request allocates none
	body  *originclient.Body // the origin's streamed answer
	store *pendingStore      // the cache entry its body completes
	// inErr is what the client's body gave as the origin link read it (the
	// link may read on a goroutine of its own), and refused that the
	// answer is the client's fault: its connection holds unread bytes.
	inErr   atomic.Pointer[error]
	refused bool
}

// clientBody is the rest of a streamed request body as the origin link
// reads it, keeping the first error the client's side gave.
type clientBody struct{ s *stream }

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.s.in.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.s.inErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// reset closes what a request left open.
func (s *stream) reset() {
	if s.body != nil {
		s.body.Close()
	}
	s.in, s.body, s.store, s.refused, s.idle = nil, nil, nil, false, idleReader{}
	s.inErr.Store(nil)
	if cap(s.buf) > streamPrefix {
		s.buf = nil
	}
}

// readBody reads the request body as the route allows: whole when it is
// small, else its prefix, leaving the rest to stream. It answers the
// client itself (413, 408, 400) and returns false when the body cannot be
// taken.
func (n *Node) readBody(ctx *fasthttp.RequestCtx, x *exchange, rt *route) bool {
	s := &x.st
	s.buf = s.buf[:0]
	size := ctx.Request.Header.ContentLength()
	if size > 0 && rt.maxBody > 0 && int64(size) > rt.maxBody {
		n.m.refused.WithLabelValues("413").Inc()
		ctx.Error("413 Request Entity Too Large: request body larger than the limit\n", fasthttp.StatusRequestEntityTooLarge)
		ctx.SetConnectionClose()
		return false
	}
	src := ctx.RequestBodyStream()
	switch {
	case src == nil:
		// Read whole already: request bodies do not stream
		// (stream_threshold not set), or a front door (h2.go) read it.
		x.Req.Body = ctx.Request.Body()
		return true
	case size == 0 || size == -2:
		x.Req.Body = nil
		return true
	}
	// A body with a length within the threshold, or within the prefix
	// plugins see, is read whole; one past both up to that prefix. A
	// chunked one is read up to the larger of the two: one that ends within
	// it goes whole as well. read_timeout bounds each stall of a body, whole or
	// not, as nginx's client_body_timeout does: bounding a whole one's
	// read refused a 900 KB upload from a phone at 60 KB/s (408 at 10 s)
	// that 1.5 MB, streamed, passed. max_conns bounds what slow senders
	// hold, and a buffer grows only as bytes arrive.
	thr := n.cfg.Limits.StreamThreshold
	whole := size > 0 && (size <= thr || size <= streamPrefix)
	s.idle = idleReader{r: src, c: ctx.Conn(), idle: n.srv.ReadTimeout}
	var in io.Reader = &s.idle
	if !whole && size > 0 {
		in = &fullReader{r: in, left: int64(size)}
	}
	if size == -1 && rt.maxBody > 0 {
		in = &maxReader{r: in, left: rt.maxBody}
	}
	want := int64(streamPrefix)
	switch {
	case whole:
		want = int64(size)
	case size == -1:
		want = int64(max(thr, streamPrefix)) + 1
	}
	// The buffer grows as bytes arrive, not to what the length claims, and
	// only a clean end of the body (io.EOF) ends it without an error: a
	// chunked body cut off (io.ErrUnexpectedEOF from fasthttp) fails here
	// rather than go to the origin as a whole one.
	var err error
	s.buf, err = readUpTo(s.buf[:0], in, want)
	if err == nil && size != -1 && int64(len(s.buf)) < want {
		err = io.ErrUnexpectedEOF // shorter than its Content-Length
	}
	switch {
	case err != nil:
		n.bodyFailed(ctx, err)
		return false
	case !whole && int64(len(s.buf)) == want:
		// Past the threshold, or the prefix of a longer body: the rest
		// streams, and plugins see its first streamPrefix bytes.
		s.in, s.size = in, int64(size)
		x.Req.Body, x.Req.Streamed = s.buf[:streamPrefix], s.size
		return true
	}
	x.Req.Body = s.buf
	return true
}

// readUpTo appends what r gives to buf until it holds max bytes or r ends
// (io.EOF, returned as nil), growing buf as the bytes arrive.
func readUpTo(buf []byte, r io.Reader, max int64) ([]byte, error) {
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), max)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// bodyFailed answers a request whose body could not be read.
func (n *Node) bodyFailed(ctx *fasthttp.RequestCtx, err error) {
	status, text := n.bodyRefused(err)
	ctx.Error(text, status)
	ctx.SetConnectionClose()
}

// bodyRefused is the answer to a request whose body could not be read,
// whether before the chain ran or as it streamed to the origin: the
// client's fault (413, 408, 400), never the origin's.
func (n *Node) bodyRefused(err error) (status int, text string) {
	status, msg := fasthttp.StatusBadRequest, "request body incomplete"
	var ne net.Error
	switch {
	case errors.Is(err, errTooLarge):
		status, msg = fasthttp.StatusRequestEntityTooLarge, "request body larger than the limit"
	case errors.As(err, &ne) && ne.Timeout():
		status, msg = fasthttp.StatusRequestTimeout, "request not received in time"
	}
	n.m.refused.WithLabelValues(fmt.Sprint(status)).Inc()
	return status, fmt.Sprintf("%d %s: %s\n", status, fasthttp.StatusMessage(status), msg)
}

// StoreAfter implements host.BodyStreamer: the cache gets a streamed
// response once its body has gone by to the client whole, if it is at most
// maxStreamedStore and the node's max_write_bytes had room for it as it
// gathered; one whose length says it is larger is refused now, so the
// cache's Cache-Status says it was not stored.
func (x *exchange) StoreAfter(cache host.Cache, key []byte, e *host.CacheEntry) bool {
	if n := streamedLength(&x.Resp); n > maxStreamedStore {
		return false
	}
	x.st.store = &pendingStore{cache: cache, key: bytes.Clone(key), e: e}
	return true
}

// maxStreamedStore is the largest streamed body the cache stores: what
// one response envelope holds.
const maxStreamedStore = wire.DefaultMaxEnvelope

// pendingStore is a cache entry waiting for its streamed body. The body
// gathered so far counts against the node's writes (max_write_bytes), as
// a whole body being written does: a thousand cacheable downloads in
// flight would otherwise hold up to maxStreamedStore each outside it.
type pendingStore struct {
	cache host.Cache
	key   []byte
	e     *host.CacheEntry
	w     *writes // what body counts against; set by send
	body  []byte
	over  bool // past maxStreamedStore or the writes' limit: dropped
	// dropped counts a drop: Cache-Status went out saying stored, so the
	// metric is where the truth shows. Set by send.
	dropped prometheus.Counter
}

// add gathers a piece of the body, giving up past the bounds.
func (p *pendingStore) add(b []byte) {
	if p.over || len(b) == 0 {
		return
	}
	if len(p.body)+len(b) > maxStreamedStore || !p.w.take(int64(len(b))) {
		p.drop()
		return
	}
	p.body = append(p.body, b...)
}

// drop gives the entry up, and the bytes it held back to the writes.
func (p *pendingStore) drop() {
	p.w.bytes.Add(-int64(len(p.body)))
	p.over, p.body = true, nil
	if p.dropped != nil {
		p.dropped.Inc()
	}
}

// commit stores the entry with the whole body: the cache holds it now,
// within its own bounds.
func (p *pendingStore) commit() {
	if p.over {
		return
	}
	r := *p.e.Response
	r.Body = p.body
	p.e.Response = &r
	p.cache.Set(p.key, p.e)
	p.w.bytes.Add(-int64(len(p.body)))
}

// streamedLength is a streamed body's length as the origin gave it
// (Content-Length in the head), or -1.
func streamedLength(r *host.Response) int64 {
	if v, ok := r.Header.Get("Content-Length"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}

// do sends the exchange to the origin, streaming what st streams; st is nil
// for a background revalidation, which takes its answer whole. client is
// the client's connection, watched while the answer is awaited (nil: not).
func (o *origin) do(deadline time.Time, idle time.Duration, wreq *wire.Request, wresp *wire.Response, st *stream, client net.Conn) error {
	if st == nil {
		return o.client.Do(deadline, wreq, wresp)
	}
	up := st.upload()
	if up != nil {
		wreq.Body = wreq.Body[:0]
		if st.size >= 0 {
			// The application gets the client's length, which its chunks
			// add up to (fullReader): some insist on one (uploads signed
			// for a size, progress, 411).
			wreq.AddHeader(contentLength, strconv.AppendInt(nil, st.size, 10))
		}
	}
	b, err := o.client.DoStream(deadline, wreq, up, idle, wresp, client)
	st.body = b
	return err
}

var contentLength = []byte("Content-Length")

// upload is the request body the origin gets as a stream: what was read
// of it, then the rest; nil when the body is whole. Plugins cannot replace
// a streamed body (host.Call.BodySet), so it goes as the client sent it.
func (s *stream) upload() io.Reader {
	if s.in == nil {
		return nil
	}
	return io.MultiReader(bytes.NewReader(s.buf), clientBody{s})
}

// send hands the origin's streamed answer to fasthttp, which writes it as
// it comes (chunked, each piece flushed) after the handler returns. A
// response a plugin gave a body of its own, or that has none (HEAD, 204,
// 304), drops it.
func (n *Node) send(ctx *fasthttp.RequestCtx, x *exchange, rt *route) {
	s := &x.st
	if s.refused {
		// The rest of the client's body is unread: the connection carries
		// no other request.
		ctx.SetConnectionClose()
	}
	if s.body == nil {
		return
	}
	body, store := s.body, s.store
	s.body, s.store = nil, nil
	st := ctx.Response.StatusCode()
	if len(x.Resp.Body) > 0 || ctx.IsHead() || st == fasthttp.StatusNoContent || st == fasthttp.StatusNotModified || st < 200 {
		body.Close()
		return
	}
	// A streamed answer holds a chunk at a time: that is what it counts
	// against the node's writes.
	if !n.writes.start(wire.MaxChunk) {
		body.Close()
		n.m.writeRefused.Inc()
		ctx.Response.ResetBody()
		ctx.Error("503 Service Unavailable: too many responses being written to slow clients\n", fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.Set("Retry-After", "5")
		ctx.SetConnectionClose()
		return
	}
	if store != nil {
		store.w, store.dropped = &n.writes, n.m.storeDropped
	}
	out := &sendBody{body: body, c: ctx.Conn(), idle: n.srv.WriteTimeout, w: &n.writes, max: rt.maxResponse, store: store}
	length := int(streamedLength(&x.Resp))
	if length < 0 && !ctx.Request.Header.IsHTTP11() && !viaFrontDoor(ctx) {
		n.sendUntilClose(ctx, out)
		return
	}
	// With the origin's length the client gets Content-Length, and a body
	// that comes up short fails the write rather than end early.
	ctx.Response.SetBodyStream(out, length)
}

// sendUntilClose writes a body of unknown length to an HTTP/1.0 client,
// which cannot read chunked (RFC 9112 §6.1: a server sends no
// Transfer-Encoding to one), as HTTP/1.0 ends such a body: by closing the
// connection. fasthttp chunks every body of unknown length, so the
// response is written on the connection taken over once the handler is
// done, the header as fasthttp would write it but with neither
// Content-Length nor Transfer-Encoding.
func (n *Node) sendUntilClose(ctx *fasthttp.RequestCtx, out *sendBody) {
	n.untilClose.Add(1)
	n.untilClose.n.Add(1)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer func() {
			out.Close()
			n.untilClose.n.Add(-1)
			n.untilClose.Done()
		}()
		h := &ctx.Response.Header
		h.Del(fasthttp.HeaderTransferEncoding)
		h.Del(fasthttp.HeaderConnection) // the keep-alive fasthttp gives a 1.0 client that asked
		h.SetContentLength(-2)           // neither field, and Connection: close
		if _, err := c.Write(h.Header()); err == nil {
			_, _ = io.Copy(c, out) // out moves the write deadline on
		}
	})
}

// sendBody is a streamed answer as fasthttp writes it: each read moves the
// client connection's write deadline on, so write_timeout bounds a stall
// rather than the whole body, and a body past the route's maximum ends the
// response mid-stream (the client sees it cut off, never a shorter
// complete one).
type sendBody struct {
	body  *originclient.Body
	c     net.Conn
	idle  time.Duration
	w     *writes
	max   int64 // the route's max_response_bytes; 0: no bound
	sent  int64
	store *pendingStore // the cache entry the body completes, if any
}

func (b *sendBody) Read(p []byte) (int, error) {
	if b.c != nil && b.idle > 0 {
		_ = b.c.SetWriteDeadline(time.Now().Add(b.idle))
	}
	n, err := b.body.Read(p)
	if b.sent += int64(n); b.max > 0 && b.sent > b.max {
		b.dropStore()
		return 0, errTooLarge
	}
	if b.store != nil {
		b.store.add(p[:n])
		if errors.Is(err, io.EOF) {
			// The origin's end chunk checked out: the body is whole.
			b.store.commit()
			b.store = nil
		}
	}
	return n, err
}

// Close is fasthttp done with the body, written or not.
func (b *sendBody) Close() error {
	b.body.Close()
	b.dropStore() // the body did not go by whole
	b.w.done(wire.MaxChunk)
	return nil
}

// dropStore gives up the cache entry the body was to complete.
func (b *sendBody) dropStore() {
	if b.store != nil {
		b.store.drop()
		b.store = nil
	}
}

// fullReader is a streamed body with a Content-Length: an end before that
// many bytes is io.ErrUnexpectedEOF. fasthttp's request stream ends a
// body its client cut off with a plain io.EOF, and the origin got a cut
// upload as a whole, shorter one.
type fullReader struct {
	r    io.Reader
	left int64
}

func (f *fullReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.left -= int64(n); errors.Is(err, io.EOF) && f.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// idleReader moves a connection's read deadline on before each read of a
// streamed request body: read_timeout bounds a stall, not the whole body.
type idleReader struct {
	r    io.Reader
	c    net.Conn
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.c != nil && r.idle > 0 {
		_ = r.c.SetReadDeadline(time.Now().Add(r.idle))
	}
	return r.r.Read(p)
}

// maxReader fails a body of unknown length once it passes the route's
// maximum.
type maxReader struct {
	r    io.Reader
	left int64
}

func (r *maxReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if r.left -= int64(n); r.left < 0 {
		// fasthttp closes the connection: the rest of the body is unread.
		return 0, errTooLarge
	}
	return n, err
}
