package edge

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestReadFirstTakesTheRest: the 1-byte read fasthttp waits for a request
// with (ReduceMemoryUsage) brings the rest of what arrived with it, so the
// read of the rest does not reach the socket again: with the read deadline
// past, a second read() would fail.
func TestReadFirstTakesTheRest(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := lineEndListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
	for round := range 2 {
		if _, err := client.Write(req); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Time{})
		first := make([]byte, 1)
		if n, err := c.Read(first); n != 1 || err != nil || first[0] != 'G' {
			t.Fatalf("round %d: first byte: %d %q %v", round, n, first, err)
		}
		c.SetReadDeadline(time.Unix(1, 0))
		rest := make([]byte, 4096)
		n, err := c.Read(rest)
		if err != nil || !bytes.Equal(rest[:n], req[1:]) {
			t.Fatalf("round %d: the rest: %q %v", round, rest[:n], err)
		}
		connState(c, fasthttp.StateIdle) // the next request starts a header section
	}
	// A bare LF in what was read ahead is still refused, on the read after
	// the one that brought it.
	c.SetReadDeadline(time.Time{})
	if _, err := client.Write([]byte("GET /b HTTP/1.1\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := c.Read(one); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, 4096)
	if _, err := c.Read(rest); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(rest); err != errBareLF {
		t.Fatalf("after a bare LF: %v, want errBareLF", err)
	}
}

// TestReadFirstOnlyBareSockets: the read-ahead reads the socket itself, so
// it is used only on bare TCP and Unix connections. A wrapper that embeds
// one (and so offers its SyscallConn) may hold bytes of its own, such as a
// PROXY header reader's buffer, that a socket read would skip.
func TestReadFirstOnlyBareSockets(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	tcp := client.(*net.TCPConn)
	if rawConn(tcp) == nil {
		t.Fatal("a bare TCP connection gets no read-ahead")
	}
	type buffering struct{ *net.TCPConn }
	if rawConn(buffering{tcp}) != nil {
		t.Fatal("a wrapper around a TCP connection gets the read-ahead: its own buffered bytes would be skipped")
	}
}
