package e2e

import (
	"net"
	"sync/atomic"
	"testing"
)

// counter counts the bytes that cross the connections a listener accepted,
// both ways: what a long-haul link would carry.
type counter struct{ in, out atomic.Int64 }

func (c *counter) total() int64 { return c.in.Load() + c.out.Load() }
func (c *counter) reset()       { c.in.Store(0); c.out.Store(0) }

type countingListener struct {
	net.Listener
	c *counter
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{conn, l.c}, nil
}

type countingConn struct {
	net.Conn
	c *counter
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.c.in.Add(int64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.c.out.Add(int64(n))
	return n, err
}

// listen opens a listener on a free loopback port, closed with the test.
func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}
