package listeners

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestAddAfterClose: a listener added after Close is closed at once and
// refused, which is what keeps a late Serve from serving forever; one added
// before is closed by Close.
func TestAddAfterClose(t *testing.T) {
	var s Set
	before, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Add(before) {
		t.Fatal("Add refused a listener before Close")
	}
	if s.Closed() {
		t.Fatal("Closed before Close")
	}
	s.Close()
	if !s.Closed() {
		t.Fatal("not Closed after Close")
	}
	if _, err := before.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a listener added before Close: %v, want net.ErrClosed", err)
	}
	after, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Add(after) {
		t.Fatal("Add accepted a listener after Close")
	}
	if _, err := after.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a listener added after Close: %v, want net.ErrClosed", err)
	}
}

// TestSideServerIdle: a side server closes a keep-alive connection left
// idle; Go's server without IdleTimeout or ReadTimeout kept it for good,
// and 1,013 of them filled a POP's file descriptors from its admin
// listener.
func TestSideServerIdle(t *testing.T) {
	defer func(d time.Duration) { sideIdle = d }(sideIdle)
	sideIdle = 50 * time.Millisecond
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := SideServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	go srv.Serve(SideListener(ln))
	defer srv.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang guard
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.Close {
		t.Fatal("the server closed at once; want keep-alive, then closed once idle")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("an idle keep-alive connection: read %v, want EOF (closed by the server)", err)
	}
}
