package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/internal/testutil"
)

// TestPurgeResumesAfterRestart stops a POP after it applied a purge, issues
// one for its region and one for another while it is down, and starts it
// again on the same state directory: it applies the one it missed, once,
// and neither the one it had applied (the sequence it kept on disk says
// where it was) nor the other region's. A POP that kept nothing would read
// from a minute before it started and apply both of its purges again.
func TestPurgeResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, embedded.Options{})
	dir := t.TempDir()
	start := func() {
		nc, err := f.cp.Connect("pop1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		f.startPOP(fleet.Options{Conn: nc, Dir: dir})
		f.status("a report", func(manifest.Status) bool { return true })
	}
	applied := func() float64 {
		return testutil.MetricSum(t, f.node.Registry(), "wedge_fleet_purges_total", map[string]string{"result": "ok"})
	}
	purge := func(p manifest.Purge, timeout time.Duration) []string {
		t.Helper()
		res, err := f.stores.Purge(ctx, p, time.Minute, timeout)
		if err != nil {
			t.Fatal(err)
		}
		var by []string
		for _, c := range res.Confirmed {
			by = append(by, c.POP)
		}
		return by
	}

	start()
	if by := purge(manifest.Purge{Tag: "before"}, hangGuard); len(by) != 1 || by[0] != "pop1" {
		t.Fatalf("purge confirmed by %v, want pop1", by)
	}
	f.stop()
	// pop1 is down: nothing confirms, and the timeout only ends the wait.
	purge(manifest.Purge{Tag: "missed", Region: "eu-test"}, time.Millisecond)
	purge(manifest.Purge{Tag: "elsewhere", Region: "us-test"}, time.Millisecond)

	start()
	if by := purge(manifest.Purge{Tag: "after"}, hangGuard); len(by) != 1 || by[0] != "pop1" {
		t.Fatalf("purge after the restart confirmed by %v, want pop1", by)
	}
	// Purges apply in stream order, so "missed" came before "after".
	if n := applied(); n != 2 {
		t.Fatalf("the restarted POP applied %v purges, want 2 (the one it missed, and the new one)", n)
	}
	if n := testutil.MetricSum(t, f.node.Registry(), "wedge_fleet_purges_total", map[string]string{"result": "gap"}); n != 0 {
		t.Fatalf("the restarted POP emptied its cache %v times for a gap there was not", n)
	}
}
