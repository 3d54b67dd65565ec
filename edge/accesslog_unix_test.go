//go:build linux || darwin

package edge_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestAccessLogDropped: when the log's file takes nothing (a pipe nobody
// reads), requests are still answered, and the lines past the log's
// buffer are dropped and counted in wedge_edge_access_log_dropped_total;
// once the pipe is read again the writer ends the log cleanly.
func TestAccessLogDropped(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "access.pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipe: %v", err)
	}
	// The read end, opened first so that the node's open for writing
	// does not wait for a reader; nothing reads it until the end.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	t.Cleanup(func() { <-drained; r.Close() }) // after the node's Shutdown
	n := startNode(t, fmt.Sprintf(`
access_log: {path: %q}
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app, chain: [{file: %q, config: {greeting: Hi}}]}
`, fifo, startOrigin(t, "o"), origintest.Key.Text(), hello(t)))
	t.Cleanup(func() { // before it: the writer's last batch must go somewhere
		go func() { io.Copy(io.Discard, r); close(drained) }()
	})

	// Lines of some 4 KiB: the log's buffer of 1 MiB fills after some
	// 240 requests, and the writer is stuck on a batch of 64 KiB.
	ua := strings.Repeat("u", 4<<10)
	dropped := func() float64 {
		return testutil.MetricSum(t, n.Registry(), "wedge_edge_access_log_dropped_total", nil)
	}
	deadline := time.Now().Add(time.Minute)
	sent := 0
	for ; dropped() == 0; sent++ {
		if sent == 5000 || time.Now().After(deadline) {
			t.Fatalf("nothing dropped after %d requests", sent)
		}
		if st, _, body := n.do(t, "GET", "h", "/hello?name=Ada", nil, "User-Agent", ua); st != 200 {
			t.Fatalf("request %d: %d %s", sent, st, body)
		}
	}
	if sent*(len(ua)+512) < 1<<20 { // a line is shorter than that
		t.Errorf("lines dropped after %d requests, before the buffer could be full", sent)
	}
}
