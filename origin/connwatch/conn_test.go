package connwatch

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pair returns a watched client connection and the server's end of it, on
// real loopback sockets.
func pair(t *testing.T) (client net.Conn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s.SetDeadline(time.Now().Add(10 * time.Second))
	return Watch(c, c), s
}

// exchange writes a request and reads the answer's n bytes.
func exchange(t *testing.T, c, s net.Conn, answer string) {
	t.Helper()
	if _, err := c.Write([]byte("req")); err != nil {
		t.Fatalf("write on a silent connection: %v", err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte(answer)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, len(answer))); err != nil {
		t.Fatal(err)
	}
}

// waitReadable waits until the client's socket has something to read, as
// the peek will see it: the peer's write or close has arrived.
func waitReadable(t *testing.T, c net.Conn) {
	t.Helper()
	raw, err := c.(*conn).Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ready bool
		raw.Read(func(fd uintptr) bool { ready = peek(fd, buf[:]) != silent; return true })
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing arrived in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	if !canPeek {
		t.Skip("no MSG_PEEK here")
	}
	for _, tc := range []struct {
		name  string
		after func(s net.Conn) // what the server does once it has answered
		stale bool
	}{
		{"silent", func(net.Conn) {}, false},
		{"closed", func(s net.Conn) { s.Close() }, true},
		{"reset", func(s net.Conn) { s.(*net.TCPConn).SetLinger(0); s.Close() }, true},
		{"stray bytes", func(s net.Conn) { s.Write([]byte("leftover")) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			exchange(t, c, s, "answer")
			tc.after(s)
			if tc.stale {
				waitReadable(t, c)
			}
			n, err := c.Write([]byte("next"))
			switch {
			case tc.stale && (!errors.Is(err, ErrStale) || n != 0):
				t.Fatalf("write after %s: %d, %v; want 0, ErrStale", tc.name, n, err)
			case !tc.stale && err != nil:
				t.Fatalf("write on a silent connection: %v", err)
			}
			if tc.name == "stray bytes" {
				// The peek consumed nothing: the bytes are still there.
				buf := make([]byte, 8)
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "leftover" {
					t.Fatalf("after the peek read %q, %v", buf, err)
				}
			}
		})
	}
}

// TestWatchFirstWrite: a connection's first write (nothing read yet) and a
// second write in a row (a request written in parts) are not checked, so
// a request is never cut in two by the check.
func TestWatchFirstWrite(t *testing.T) {
	c, s := pair(t)
	s.Write([]byte("greeting"))
	waitReadable(t, c)
	for range 2 {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("write before any read: %v", err)
		}
	}
}

// TestUnwrap: a write on the unwrapped connection, while the watched one
// reads, goes out unchecked and leaves the watch's check to the next write
// on the watched one: stray bytes are still found then.
func TestUnwrap(t *testing.T) {
	if !canPeek {
		t.Skip("no MSG_PEEK here")
	}
	c, s := pair(t)
	exchange(t, c, s, "answer")
	s.Write([]byte("leftover"))
	waitReadable(t, c)
	if _, err := Unwrap(c).Write([]byte("body")); err != nil {
		t.Fatalf("write on the unwrapped connection: %v", err)
	}
	if _, err := c.Write([]byte("next")); !errors.Is(err, ErrStale) {
		t.Fatalf("write on the watched connection: %v, want ErrStale", err)
	}
}

func TestWatchTLSHandshake(t *testing.T) {
	c, _ := pair(t)
	if _, ok := c.(interface{ Handshake() error }); ok {
		t.Error("a watched plain connection has a Handshake method: fasthttp would skip TLS on it")
	}
	raw := c.(*conn).Conn
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	if _, ok := Watch(tc, raw).(interface{ Handshake() error }); !ok {
		t.Error("a watched TLS connection lost its Handshake method")
	}
}

// TestWatchIdle: with an idle threshold, a connection reused before it has
// passed is written to without a check, even one that is not silent (the
// recvfrom is what the threshold saves), and one that sat idle is checked.
func TestWatchIdle(t *testing.T) {
	if !canPeek {
		t.Skip("no MSG_PEEK here")
	}
	for _, tc := range []struct {
		name  string
		idle  time.Duration
		stale bool
	}{
		{"reused at once", time.Hour, false},
		{"reused after sitting idle", time.Nanosecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, s := pair(t)
			c := WatchIdle(plain.(*conn).Conn, plain.(*conn).Conn, tc.idle)
			exchange(t, c, s, "answer")
			s.Write([]byte("leftover"))
			waitReadable(t, plain)
			_, err := c.Write([]byte("next"))
			if got := errors.Is(err, ErrStale); got != tc.stale {
				t.Fatalf("write: %v; want stale %v", err, tc.stale)
			}
		})
	}
}
