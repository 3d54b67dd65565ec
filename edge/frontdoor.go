package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/wasm/abi"
)

// frontDoor serves HTTP/2 and HTTP/3 requests through the node's one
// request path: it turns a net/http request into a fasthttp.RequestCtx,
// runs the handler HTTP/1.1 requests run (Node.serve: routing, the plugin
// chain, the origin), and writes the ctx's response to the
// http.ResponseWriter.
//
// # Why
//
// One core, several front doors: HTTP/2 and HTTP/3 differ from HTTP/1.1 in
// framing and multiplexing, not in what the edge does with a request, so a
// second implementation of the request path would be a second set of
// checks to keep equal. The request is handed to fasthttp as an HTTP/1.1
// header section that fasthttp parses, so RawHeaders, which lenient and
// fromHTTP read, are there as for HTTP/1.1, and the request line names the
// protocol (HTTP/2.0, HTTP/3.0) that plugins and the origin see. The
// request's pseudo-header fields and fields are checked here before they
// are written out, so none can add a line the client did not send.
type frontDoor struct {
	n         *Node
	proto     string // the request line's protocol: HTTP/2.0 or HTTP/3.0
	requests  prometheus.Counter
	resets    prometheus.Counter
	maxResets int64
	advertise bool      // Alt-Svc names HTTP/3 once it is served (HTTP/2)
	heads     sync.Pool // *frontHead

	// read_timeout and write_timeout, which bound a request's stream as
	// they bound an HTTP/1.1 connection (frontStream). readTimeout is 0
	// over HTTP/2, whose server arms it on each stream itself.
	readTimeout, writeTimeout time.Duration
}

// frontHead is a request as the core sees it, pooled: its header section
// as fasthttp reads it (the bytes, and a reader sized to max_header_bytes,
// so a larger section gets 431, as over HTTP/1.1, that later reads the
// body), and its connection.
type frontHead struct {
	b    []byte
	rd   bytes.Reader
	br   *bufio.Reader
	conn frontStream
}

