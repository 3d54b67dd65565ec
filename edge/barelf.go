package edge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/valyala/fasthttp"
)

// errBareLF is what a client connection's reads fail with once a line of a
// request's header section ended in a bare LF.
var errBareLF = errors.New("edge: bare LF in the header section")

// lineEndListener hands out connections that refuse a bare LF in a
// request's header section as soon as it arrives.
//
// # Why
//
// fasthttp reads a header section that did not arrive in one piece again
// only once CRLF CRLF is in its buffer. A section whose lines end in a bare
// LF never has one, so the client waited for read_timeout and got a 408,
// while lenient (which refuses bare LF) never ran. fasthttp has no option
// for this, so the check sits under it, on the bytes it reads: a read that
// brings a bare LF in a header section fails, and fasthttp hands the error
// to transportError, which answers 400 at once.
//
// The connection does not parse framing: it knows where a header section
// starts only at the start of the connection and, after a request, when
// fasthttp reads the next one's first byte on its own (with
// ReduceMemoryUsage it does that whenever nothing of the next request is
// buffered: ConnState reports the connection idle, then one 1-byte read
// follows). When part of the next request is already buffered (pipelining)
// the connection does not check that request, which then gets fasthttp's
// behaviour (lenient's 400 once the section is complete, or the 408): a
// body is never mistaken for a header section. The section ends at its
// empty line (CRLF CRLF); what follows is body until the next request.
type lineEndListener struct{ net.Listener }

func (l lineEndListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	lc := &lineEndConn{Conn: c, raw: rawConn(c)}
	if tc, ok := c.(*tls.Conn); ok {
		// fasthttp tells HTTPS by these methods (RequestCtx.IsTLS).
		return &lineEndTLSConn{lineEndConn: lc, tls: tc}, nil
	}
	return lc, nil
}

// Where a lineEndConn is in the byte stream.
const (
	inHead    = iota // a header section: lines are checked
	inBody           // after a header section, until the request is done
	nextFirst        // a request is done: the next read may start a section
	unchecked        // a request whose start was buffered before nextFirst
)

type lineEndConn struct {
	net.Conn
	state uint8
	prev  byte  // the byte before the next one scanned
	line  int   // bytes of the current line so far, its CR included
	lines bool  // a line that is not empty (the request line) has ended
	err   error // sticky, once a bare LF was read

	raw   syscall.RawConn    // the socket's, for readFirst; nil over TLS
	ready func(uintptr) bool // readReady, as a method value
	buf   *[aheadSize]byte
	ahead []byte // what readFirst read past the byte asked for, in buf
	n     int    // readReady's result
	rerr  error
}

func (c *lineEndConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.state == nextFirst {
		c.state = unchecked
		if len(p) == 1 {
			c.state, c.prev, c.line, c.lines = inHead, 0, 0, false
		}
	}
	n, err := c.read(p)
	if c.state == inHead && n > 0 && c.bareLF(p[:n]) {
		// The bytes go up, the error with the next read: fasthttp takes an
		// error on a request's first byte for the client going away, and
		// closes without an answer.
		c.err = errBareLF
		return n, nil
	}
	return n, err
}

// read reads from the connection, what readFirst read ahead first.
func (c *lineEndConn) read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		if c.ahead = c.ahead[n:]; len(c.ahead) == 0 {
			aheadPool.Put(c.buf)
			c.buf, c.ahead = nil, nil
		}
		return n, nil
	}
	if len(p) != 1 || c.raw == nil {
		return c.Conn.Read(p)
	}
	return c.readFirst(p)
}

// aheadSize is what readFirst reads at most: a request's header section
// usually arrives whole in it, as it would in fasthttp's own buffer.
const aheadSize = 4096

var aheadPool = sync.Pool{New: func() any { return new([aheadSize]byte) }}

// readFirst is a 1-byte read, which is how fasthttp (ReduceMemoryUsage)
// waits for a connection's next request: it reads what has arrived into
// a pooled buffer, taken only once the socket is readable, and keeps what
// it read past p for the reads that follow.
//
// # Why
//
// An idle connection then holds no buffer (that is what ReduceMemoryUsage
// is for), and a request costs one read() instead of two: the byte, then
// the rest. The bytes go up to fasthttp in the same order as before, each
// through Read's scan, so the guard sees the same request boundaries.
func (c *lineEndConn) readFirst(p []byte) (int, error) {
	if c.ready == nil {
		// A method value allocates: made once per connection.
		c.ready = c.readReady
	}
	err := c.raw.Read(c.ready)
	n, rerr := c.n, c.rerr
	c.rerr = nil
	switch {
	case err == nil && rerr != nil:
		err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case err == nil && n <= 0:
		err = io.EOF
	}
	if err == nil {
		p[0] = c.buf[0]
		c.ahead = c.buf[1:n]
	}
	if len(c.ahead) == 0 && c.buf != nil {
		aheadPool.Put(c.buf)
		c.buf, c.ahead = nil, nil
	}
	if err != nil {
		return 0, err
	}
	return 1, nil
}

// readReady is readFirst's read, called by the runtime once the socket
// may be readable; false to wait again. It takes the buffer only for a
// read that brings something.
func (c *lineEndConn) readReady(fd uintptr) bool {
	b := aheadPool.Get().(*[aheadSize]byte)
	c.n, c.rerr = readFD(fd, b[:])
	if c.rerr == syscall.EAGAIN {
		aheadPool.Put(b)
		return false
	}
	c.buf = b
	return true
}

// idle marks the end of a request (fasthttp.StateIdle).
func (c *lineEndConn) idle() { c.state = nextFirst }

// bareLF scans b, the next bytes of a header section, and reports whether
// a line in it ends in a bare LF. At the empty line that ends the section
// it stops and leaves the state at inBody. Empty lines before the request
// line are skipped (RFC 9112 §2.2), as fasthttp does, with CRLF or LF.
func (c *lineEndConn) bareLF(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.line += len(b)
			c.prev = b[len(b)-1]
			return false
		}
		prev := c.prev
		if i > 0 {
			prev = b[i-1]
		}
		c.line += i
		if prev != '\r' {
			if c.line > 0 || c.lines {
				return true
			}
			// An empty line before the request line carries nothing, and
			// fasthttp skips it as it is.
			c.line, c.prev, b = 0, '\n', b[i+1:]
			continue
		}
		if c.line == 1 && c.lines {
			c.state = inBody
			return false
		}
		c.lines = c.lines || c.line > 1
		c.line, c.prev, b = 0, '\n', b[i+1:]
	}
	return false
}

// NetConn is the connection c wraps, for connwatch.Hangup to reach the
// socket.
func (c *lineEndConn) NetConn() net.Conn { return c.Conn }

// lineEndTLSConn is a lineEndConn over TLS.
type lineEndTLSConn struct {
	*lineEndConn
	tls *tls.Conn
}

func (c *lineEndTLSConn) Handshake() error { return c.tls.Handshake() }

func (c *lineEndTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// connState is the node's fasthttp.Server.ConnState hook.
func connState(c net.Conn, s fasthttp.ConnState) {
	if s != fasthttp.StateIdle {
		return
	}
	switch c := c.(type) {
	case *lineEndConn:
		c.idle()
	case *lineEndTLSConn:
		c.idle()
	}
}
