//go:build linux || darwin

package edge_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// stuckLogNode starts a node whose access log is a named pipe nobody
// reads, and fills the pipe and the log's buffer: the log's writer is
// stuck in a write. drain starts reading the pipe (once).
func stuckLogNode(t *testing.T) (n *testNode, yaml, dir string, drain func()) {
	dir = t.TempDir()
	fifo := filepath.Join(dir, "access.pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipe: %v", err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	var once sync.Once
	drain = func() { once.Do(func() { go func() { io.Copy(io.Discard, r); close(drained) }() }) }
	t.Cleanup(func() { <-drained; r.Close() })
	yaml = fmt.Sprintf(`
access_log: {path: %q}
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
`, fifo, startOrigin(t, "o"), origintest.Key.Text())
	n = startNode(t, yaml)
	t.Cleanup(drain) // runs before the node's Shutdown
	ua := strings.Repeat("u", 4<<10)
	for sent := 0; testutil.MetricSum(t, n.Registry(), "wedge_edge_access_log_dropped_total", nil) == 0; sent++ {
		if sent == 5000 {
			t.Fatal("nothing dropped")
		}
		n.do(t, "GET", "h", "/x", nil, "User-Agent", ua)
	}
	return n, yaml, dir, drain
}

// waitBounded waits for done, or fails after a minute (ctx gave 1s) and lets
// the log go so that done comes.
func waitBounded(t *testing.T, what string, done <-chan error, drain func()) {
	t.Helper()
	select {
	case err := <-done:
		t.Logf("%s returned: %v", what, err)
	case <-time.After(time.Minute): // the failure signal (the fix returns at ctx's 1s), not a margin
		t.Errorf("%s with a 1s context still waiting after a minute, on the access log's stuck write", what)
		drain()
		<-done
	}
}

// TestAccessLogStuckReload: a slow disk costs lines, never a reload.
// Reload reopens the log under reloadMu, and reopen once took the lock
// the writer held for as long as its write was stuck (a named pipe whose
// reader stalled, a hung network file system): the reload waited past
// its ctx as long as the disk did, and so did every release and Shutdown,
// which take reloadMu.
func TestAccessLogStuckReload(t *testing.T) {
	n, yaml, dir, drain := stuckLogNode(t)
	cfg, err := edge.ParseConfig([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Reload(ctx, cfg) }()
	waitBounded(t, "Reload", done, drain)
}

// TestAccessLogStuckShutdown: Shutdown waits for the log's last batch
// only within its ctx.
func TestAccessLogStuckShutdown(t *testing.T) {
	n, _, _, drain := stuckLogNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(ctx) }()
	waitBounded(t, "Shutdown", done, drain)
}
