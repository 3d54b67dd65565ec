package origin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
)

// Streamed bodies (origin/wire/README.md, "Streamed bodies"). A request
// whose body streams arrives as a head and chunks (Content-Type
// application/wedge-stream); the proxy sends the body on to the upstream
// as it comes, chunked. An edge that takes streamed responses says so with
// Accept: application/wedge-stream; for its exchanges the proxy hands over
// an upstream body that is larger than ProxyConfig.StreamThreshold, of
// unknown length, or an event stream, and the server answers with a head
// and chunks as the upstream sends them. Each hop holds at most a chunk
// and its connection's buffers of a body: a slow reader slows the writer
// down.
//
// Only a Proxy streams. An in-process Handler gets a streamed request's
// body whole, up to the codec's MaxEnvelope, and answers whole.

var (
	streamContentType = []byte(wire.StreamContentType)
	headerAccept      = []byte("Accept")
	eventStream       = []byte("text/event-stream")
	contentLengthName = []byte("Content-Length")
)

// exchangeStream is what an exchange streams: the request body, when it
// arrived in chunks, and the upstream's response body, when the proxy
// handed it over. It lives in the exchange's job; the proxy reaches it
// through the handler's context.
type exchangeStream struct {
	x         wire.Exchange    // the exchange, at the end of the request body once it is read
	body      *wire.BodyReader // the streamed request body; nil when whole
	accept    bool             // the edge takes a streamed response
	idle      time.Duration
	threshold int           // the proxy's StreamThreshold
	upConn    net.Conn      // the upstream connection, while the request body goes out on it
	up        *upstreamBody // the upstream response body, once handed over
	// head is the header of a response whose body the transport is to
	// hand over (pending).
	head    headerInfo
	pending bool
	// stop is set once the upstream's answer was read (or failed) while
	// the request body still went out: the rest of it is not sent.
	stop atomic.Bool
}

// release closes what the exchange still holds of its streams.
func (st *exchangeStream) release() {
	if st.body != nil {
		st.body.Close()
	}
	if st.up != nil {
		st.up.Close()
	}
	*st = exchangeStream{}
}

// streamOf is the exchange's streaming state, nil for an exchange that
// streams nothing.
func streamOf(ctx context.Context) *exchangeStream {
	if c, ok := ctx.(*exchangeCtx); ok {
		return c.stream
	}
	return nil
}

// streamKey is the fasthttp.Request user value under which forward hands
// the exchange's stream state to strictTransport.
type streamKey struct{}

// prepare makes freq send the streamed request body of req, and lets the
// transport hand over the response body. A body whose head carries the
// client's Content-Length goes with it (chunked otherwise): fasthttp fails
// the request when the chunks add up to more or less.
func (st *exchangeStream) prepare(freq *fasthttp.Request, threshold int, req *wire.Request) {
	if st == nil || !st.accept && st.body == nil {
		return
	}
	st.threshold = threshold
	if st.body != nil {
		freq.SetBodyStream(&upstreamWriteReader{st: st}, declaredLength(req))
	}
	freq.SetUserValue(streamKey{}, st)
}

// declaredLength is the Content-Length a streamed request's head carries,
// or -1.
func declaredLength(req *wire.Request) int {
	for i := range req.Header {
		if f := &req.Header[i]; asciiEqualFold(f.Name, "content-length") {
			if n, err := strconv.ParseUint(string(f.Value), 10, 62); err == nil {
				return int(n)
			}
			return -1
		}
	}
	return -1
}

// sendsBody reports whether the request body streams: it cannot be sent
// again once it started, whatever the method.
func (st *exchangeStream) sendsBody() bool { return st != nil && st.body != nil }

// streamed reports whether the proxy handed over the response body.
func (st *exchangeStream) streamed() bool { return st != nil && st.up != nil }

// upstreamWriteReader reads the request body for fasthttp to write
// upstream, moving the upstream connection's deadline on with each piece:
// the exchange's budget bounds a stall, not the whole transfer.
type upstreamWriteReader struct{ st *exchangeStream }

