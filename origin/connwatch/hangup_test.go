package connwatch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
)

// TestHangup: a peer that closes its connection while a request waits is
// seen (gone runs before Stop returns); one that sends bytes (a pipelined
// request) is not, and the bytes are left for the server to read.
func TestHangup(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		c, s := pair(t)
		var gone atomic.Bool
		h := NewHangup(time.Millisecond, func() { gone.Store(true) })
		h.Start(s)
		c.Close()
		testutil.Eventually(t, 10*time.Second, "hang-up seen", gone.Load)
		h.Stop()
	})
	t.Run("after the read deadline", func(t *testing.T) {
		// The server's read timeout, armed when it read the request, has
		// passed while the request waits (a long poll): it ended the
		// watch, and the hang-up was never seen.
		c, s := pair(t)
		_ = s.SetReadDeadline(time.Now().Add(-time.Second))
		var gone atomic.Bool
		h := NewHangup(time.Millisecond, func() { gone.Store(true) })
		h.Start(s)
		testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
		c.Close()
		testutil.Eventually(t, 10*time.Second, "hang-up seen", gone.Load)
		h.Stop()
	})
	t.Run("bytes", func(t *testing.T) {
		c, s := pair(t)
		var gone atomic.Bool
		h := NewHangup(time.Millisecond, func() { gone.Store(true) })
		h.Start(s)
		testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
		if _, err := c.Write([]byte("GET")); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "watch ended on the bytes", func() bool { return !h.isWatching() })
		h.Stop()
		if gone.Load() {
			t.Fatal("bytes from the peer taken for a hang-up")
		}
		buf := make([]byte, 3)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "GET" {
			t.Fatalf("read after the watch: %q, %v", buf, err)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		// Stop wakes a watch in progress, and the connection reads on.
		c, s := pair(t)
		h := NewHangup(time.Millisecond, func() { t.Error("gone without a hang-up") })
		for range 20 {
			h.Start(s)
			h.Stop()
		}
		h.Start(s)
		testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
		h.Stop()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatalf("read after Stop: %v", err)
		}
	})
}

func (h *Hangup) isWatching() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.watching
}

// stream is a Stream over a connection with no socket to watch.
type stream struct {
	net.Conn
	ctx context.Context
}

func (s stream) Context() context.Context { return s.ctx }

// TestHangupStream: a Stream's watch waits on its context, the socket
// under it having nothing to say (an HTTP/2 or HTTP/3 stream): a cancel
// while the request waits is seen (gone runs before Stop returns), and
// Stop ends a wait on a context not cancelled, leaving the next watch to
// see its own.
func TestHangupStream(t *testing.T) {
	c, _ := net.Pipe()
	t.Cleanup(func() { c.Close() })
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var gone atomic.Bool
		h := NewHangup(time.Millisecond, func() { gone.Store(true) })
		h.Start(stream{c, ctx})
		testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
		cancel()
		testutil.Eventually(t, 10*time.Second, "hang-up seen", gone.Load)
		h.Stop()
	})
	t.Run("stopped", func(t *testing.T) {
		var gone atomic.Int32
		h := NewHangup(time.Millisecond, func() { gone.Add(1) })
		s := stream{c, context.Background()}
		for range 20 {
			h.Start(s)
			h.Stop()
		}
		h.Start(s)
		testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
		h.Stop()
		if gone.Load() != 0 {
			t.Fatal("gone without a cancel")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		h.Start(stream{c, ctx})
		testutil.Eventually(t, 10*time.Second, "the next request's cancel seen", func() bool { return gone.Load() == 1 })
		h.Stop()
	})
}

// tlsPair is pair with TLS of version over it, the handshake done: the
// client's *tls.Conn and the server's.
func tlsPair(t *testing.T, version uint16) (client, server *tls.Conn) {
	t.Helper()
	c, s := pair(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"edge.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	server = tls.Server(s, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	client = tls.Client(c.(*conn).Conn, &tls.Config{ServerName: "edge.test", InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return client, server
}

// TestHangupTLS: a TLS client hangs up with a close_notify alert, then
// the close; the alert is bytes on the socket, and the close behind it is
// seen all the same, whether it comes with the alert or later, over TLS
// 1.3 and 1.2. Application data still ends the watch, and stays for the
// server to read.
func TestHangupTLS(t *testing.T) {
	if !seesClose {
		t.Skip("no POLLRDHUP here")
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		name := map[uint16]string{tls.VersionTLS13: "1.3", tls.VersionTLS12: "1.2"}[version]
		t.Run(name+"/closed", func(t *testing.T) {
			c, s := tlsPair(t, version)
			var gone atomic.Bool
			h := NewHangup(time.Millisecond, func() { gone.Store(true) })
			h.Start(s)
			testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
			c.Close()
			testutil.Eventually(t, 10*time.Second, "hang-up seen", gone.Load)
			h.Stop()
		})
		t.Run(name+"/closed after the alert", func(t *testing.T) {
			c, s := tlsPair(t, version)
			var gone atomic.Bool
			h := NewHangup(time.Millisecond, func() { gone.Store(true) })
			h.Start(s)
			testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
			if err := c.CloseWrite(); err != nil { // the close_notify alone
				t.Fatal(err)
			}
			waitPending(t, s.NetConn())
			if gone.Load() {
				t.Fatal("a close_notify with the connection open taken for a hang-up")
			}
			c.NetConn().Close()
			testutil.Eventually(t, 10*time.Second, "hang-up seen", gone.Load)
			h.Stop()
		})
		t.Run(name+"/application data", func(t *testing.T) {
			c, s := tlsPair(t, version)
			var gone atomic.Bool
			h := NewHangup(time.Millisecond, func() { gone.Store(true) })
			h.Start(s)
			testutil.Eventually(t, 10*time.Second, "watch started", h.isWatching)
			if _, err := c.Write([]byte("GET")); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, "watch ended on the bytes", func() bool { return !h.isWatching() })
			h.Stop()
			if gone.Load() {
				t.Fatal("application data taken for a hang-up")
			}
			buf := make([]byte, 3)
			if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "GET" {
				t.Fatalf("read after the watch: %q, %v", buf, err)
			}
		})
	}
}

// waitPending waits until the socket under c holds bytes, as the peek
// sees them, while a watch waits on it (raw.Control, not the read a watch
// holds).
func waitPending(t *testing.T, c net.Conn) {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	testutil.Eventually(t, 10*time.Second, "bytes on the socket", func() bool {
		var st state
		raw.Control(func(fd uintptr) { st = peek(fd, buf[:]) })
		return st == pending
	})
}
