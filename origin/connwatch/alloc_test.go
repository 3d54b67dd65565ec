//go:build !race

package connwatch

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestAllocs: the check on every reused connection allocates nothing.
func TestAllocs(t *testing.T) {
	c, s := pair(t)
	req, ans, buf := []byte("req"), []byte("ans"), make([]byte, 3)
	n := testing.AllocsPerRun(100, func() {
		c.Write(req)
		io.ReadFull(s, buf)
		s.Write(ans)
		io.ReadFull(c, buf)
	})
	if n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

// TestHangupAllocs: a request answered before the watch starts costs a
// timer's reset and stop, and allocates nothing.
func TestHangupAllocs(t *testing.T) {
	_, s := pair(t)
	h := NewHangup(time.Hour, func() {})
	n := testing.AllocsPerRun(100, func() {
		h.Start(s)
		h.Stop()
	})
	if n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

// TestHangupStreamAllocs: so does a request on a Stream (HTTP/2, HTTP/3):
// its context is taken, not its Done channel.
func TestHangupStreamAllocs(t *testing.T) {
	c, _ := net.Pipe()
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var s net.Conn = stream{c, ctx}
	h := NewHangup(time.Hour, func() {})
	n := testing.AllocsPerRun(100, func() {
		h.Start(s)
		h.Stop()
	})
	if n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}
