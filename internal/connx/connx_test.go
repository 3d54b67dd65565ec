package connx_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/talowa/wedge/internal/connx"
)

// TestBuffered: the bytes read ahead come first, then the connection's, and
// a half close reaches the TCP connection under it.
func TestBuffered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := io.WriteString(c, "HEAD\nbody"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(s)
	if line, err := br.ReadString('\n'); err != nil || line != "HEAD\n" {
		t.Fatalf("head %q %v", line, err)
	}
	b := &connx.Buffered{Conn: s, R: br}
	if err := connx.CloseWrite(c); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(b)
	if err != nil || string(rest) != "body" {
		t.Fatalf("after the head: %q %v, want the rest and EOF", rest, err)
	}
	if err := b.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the half close: %d %v, want EOF", n, err)
	}
	if err := connx.CloseWrite(fakeConn{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("a connection without CloseWrite: %v", err)
	}
}

type fakeConn struct{ net.Conn }
