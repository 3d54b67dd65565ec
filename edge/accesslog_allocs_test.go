//go:build !race

package edge_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
)

// TestServeHitAccessLogAllocs is TestServeHitAllocs with the access log
// on: building each hit's line, with its chain's times, and queueing it
// stays at zero allocations.
func TestServeHitAccessLogAllocs(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	n, req := startHitNodeWith(t, fmt.Sprintf("access_log: {path: %q}", logFile))
	h := n.Handler()
	ctx, r := handlerCtx(t, req)
	fill(h, ctx, r)
	for range 10 {
		serveHit(t, h, ctx, r)
	}
	if a := leastAllocs(func() { serveHit(t, h, ctx, r) }); a != 0 {
		t.Fatalf("%v allocations per hit, want 0", a)
	}
	// The hits were logged: the test measured the log's work. Lines past
	// the log's buffer are dropped and counted, not waited for: a writer
	// slow to be scheduled (a busy machine) drops some of 3000 queued at
	// once.
	testutil.Eventually(t, 10*time.Second, "3000 lines in the access log, written or dropped", func() bool {
		b, _ := os.ReadFile(logFile)
		return float64(bytes.Count(b, []byte{'\n'}))+
			testutil.MetricSum(t, n.Registry(), "wedge_edge_access_log_dropped_total", nil) >= 3000
	})
	if b, _ := os.ReadFile(logFile); !bytes.Contains(b, []byte(`"cache_status":"wedge; hit`)) {
		t.Fatal("no hit in the access log")
	}
}

// BenchmarkServeHitAccessLog is BenchmarkServeHit's handler case with the
// access log off and on (to a file), in one run: what the log costs a
// hit.
func BenchmarkServeHitAccessLog(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("access_log=%t", on), func(b *testing.B) {
			extra := ""
			if on {
				extra = fmt.Sprintf("access_log: {path: %q}", filepath.Join(b.TempDir(), "access.log"))
			}
			n, req := startHitNodeWith(b, extra)
			benchHandlerHit(b, n, req)
		})
	}
}
