// Package connx holds the connection helpers a tunnel needs at both ends
// of the origin link: the edge's (edge, edge/originclient) and the origin
// service's. A tunnel carries bytes between two connections, one of which
// fasthttp hijacked and one whose handshake was read through a buffer, and
// passes a finished direction on as a half close.
package connx

import (
	"bufio"
	"errors"
	"net"
)

// Unwrap is the connection under fasthttp's hijacked one, or c itself. A
// hijacked connection is cleared once its handler returns and ignores
// Close until then: what must outlive the handler, or close it early, uses
// the one under it.
func Unwrap(c net.Conn) net.Conn {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return c
}

// CloseWrite half-closes c (under a hijacked connection) where it can: a
// TCP or TLS connection, or a Buffered one over either. It returns
// errors.ErrUnsupported for any other.
func CloseWrite(c net.Conn) error {
	if cw, ok := Unwrap(c).(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Buffered is a connection whose first bytes were read ahead into R, with
// a handshake's answer: reads take those bytes first, then the connection's.
type Buffered struct {
	net.Conn
	R *bufio.Reader
}

func (c *Buffered) Read(p []byte) (int, error) {
	if c.R != nil {
		if c.R.Buffered() > 0 {
			return c.R.Read(p)
		}
		c.R = nil // no more reads through the buffer, and it can be freed
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection under it.
func (c *Buffered) CloseWrite() error { return CloseWrite(c.Conn) }