func (r *upstreamWriteReader) Read(p []byte) (int, error) {
	if r.st.stop.Load() {
		return 0, errAnswered
	}
	n, err := r.st.body.Read(p)
	if c := r.st.upConn; c != nil && n > 0 {
		_ = c.SetDeadline(time.Now().Add(r.st.idle))
	}
	// Checked again after the deadline moved: roundTrip stops the writes
	// by setting stop, then the write deadline to now, so either this sees
	// stop or that deadline is the last one set.
	if r.st.stop.Load() {
		return 0, errAnswered
	}
	return n, err
}

// errAnswered ends the writing of a streamed request body that the
// upstream answered before its end.
var errAnswered = errors.New("origin: upstream answered before the request body's end")

// roundTrip writes req, whose body streams, on conn while it reads the
// answer from br, as net/http's Transport does. An application may answer
// before it read the whole body (401 without reading it, 413 past a size
// limit, as multer does) and close the connection: its answer is the one
// to pass on, not the failure of the writes that follow. Once the answer
// came the rest of the body is not sent upstream (endBody still reads it
// from the edge: the response is sealed against its end), and early
// reports that the connection, with part of a body on it, is not to be
// reused.
func (st *exchangeStream) roundTrip(hc *fasthttp.HostClient, conn net.Conn, br *bufio.Reader, req *fasthttp.Request,
	resp *fasthttp.Response, maxBody int, sink *wire.Response) (keep, early bool, err error) {
	type answer struct {
		keep bool
		err  error
	}
	read := make(chan answer, 1)
	head := req.Header.IsHead()
	go func() {
		keep, err := readResponse(br, head, resp, maxBody, sink, st)
		// A success whose body is still to come (handed over) may be an
		// application answering as it reads, full duplex: it gets the
		// rest of the body. Any other answer ends the request.
		if err != nil || !st.handing() || resp.StatusCode() >= 300 {
			st.stop.Store(true)
			_ = conn.SetWriteDeadline(time.Now())
		}
		read <- answer{keep, err}
	}()
	// The reads go through conn, whose watch (connwatch) is used from one
	// goroutine at a time; the writes bypass it, checked before.
	bw := hc.AcquireWriter(connwatch.Unwrap(conn))
	werr := req.Write(bw)
	if werr == nil {
		werr = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if werr != nil && !st.stop.Load() && !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		// The body failed, or the upstream stopped reading it for longer
		// than the budget: no answer is coming. One that closed the
		// connection may have answered first, and is waited for.
		_ = conn.SetReadDeadline(time.Now())
	}
	a := <-read
	switch {
	case a.err == nil:
		return a.keep && werr == nil, werr != nil, nil
	case werr != nil && !errors.Is(werr, errAnswered) && !isTimeout(werr):
		return false, false, werr
	}
	return false, false, a.err
}

// wants reports, for a response header block strictTransport checked,
// whether its body is to be handed over rather than read: the edge takes
// streamed responses and the body is large, of unknown length or an event
// stream.
func (st *exchangeStream) wants(info headerInfo, bodiless bool) bool {
	if st == nil || !st.accept || bodiless {
		return false
	}
	if info.chunked || info.length < 0 || info.length > int64(st.threshold) {
		st.head, st.pending = info, true
	}
	return st.pending
}

// handing reports whether the transport is to hand the body over (wants).
func (st *exchangeStream) handing() bool { return st != nil && st.pending }

// sending notes the upstream connection a streamed request body goes out
// on, whose deadline each piece of it moves on.
func (st *exchangeStream) sending(conn net.Conn) {
	if st == nil {
		return
	}
	st.pending = false
	if st.body != nil {
		st.upConn = conn
	}
}

// take hands the response body over, with the connection it is read from:
// done(keep) gives the connection and br back, to the pool if keep.
func (st *exchangeStream) take(conn net.Conn, br *bufio.Reader, done func(keep bool), resp *fasthttp.Response) {
	info := st.head
	st.pending, st.upConn = false, nil
	event := bytes.HasPrefix(resp.Header.ContentType(), eventStream)
	b := &upstreamBody{done: done, br: br, conn: conn, idle: st.idle, event: event, length: info.length, threshold: st.threshold}
	switch {
	case info.chunked:
		b.r = httputil.NewChunkedReader(br)
	case info.length >= 0:
		b.r = io.LimitReader(br, info.length)
	default:
		b.r = br // until the upstream closes the connection
		b.closes = true
	}
	st.up = b
}

