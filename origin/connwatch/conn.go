package connwatch

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// ErrStale is what writing a request onto a watched connection returns when
// the connection was not silent (closed by the peer, reset, or holding
// stray bytes). Nothing was written, so any request may be retried on
// another connection.
var ErrStale = errors.New("connwatch: pooled connection closed or not silent")

// conn watches a connection that is used from one goroutine at a time, as
// HTTP client pools use theirs, so it needs no locking.
type conn struct {
	net.Conn
	raw      syscall.RawConn
	reading  bool // the last operation was a read: a write starts a request
	peek     func(fd uintptr) bool
	dead     bool
	buf      [1]byte
	idle     time.Duration // checked only after this long without a read
	lastRead time.Duration // when the last read returned bytes, since epoch
}

// epoch anchors lastRead on the monotonic clock.
var epoch = time.Now()

// tlsConn keeps a watched TLS connection recognisable as one: fasthttp
// takes a conn with a Handshake method as TLS already and skips its own
// handshake. A plain connection must not have the method, or fasthttp would
// skip the handshake an https upstream needs.
type tlsConn struct {
	*conn
	tls *tls.Conn
}

func (c *tlsConn) Handshake() error { return c.tls.Handshake() }

// Watch wraps c, whose transport socket is sock (c itself, or the socket
// under a *tls.Conn), so that the first Write after a Read fails with
// ErrStale when sock is not silent at that moment. Where sock cannot be
// peeked at, it returns c as it is.
func Watch(c, sock net.Conn) net.Conn { return WatchIdle(c, sock, 0) }

// WatchIdle is Watch checking only a connection that sat idle: the first
// Write after a Read is checked when at least idle has passed since that
// Read (0 checks every time, as Watch does). For a peer that closes
// connections only after an idle timeout far longer than idle and never
// writes past its responses, a connection reused sooner cannot be found
// stale by the check, which is then a wasted recvfrom per request.
func WatchIdle(c, sock net.Conn, idle time.Duration) net.Conn {
	sc, ok := sock.(syscall.Conn)
	if !ok || !canPeek {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	w := &conn{Conn: c, raw: raw, idle: idle}
	w.peek = func(fd uintptr) bool {
		// EOF, stray bytes or a broken socket: all of them mean unusable.
		w.dead = peek(fd, w.buf[:]) != silent
		return true
	}
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsConn{conn: w, tls: tc}
	}
	return w
}

func (c *conn) Write(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// check is the check of the first Write after a Read.
func (c *conn) check() error {
	if c.reading {
		c.reading = false
		if c.idle == 0 || time.Since(epoch)-c.lastRead >= c.idle {
			if err := c.raw.Read(c.peek); err != nil || c.dead {
				return ErrStale
			}
		}
	}
	return nil
}

// Check makes now the check the next Write of c, a connection Watch
// wrapped (any other passes), would make: ErrStale when it is not silent.
// A caller about to write what it cannot write again checks first: a
// streamed request body's first piece is read from its source before the
// Write that would have found the connection stale, and is lost with it.
func Check(c net.Conn) error {
	switch w := c.(type) {
	case *conn:
		return w.check()
	case *tlsConn:
		return w.conn.check()
	}
	return nil
}

// Unwrap returns the connection c watches (c itself when Watch left it
// as it was). A watched connection is used from one goroutine at a time: a
// caller that writes while another goroutine reads writes on this one, after
// Check, so that the reads alone keep the watch's state.
func Unwrap(c net.Conn) net.Conn {
	switch w := c.(type) {
	case *conn:
		return w.Conn
	case *tlsConn:
		return w.tls
	}
	return c
}

func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.reading = true
		if c.idle > 0 {
			c.lastRead = time.Since(epoch)
		}
	}
	return n, err
}
