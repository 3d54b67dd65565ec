package originclient

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// errStale is what writing a request onto a pooled connection that the
// origin has already closed returns, before a byte goes out.
var errStale = errors.New("originclient: pooled connection closed by the origin")

// staleConn notices a keep-alive connection the origin closed while it sat
// in the pool (idle timeout, restart) at the moment a request is about to
// be written on it, and fails that write. Nothing was sent, so Do may retry
// any method on a fresh connection; without this, a POST that drew such a
// connection would fail with a reset that looks like one after sending.
//
// A request starts with the first Write after a Read; between the two
// phases the connection must be silent, so anything readable then (EOF, a
// reset, or stray bytes) means it is unusable. fasthttp uses a connection
// from one goroutine at a time, so no locking is needed.
type staleConn struct {
	net.Conn
	raw     syscall.RawConn
	tls     *tls.Conn // the conn itself when TLS, for Handshake
	reading bool      // the last operation was a read: a write starts a request
	peek    func(fd uintptr) bool
	dead    bool
	buf     [1]byte
}

// watchStale wraps conn, whose transport socket is sock, when the socket
// can be peeked at; otherwise it returns conn as it is.
func watchStale(conn, sock net.Conn) net.Conn {
	sc, ok := sock.(syscall.Conn)
	if !ok || !canPeek {
		return conn
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return conn
	}
	c := &staleConn{Conn: conn, raw: raw}
	c.tls, _ = conn.(*tls.Conn)
	c.peek = func(fd uintptr) bool {
		c.dead = peekClosed(fd, c.buf[:])
		return true
	}
	return c
}

func (c *staleConn) Write(b []byte) (int, error) {
	if c.reading {
		c.reading = false
		if err := c.raw.Read(c.peek); err != nil || c.dead {
			return 0, errStale
		}
	}
	return c.Conn.Write(b)
}

func (c *staleConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.reading = true
	}
	return n, err
}

// Handshake keeps fasthttp taking a TLS connection for what it is: it
// checks for this method to skip a handshake of its own.
func (c *staleConn) Handshake() error {
	if c.tls == nil {
		return nil
	}
	return c.tls.Handshake()
}