// upstreamBody is an upstream response body read from its connection as
// the edge takes it. Close puts the connection back in the pool when the
// body was read to its end and nothing follows it, and closes it otherwise.
type upstreamBody struct {
	done   func(keep bool)
	br     *bufio.Reader
	conn   net.Conn
	r      io.Reader
	idle   time.Duration
	length int64
	// threshold is the size up to which a body of unknown length is
	// gathered first: one that ends within it travels whole, as before.
	threshold int
	event     bool // text/event-stream: passed on as it comes, never gathered
	closes    bool // the body ends when the connection does
	ended     bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if err := b.conn.SetReadDeadline(time.Now().Add(b.idle)); err != nil {
		return 0, err
	}
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		if lr, ok := b.r.(*io.LimitedReader); ok && lr.N > 0 {
			err = io.ErrUnexpectedEOF // the connection ended short of the length
		}
		b.ended = err == io.EOF
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if b.done == nil {
		return nil
	}
	b.done(b.ended && !b.closes && b.br.Buffered() == 0)
	b.done = nil
	return nil
}

// acceptsStream reports whether the edge takes a streamed response.
func acceptsStream(rc *fasthttp.RequestCtx) bool {
	return bytes.Contains(rc.Request.Header.PeekBytes(headerAccept), streamContentType)
}

// isStream reports whether the request is a streamed exchange's head and
// chunks.
func isStream(rc *fasthttp.RequestCtx) bool {
	return bytes.Equal(rc.Request.Header.ContentType(), streamContentType)
}

// readFrame reads a whole request frame, at most the codec's MaxEnvelope,
// into fp's storage, which it keeps (for the pool) unless it grew past
// maxPooled. The server streams request bodies (so that a streamed exchange
// is never held whole), so it reads this one itself.
func (s *Server) readFrame(rc *fasthttp.RequestCtx, fp *[]byte) ([]byte, error) {
	frame, err := s.readBody(rc, (*fp)[:0])
	if cap(frame) <= maxPooled && rc.RequestBodyStream() != nil {
		*fp = frame[:0]
	}
	return frame, err
}

func (s *Server) readBody(rc *fasthttp.RequestCtx, buf []byte) ([]byte, error) {
	n := rc.Request.Header.ContentLength()
	max := s.codec.MaxEnvelope()
	if n > max {
		// Refused on its length: let the sender finish writing, so it
		// reads the 413 rather than a reset.
		linger(rc)
		rc.SetConnectionClose()
		return buf[:0], fmt.Errorf("%w: frame of %d bytes, limit %d", wire.ErrTooLarge, n, max)
	}
	body := rc.RequestBodyStream()
	if body == nil {
		return rc.PostBody(), nil
	}
	// Read to the end (chunked) or to the length, within the bound. The
	// buffer grows as bytes arrive: until the frame is authenticated its
	// length is only a claim.
	limit := max + 1
	if n >= 0 {
		limit = n
	}
	buf, err := gather(buf[:0], body, limit)
	switch {
	case err == nil && n >= 0 && len(buf) < n:
		err = io.ErrUnexpectedEOF
	case len(buf) > max:
		return buf, fmt.Errorf("%w: frame larger than %d bytes", wire.ErrTooLarge, max)
	}
	if err != nil {
		return buf, fmt.Errorf("%w: reading the frame: %w", wire.ErrFrame, err)
	}
	return buf, nil
}

// deadlineReader moves a connection's read deadline on before each read
// of a streamed body: idle bounds a stall, not the whole body.
type deadlineReader struct {
	r    io.Reader
	c    net.Conn
	idle time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.c != nil {
		if err := d.c.SetReadDeadline(time.Now().Add(d.idle)); err != nil {
			return 0, err
		}
	}
	return d.r.Read(p)
}