var (
	frontCtxs   = sync.Pool{New: func() any { return new(fasthttp.RequestCtx) }}
	copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

func newFrontDoor(n *Node, proto, label string, maxResets int) *frontDoor {
	f := &frontDoor{n: n, proto: proto, requests: n.doors.requests.WithLabelValues(label),
		resets: n.doors.resets.WithLabelValues(label), maxResets: int64(maxResets),
		writeTimeout: time.Duration(n.cfg.Limits.WriteTimeout)}
	size := n.cfg.Limits.MaxHeaderBytes
	f.heads.New = func() any { return &frontHead{br: bufio.NewReaderSize(nil, size)} }
	return f
}

// peerKey keys the *peer of a request's connection in its context.
type peerKey struct{}

// peer is one HTTP/2 or HTTP/3 client connection as the fasthttp core sees
// it, through the stream of each request: RemoteAddr, LocalAddr and IsTLS
// answer as they do for HTTP/1.1. No bytes pass through it: responses go
// to the http.ResponseWriter, and nothing the core writes to a connection
// (interim responses, hijacking) applies to a request that is not
// HTTP/1.1.
type peer struct {
	remote, local net.Addr
	state         tls.ConnectionState
	// end closes the client's connection (too many early resets).
	end     func()
	endOnce sync.Once
	streams atomic.Int64 // requests the connection brought
	resets  atomic.Int64 // of them, those the client reset before their answer
}

var errNotAStream = errors.New("edge: an HTTP/2 or HTTP/3 request's connection carries no bytes of its own")

func (p *peer) Read([]byte) (int, error)  { return 0, errNotAStream }
func (p *peer) Write([]byte) (int, error) { return 0, errNotAStream }
func (p *peer) Close() error              { return nil }
func (p *peer) LocalAddr() net.Addr       { return p.local }
func (p *peer) RemoteAddr() net.Addr      { return p.remote }

// Handshake and ConnectionState are how fasthttp tells HTTPS
// (RequestCtx.IsTLS); every HTTP/2 or HTTP/3 connection of the node is TLS.
func (p *peer) Handshake() error                     { return nil }
func (p *peer) ConnectionState() tls.ConnectionState { return p.state }

// frontStream is the net.Conn a front door's RequestCtx is initialised with:
// the client's connection (peer), whose read deadline is that of the
// request's stream. The core moves a connection's read deadline on as a
// streamed body comes (stream.go: read_timeout bounds a stall, not the
// whole body); here that moves the HTTP/2 or HTTP/3 stream's, which the
// connection's deadline would not (it carries other streams), and which
// the HTTP/2 server otherwise arms once per stream, for the whole of it.
//
// Write deadlines the core sets are ignored: it sets one before it waits
// for the origin's next chunk, and a stream's deadline, unlike a
// connection's, resets the stream when it passes even with no write
// pending. The front door arms the stream's write deadline around each
// write itself (write).
//
// Context is the request's, which the HTTP/2 and HTTP/3 servers end when
// the client resets the stream or the connection closes: a
// connwatch.Stream, so the origin client's hang-up watch waits on it
// where an HTTP/1.1 request's watches the socket, which here carries the
// connection's other streams (or is UDP).
type frontStream struct {
	*peer
	rc  http.ResponseController
	ctx context.Context
}

func (s *frontStream) Context() context.Context { return s.ctx }

func (s *frontStream) SetDeadline(t time.Time) error     { return s.rc.SetReadDeadline(t) }
func (s *frontStream) SetReadDeadline(t time.Time) error { return s.rc.SetReadDeadline(t) }
func (s *frontStream) SetWriteDeadline(time.Time) error  { return nil }

// ServeHTTP is one HTTP/2 or HTTP/3 request.
func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, _ := r.Context().Value(peerKey{}).(*peer)
	if p == nil {
		http.Error(w, "500 Internal Server Error: no connection state", http.StatusInternalServerError)
		return
	}
	p.streams.Add(1)
	if r.Context().Err() != nil {
		// Reset before it started: nothing to run.
		f.reset(p)
		return
	}
	// A reset while the request runs counts at once: the connection of a
	// client resetting what the node is working on ends before that work
	// is done.
	stop := context.AfterFunc(r.Context(), func() { f.reset(p) })
	defer stop()
	f.requests.Inc()
	ctx := frontCtxs.Get().(*fasthttp.RequestCtx)
	h := f.heads.Get().(*frontHead)
	defer func() {
		ctx.Request.Reset()
		// Closes the body stream, which gives its bytes back to the writes.
		ctx.Response.Reset()
		frontCtxs.Put(ctx)
		h.rd.Reset(nil)
		h.br.Reset(nil)
		h.conn = frontStream{}
		f.heads.Put(h)
	}()
	// The controller is copied into h, pooled: no allocation per request.
	h.conn = frontStream{peer: p, rc: *http.NewResponseController(w), ctx: r.Context()}
	// read_timeout bounds the request from here, as from its first byte
	// over HTTP/1.1 (the HTTP/3 server arms no deadline of its own);
	// write_timeout each write of its answer, not the time the core works
	// on it (write).
	if f.readTimeout > 0 {
		h.conn.SetReadDeadline(time.Now().Add(f.readTimeout))
	}
	h.conn.rc.SetWriteDeadline(time.Time{})
	ctx.Init2(&h.conn, slogPrintf{f.n.log}, true)
	ctx.Request.Header.DisableNormalizing()
	ctx.Response.Header.DisableNormalizing()
	ctx.Response.Header.SetNoDefaultContentType(true)
	if status, msg := f.read(ctx, h, r); status != 0 {
		f.n.m.refused.WithLabelValues(strconv.Itoa(status)).Inc()
		text := strconv.Itoa(status) + " " + http.StatusText(status) + ": " + msg
		http.Error(w, text, status)
		// Logged as an HTTP/1.1 refusal is (transportError): from what
		// the access log reads, ctx's answer.
		ctx.Error(text+"\n", status)
		f.n.logUnserved(ctx)
		return
	}
	f.n.serve(ctx)
	// The answer is the client's from here: a cancel while it is written
	// (a player seeking away from a download) is no rapid reset, and
	// counting it cut the connection's other streams.
	stop()
	date(&ctx.Response.Header)
	f.write(w, r, ctx, &h.conn.rc)
}

// read puts r into ctx as fasthttp would have read it from an HTTP/1.1
// connection, within the same limits; a status other than 0 refuses it.
func (f *frontDoor) read(ctx *fasthttp.RequestCtx, h *frontHead, r *http.Request) (status int, msg string) {
	var ok bool
	if h.b, ok = f.head(h.b[:0], r); !ok {
		return http.StatusBadRequest, "malformed request"
	}
	h.rd.Reset(h.b)
	h.br.Reset(&h.rd)
	if err := ctx.Request.Header.Read(h.br); err != nil {
		return transportClass(err)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return 0, ""
	}
	if f.n.cfg.Limits.StreamThreshold > 0 {
		// The core takes it as it takes a streamed HTTP/1.1 body: whole
		// when small, else a prefix and the rest as it comes, within the
		// route's maximum (stream.go). -1 is a body of unknown length.
		ctx.Request.SetBodyStream(r.Body, int(r.ContentLength))
		return 0, ""
	}
	// Read whole, within the bound fasthttp gives an HTTP/1.1 body of
	// this route (headerReceived).
	maxBody := f.n.cfg.Limits.MaxBodyBytes
	if rc := f.n.headerReceived(&ctx.Request.Header); rc.MaxRequestBodySize > 0 {
		maxBody = rc.MaxRequestBodySize
	}
	if r.ContentLength > int64(maxBody) {
		return transportClass(fasthttp.ErrBodyTooLarge)
	}
	// -2: the body runs to its end, as the stream says, whatever its
	// Content-Length (which the HTTP/2 and HTTP/3 servers hold it to).
	h.br.Reset(r.Body)
	if err := ctx.Request.ReadBody(h.br, -2, maxBody); err != nil {
		return transportClass(err)
	}
	return 0, ""
}

