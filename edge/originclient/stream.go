package originclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
)

// Streamed bodies (origin/wire/README.md, "Streamed bodies"). DoStream
// sends a request body as it comes, in chunks after the request's head,
// and takes the answer's body as a stream when the origin streams it
// (Accept: application/wedge-stream): the client holds a chunk of a body
// at a time, and the connection it came on until the body is read or
// closed. A streamed body's budget bounds each wait for the next piece of
// it (the exchange's own budget bounds the head), so a long transfer that
// keeps moving is not cut off.

var (
	acceptName   = []byte("Accept")
	streamCTName = []byte(wire.StreamContentType)
)

// linkKey is the fasthttp.Request user value under which a call's link
// state reaches linkTransport.
type linkKey struct{}

// link is a call's streaming state.
type link struct {
	x      wire.Exchange // the exchange, moved on along its MAC chain
	in     io.Reader     // the request body to stream; nil when whole
	accept bool          // the caller takes a streamed response
	idle   time.Duration
	conn   net.Conn // the connection the request goes out on
	// ab abandons the exchange when its client hangs up; nil: not watched.
	ab *connwatch.Abort
	// consumed is set once in was read from: the request cannot be sent
	// again.
	consumed bool
	// up is a streamed response's HTTP body, handed over by the transport.
	up *upBody
}

// Body is a streamed response body, verified chunk by chunk as it is read.
// Read returns io.EOF only after the origin's end chunk; a body cut short
// or altered is an error. Close must be called, read to its end or not: it
// gives back the connection (to the pool if the body was read whole).
type Body struct {
	c  *Client
	k  *call
	br *wire.BodyReader
}

func (b *Body) Read(p []byte) (int, error) {
	n, err := b.br.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("originclient: streamed response from %s: %w", b.c.name, err)
	}
	return n, err
}

// Close gives back the connection and the call's buffers.
func (b *Body) Close() error {
	if b.k == nil {
		return nil
	}
	b.c.m.recvWire.Add(float64(b.br.Len()))
	b.br.Close()
	b.k.link.up.close()
	b.k.unlink()
	b.c.release(b.k)
	b.k = nil
	return nil
}

// unlink forgets what the call streamed, so the pool holds none of it.
func (k *call) unlink() {
	if k.link.in != nil {
		k.req.ResetBody()
	}
	k.link = link{}
}

// DoStream is Do for an exchange whose bodies may stream. body, when not
// nil, is the request body (req.Body must be empty): it is sent in chunks
// as it is read, and such a request is never sent twice once a byte of it
// was read. The answer's body comes back in resp.Body, or, when the origin
// streams it, as a Body to read and close; idle bounds each wait for a
// piece of either body. client, when not nil, is the server's side of the
// connection of the client the answer is for: if that client hangs up
// while the exchange waits for the answer's head (a long poll whose client
// gave up), the exchange is abandoned with ErrCancelled, its connection to
// the origin closed rather than held until the origin answers.
func (c *Client) DoStream(deadline time.Time, req *wire.Request, body io.Reader, idle time.Duration, resp *wire.Response, client net.Conn) (*Body, error) {
	k := c.calls.Get().(*call)
	k.link = link{in: body, accept: true, idle: idle}
	return c.run(k, deadline, req, resp, client)
}

// prepare sets the request up for what it streams: the Accept field, and
// a streamed request's body, sealed as the head and chunks (x is the head's
// exchange).
func (l *link) prepare(c *Client, k *call, head []byte) {
	if l.accept {
		k.req.Header.SetBytesKV(acceptName, streamCTName)
	} else {
		k.req.Header.DelBytes(acceptName)
	}
	if l.in == nil {
		k.req.Header.SetContentTypeBytes(contentTypeWedge)
		k.req.SetBodyRaw(head)
		return
	}
	k.req.Header.SetContentTypeBytes(streamCTName)
	k.req.SetBodyStream(&sealer{c: c, l: l, head: wire.AppendHead(nil, head)}, -1)
}

var contentTypeWedge = []byte(contentType)

// sealer reads the request body from the caller and hands fasthttp the
// head, then the body's chunks. The head comes out alone first, so that a
// pooled connection whose reset already arrived fails that first write
// before a byte of the caller's body was read, and the request can go out
// on another. Usually, though, the head's write succeeds locally on a
// connection the origin has closed, the body's first piece is read, and
// the failure shows only after it: such a request fails (502) rather than
// being sent again, since its body cannot be read twice. A connection that
// sat idle is checked before reuse (staleCheckAfter), so this takes an
// origin that closed one within moments of its last use (it shut down).
type sealer struct {
	c    *Client
	l    *link
	head []byte
	out  bytes.Buffer
	w    *wire.BodyWriter
	buf  []byte
	done bool
}

