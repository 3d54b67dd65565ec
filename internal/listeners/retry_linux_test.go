package listeners

import (
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
)

// TestRetryOutOfDescriptors: a server whose process runs out of file
// descriptors (a flood of idle connections) waits until some are free
// again, and serves on; fasthttp's Serve alone returned at the first
// EMFILE, and the server with it.
func TestRetryOutOfDescriptors(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(Retry(ln, slog.New(slog.NewTextHandler(io.Discard, nil)))) }()
	defer srv.Shutdown()

	// A descriptor limit a few above what is open now: the flood's dials
	// and the server's accepts share it, as an edge's and its clients'
	// would not, but the accept fails all the same.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	low := old
	low.Cur = uint64(len(open) + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		}
	}
	defer restore()

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for len(flood) < 64 {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), time.Second)
		if err != nil {
			break // the client's side of the limit: the server's accepts have failed by now
		}
		flood = append(flood, c)
	}
	// The server took the connections it could and met EMFILE on the
	// next: it must still be serving once descriptors are free again.
	select {
	case err := <-served:
		t.Fatalf("Serve returned at the descriptor limit: %v", err)
	default:
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	restore()
	testutil.Eventually(t, 10*time.Second, "a request answered after the flood", func() bool {
		select {
		case err := <-served:
			t.Fatalf("Serve returned at the descriptor limit: %v", err)
		default:
		}
		st, body, err := fasthttp.GetTimeout(nil, "http://"+ln.Addr().String()+"/", time.Second)
		return err == nil && st == 200 && string(body) == "ok"
	})
}