// head appends r's header section, as an HTTP/1.1 client would send it, to
// dst: the request line with f's protocol, Host from :authority, then the
// fields, sorted by name (the order the fields of different names came in
// is gone in r.Header; each name's values keep theirs). Content-Length is
// left out: the body follows from the stream, not from it. ok is false if
// a method, target, authority or field could not be written as sent.
func (f *frontDoor) head(dst []byte, r *http.Request) (_ []byte, ok bool) {
	if !abi.ValidToken(r.Method) || !validTarget(r.RequestURI) || r.Host == "" || !abi.ValidHeaderValue(r.Host) {
		return dst, false
	}
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = append(dst, r.RequestURI...)
	dst = append(dst, ' ')
	dst = append(dst, f.proto...)
	dst = append(dst, "\r\nHost: "...)
	dst = append(dst, r.Host...)
	dst = append(dst, "\r\n"...)
	for _, name := range slices.Sorted(maps.Keys(r.Header)) {
		if !abi.ValidHeaderName(name) {
			return dst, false
		}
		if name == "Content-Length" || name == "Host" {
			continue
		}
		for _, v := range r.Header[name] {
			if !abi.ValidHeaderValue(v) {
				return dst, false
			}
			dst = append(dst, name...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...), true
}

// validTarget reports whether a request target can stand in a request
// line as sent: no spaces, controls or DEL, and not empty.
func validTarget(s string) bool {
	for i := range len(s) {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return s != ""
}

// write sends the response the core left in ctx to w: status, fields
// (without the hop-by-hop ones HTTP/2 and HTTP/3 forbid), and body, flushed
// per chunk when it is a stream. write_timeout bounds each write to the
// stream, as it bounds a stall over HTTP/1.1, not the whole body; the
// stream has no write deadline while a chunk is awaited from the origin.
func (f *frontDoor) write(w http.ResponseWriter, r *http.Request, ctx *fasthttp.RequestCtx, rc *http.ResponseController) {
	hdr := w.Header()
	for k, v := range ctx.Response.Header.All() {
		name := string(k)
		if hopByHop(name) {
			continue
		}
		hdr.Add(name, string(v))
	}
	if _, ok := hdr["Content-Type"]; !ok {
		// net/http would sniff one; the edge sends what the origin sent.
		hdr["Content-Type"] = nil
	}
	if a := f.n.doors.altSvc.Load(); f.advertise && a != nil && hdr.Get("Alt-Svc") == "" {
		hdr.Set("Alt-Svc", *a)
	}
	resp := &ctx.Response
	status := resp.StatusCode()
	// Content-Length as fasthttp frames it: none on a response that has
	// no body by its status (RFC 9110 §8.6); on one to HEAD the length a
	// GET's body would have (§9.3.2), which serve left in the header: the
	// HTTP/3 server wrote the 0 bytes it sent otherwise, and HTTP/2 none.
	framed := status >= 200 && status != 204 && status != 304
	stream := resp.BodyStream()
	rc.SetWriteDeadline(time.Now().Add(f.writeTimeout))
	if r.Method == http.MethodHead {
		if cl := resp.Header.ContentLength(); cl >= 0 && framed {
			hdr.Set("Content-Length", strconv.Itoa(cl))
		}
		w.WriteHeader(status)
		return
	}
	if stream == nil {
		if framed {
			hdr.Set("Content-Length", strconv.Itoa(len(resp.Body())))
		}
		w.WriteHeader(status)
		w.Write(resp.Body())
		return
	}
	if cl := resp.Header.ContentLength(); cl >= 0 && framed {
		hdr.Set("Content-Length", strconv.Itoa(cl))
	}
	w.WriteHeader(status)
	if b, ok := stream.(*body); ok {
		// A body that lies whole in memory: one write.
		b.WriteTo(w)
		return
	}
	// A streamed body: each chunk goes to the client as it comes, so
	// events of an event stream are not held back.
	rc.SetWriteDeadline(time.Time{})
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		n, err := stream.Read(*buf)
		if n > 0 {
			rc.SetWriteDeadline(time.Now().Add(f.writeTimeout))
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return
			}
			rc.Flush()
			rc.SetWriteDeadline(time.Time{})
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				f.n.log.Warn("edge: response body stream failed", "proto", f.proto, "err", err)
			}
			return
		}
	}
}

// reset counts a stream the client reset before its answer was written,
// and closes the connection of a client that resets too many: past
// maxResets of them, and more than half of the streams it opened. A client
// that cancels what it asked for now and then is never cut off; one that
// opens streams only to reset them (CVE-2023-44487, "rapid reset") makes
// the node start work it then throws away, and is.
func (f *frontDoor) reset(p *peer) {
	f.resets.Inc()
	if r := p.resets.Add(1); r > f.maxResets && 2*r > p.streams.Load() {
		p.endOnce.Do(p.end)
	}
}

// viaFrontDoor reports whether ctx is an HTTP/2 or HTTP/3 request the
// front door made, whose request line names its protocol, rather than an
// HTTP/1.1 connection's (lenient refuses other versions there).
func viaFrontDoor(ctx *fasthttp.RequestCtx) bool {
	_, ok := ctx.Conn().(*frontStream)
	return ok
}