func (s *sealer) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	for s.out.Len() == 0 {
		if s.done {
			return 0, io.EOF
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	if s.l.conn != nil {
		// The budget bounds a stall, not the whole body.
		_ = s.l.conn.SetWriteDeadline(time.Now().Add(s.l.idle))
	}
	return s.out.Read(p)
}

// fill reads the next piece of the body and seals it into out.
func (s *sealer) fill() error {
	if s.w == nil {
		w, err := s.c.codec.NewBodyWriter(&s.out, &s.l.x)
		if err != nil {
			return err
		}
		s.w, s.buf = w, make([]byte, wire.MaxChunk)
	}
	s.l.consumed = true
	n, err := s.l.in.Read(s.buf)
	if n > 0 {
		s.out.Reset()
		if _, werr := s.w.Write(s.buf[:n]); werr != nil {
			return werr
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		s.done = true
		return s.w.Close()
	case err != nil:
		return fmt.Errorf("originclient: request body: %w", err)
	}
	return nil
}

// upBody is a streamed response's HTTP body (chunked) on its connection,
// with the connection's read deadline moved on before each read.
type upBody struct {
	r    io.Reader
	br   *bufio.Reader
	conn net.Conn
	idle time.Duration
	done func(keep bool)
	eof  bool
}

func (u *upBody) Read(p []byte) (int, error) {
	if err := u.conn.SetReadDeadline(time.Now().Add(u.idle)); err != nil {
		return 0, err
	}
	n, err := u.r.Read(p)
	if errors.Is(err, io.EOF) {
		u.eof = true
	}
	return n, err
}

// close gives the connection back: to the pool when the body was read to
// its end and nothing follows it.
func (u *upBody) close() {
	if u == nil || u.done == nil {
		return
	}
	u.done(u.eof && u.br.Buffered() == 0)
	u.done = nil
}

// openStream opens a streamed answer: its head into resp, its body as a
// Body. The call stays with the Body until it is closed.
func (c *Client) openStream(k *call, resp *wire.Response) (class, error) {
	l := &k.link
	head, err := c.codec.ReadHead(l.up, k.frame[:0])
	k.frame = head
	if err == nil {
		_, err = c.codec.DecodeResponseHead(head, &l.x, resp)
	}
	var br *wire.BodyReader
	if err == nil {
		br, err = c.codec.NewBodyReader(l.up, &l.x)
	}
	if err != nil {
		l.up.close()
		l.up = nil
		cls := clsBadResponse
		if errors.Is(err, wire.ErrTooLarge) {
			cls = clsTooLarge
		}
		return cls, fmt.Errorf("originclient: response from %s: %w", c.name, err)
	}
	k.body = &Body{c: c, k: k, br: br}
	return clsOK, nil
}

// linkTransport is the fasthttp.RoundTripper of the origin link: fasthttp's
// own, except that a streamed answer (Content-Type
// application/wedge-stream) is not read here but handed to the call with
// its connection, which it keeps until the body is read or closed.
type linkTransport struct{}

func (linkTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	var deadline time.Time
	if t := req.GetTimeOut(); t > 0 {
		deadline = time.Now().Add(t)
	}
	l, _ := req.UserValue(linkKey{}).(*link)
	var ab *connwatch.Abort
	if l != nil {
		ab = l.ab
	}
	cc, err := hc.AcquireConn(req.GetTimeOut(), req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	if !ab.Attach(conn) {
		hc.CloseConn(cc)
		return false, ErrCancelled
	}
	resp.ParseNetConn(conn)
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return false, err
	}
	if l != nil {
		l.conn = conn
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			err = fasthttp.ErrTimeout
		}
		return false, err
	}
	if l != nil && l.in != nil {
		// The body's writes moved the deadline on; the answer is due
		// within idle of the body's end.
		if err := conn.SetReadDeadline(time.Now().Add(l.idle)); err != nil {
			hc.CloseConn(cc)
			return false, err
		}
	}
	if hc.DisableHeaderNamesNormalizing {
		resp.Header.DisableNormalizing()
	}
	br := hc.AcquireReader(conn)
	err = resp.Header.Read(br)
	if err == nil && l != nil && l.accept && resp.StatusCode() == fasthttp.StatusOK &&
		bytes.Equal(resp.Header.ContentType(), streamCTName) {
		var r io.Reader = br
		length := resp.Header.ContentLength()
		switch {
		case length == -1:
			r = httputil.NewChunkedReader(br)
		case length >= 0:
			r = io.LimitReader(br, int64(length))
		}
		// Not modified after, so the closure copies it.
		reuse := length >= -1 && !req.ConnectionClose() && !resp.ConnectionClose()
		done := func(keep bool) {
			hc.ReleaseReader(br)
			if keep && reuse && ab.Detach() {
				hc.ReleaseConn(cc)
			} else {
				hc.CloseConn(cc)
			}
		}
		l.up = &upBody{r: r, br: br, conn: conn, idle: l.idle, done: done}
		return false, nil
	}
	if err == nil {
		err = resp.ReadBody(br, hc.MaxResponseBodySize)
	}
	keep := err == nil && !req.ConnectionClose() && !resp.ConnectionClose() && br.Buffered() == 0 && resp.Header.ContentLength() >= 0
	// The connection is no longer the exchange's to abandon once it is
	// back in the pool, where another takes it.
	keep = keep && ab.Detach()
	hc.ReleaseReader(br)
	if keep {
		hc.ReleaseConn(cc)
	} else {
		hc.CloseConn(cc)
	}
	return false, err
}