// open reads and opens the request: a whole frame, or a streamed
// exchange's head. It authenticates what it read before the server gives
// the exchange anything more: a frame is read within the request's read
// timeout and a head within maxTime, both fixed, so that a peer without the
// key holds the connection no longer than one frame takes, however slowly
// it sends. A streamed body is left to come in as it is read (j.stream.body;
// readWhole for a handler that takes it whole). It returns the frame's
// size.
func (s *Server) open(rc *fasthttp.RequestCtx, j *job) (_ wire.Exchange, _ int, err error) {
	st := &j.stream
	*st = exchangeStream{idle: s.maxTime, accept: acceptsStream(rc)}
	fp := s.frames.Get().(*[]byte)
	defer s.frames.Put(fp)
	if !isStream(rc) {
		frame, err := s.readFrame(rc, fp)
		if err != nil {
			return wire.Exchange{}, len(frame), err
		}
		x, err := s.codec.DecodeRequest(frame, &j.req)
		st.x = x
		return x, len(frame), err
	}
	defer func() {
		if err != nil {
			// What is left of the body cannot be framed.
			rc.SetConnectionClose()
		}
	}()
	src := rc.RequestBodyStream()
	if c := rc.Conn(); c != nil {
		_ = c.SetReadDeadline(time.Now().Add(s.maxTime))
	}
	head, err := s.codec.ReadHead(src, (*fp)[:0])
	if cap(head) <= maxPooled {
		*fp = head[:0]
	}
	if err != nil {
		return wire.Exchange{}, len(head), err
	}
	if st.x, err = s.codec.DecodeRequestHead(head, &j.req); err != nil {
		return st.x, len(head), err
	}
	// Authenticated: from here on each stall of the body moves the
	// deadline on, so maxTime bounds a stall, not the body.
	in := &deadlineReader{r: src, c: rc.Conn(), idle: s.maxTime}
	body, err := s.codec.NewBodyReader(in, &st.x)
	if err != nil {
		return st.x, len(head), err
	}
	st.body = body
	s.m.streams.WithLabelValues("request").Inc()
	return st.x, len(head), nil
}

// readWhole reads a streamed request body whole for a handler other than
// the proxy, which alone reads a body as it comes, up to the codec's
// MaxEnvelope.
func (s *Server) readWhole(rc *fasthttp.RequestCtx, j *job) error {
	st := &j.stream
	if _, proxy := s.handler.(*Proxy); proxy || st.body == nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(st.body, int64(s.codec.MaxEnvelope())+1))
	st.body.Close()
	st.body = nil
	switch {
	case err != nil:
	case len(b) > s.codec.MaxEnvelope():
		err = fmt.Errorf("%w: streamed body past %d bytes for an in-process handler", wire.ErrTooLarge, s.codec.MaxEnvelope())
	default:
		j.req.Body = b
		return nil
	}
	rc.SetConnectionClose() // what is left of the body cannot be framed
	return err
}

// ctx is the stream state the handler's context carries: nil when the
// exchange streams nothing, so the proxy treats it as before.
func (st *exchangeStream) ctx() *exchangeStream {
	if st.body == nil && !st.accept {
		return nil
	}
	return st
}

// endBody reads what the handler left of a streamed request body, so the
// answer, which covers the whole body, can be sealed; it returns the
// exchange to seal it against. On a body cut short or altered the answer is
// a refusal, and ok false.
func (s *Server) endBody(rc *fasthttp.RequestCtx, st *exchangeStream) (wire.Exchange, bool) {
	if st.body == nil {
		return st.x, true
	}
	_, err := io.Copy(io.Discard, st.body)
	st.body.Close()
	st.body = nil
	if err != nil {
		if st.up != nil {
			st.up.Close()
			st.up = nil
		}
		s.log.Warn("origin: streamed request body refused", "err", err)
		s.refuseFrame(rc, err)
		rc.SetConnectionClose()
		return st.x, false
	}
	return st.x, true
}

// respond answers with resp whole, or, when the proxy handed over the
// upstream's body, with resp as the head of a streamed response.
func (s *Server) respond(rc *fasthttp.RequestCtx, resp *wire.Response, st *exchangeStream) {
	x, ok := s.endBody(rc, st)
	if !ok {
		return
	}
	if !st.streamed() {
		s.answer(rc, x, resp)
		return
	}
	up := st.up
	st.up = nil
	if !up.event && up.length < 0 {
		// Of unknown length: whole if it ends within the threshold.
		var err error
		resp.Body, err = gather(resp.Body[:0], up, up.threshold+1)
		switch {
		case err != nil:
			up.Close()
			resp.Body = resp.Body[:0]
			failure(resp, fasthttp.StatusBadGateway, "upstream body failed: "+transportReason(err))
			s.answer(rc, x, resp)
			return
		case len(resp.Body) <= up.threshold:
			up.Close()
			s.answer(rc, x, resp)
			return
		}
	}
	prefix := bytes.Clone(resp.Body)
	resp.Body = resp.Body[:0]
	if up.length >= 0 {
		// What the chunks add up to: the edge frames the body with it
		// (wire README, "Streamed bodies").
		resp.AddHeader(contentLengthName, strconv.AppendInt(nil, up.length, 10))
	}
	head, n, err := s.codec.AppendResponseHead(nil, &x, resp)
	if err != nil {
		up.Close()
		resp.Body = prefix
		s.answer(rc, x, resp) // answers the encoding failure for the application
		return
	}
	s.m.exchange(resp.Status)
	s.m.bytes[dirOut][stageC].Add(float64(n))
	s.m.streams.WithLabelValues("response").Inc()
	rc.Response.Header.SetContentTypeBytes(streamContentType)
	out := &streamOut{s: s, x: x, up: up, conn: rc.Conn(), idle: s.maxTime}
	out.staged.Write(wire.AppendHead(nil, head))
	if len(prefix) > 0 {
		out.start()
		out.body.Write(prefix)
	}
	rc.Response.SetBodyStream(out, -1)
}

// gather reads r to its end into dst's storage, or until it holds max
// bytes, growing it as the bytes arrive: a buffer reused from exchange to
// exchange (the response body's, a pooled frame's).
func gather(dst []byte, r io.Reader, max int) ([]byte, error) {
	for len(dst) < max {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), max)])
		dst = dst[:len(dst)+n]
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// streamOut is a streamed response as fasthttp writes it to the edge, once
// the handler is done: the head, then the upstream body in chunks as it
// comes. Each chunk goes out as one piece of the HTTP body, flushed, so an
// event reaches the edge when the upstream sends it, and the exchange holds
// one chunk at a time. An upstream body that fails ends the response
// without its end chunk, which the edge takes as the failure it is.
type streamOut struct {
	s      *Server
	x      wire.Exchange
	up     *upstreamBody
	conn   net.Conn
	idle   time.Duration
	body   *wire.BodyWriter // writes chunks into staged
	staged bytes.Buffer     // what goes out next
	buf    []byte
	done   bool
}

// start begins the body's chunks, after the head.
func (o *streamOut) start() {
	o.body, _ = o.s.codec.NewBodyWriter(&o.staged, &o.x) // the key is the request's: known
	o.buf = make([]byte, wire.MaxChunk)
}

// fill stages the next chunk (the end chunk once the upstream's body
// ended), and io.EOF when all is out.
func (o *streamOut) fill() error {
	if o.staged.Len() > 0 {
		return nil
	}
	if o.done {
		return io.EOF
	}
	if o.body == nil {
		o.start()
	}
	o.staged.Reset()
	n, err := o.up.Read(o.buf)
	if n > 0 {
		o.body.Write(o.buf[:n])
	}
	switch {
	case errors.Is(err, io.EOF):
		o.body.Close()
		o.done = true
		o.s.m.bytes[dirOut][stageWire].Add(float64(o.body.Len()))
	case err != nil:
		o.s.log.Warn("origin: upstream body failed mid-stream", "err", err)
		o.s.m.streams.WithLabelValues("aborted").Inc()
		return err
	}
	if o.conn != nil {
		_ = o.conn.SetWriteDeadline(time.Now().Add(o.idle))
	}
	return nil
}

func (o *streamOut) Read(p []byte) (int, error) {
	if err := o.fill(); err != nil {
		return 0, err
	}
	return o.staged.Read(p)
}

// WriteTo writes each staged piece in one Write: fasthttp makes each a
// chunk of the HTTP body and flushes it.
func (o *streamOut) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := o.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return total, err
		}
		n, err := w.Write(o.staged.Bytes())
		o.staged.Reset()
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// SupportsBodyWriteTo tells fasthttp that WriteTo may stand in for Read.
func (o *streamOut) SupportsBodyWriteTo() bool { return true }

// Close is fasthttp done with the body, written or not.
func (o *streamOut) Close() error { return o.up.Close() }
