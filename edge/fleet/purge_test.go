package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestPurgeResumesAfterRestart stops a POP after it applied a purge, issues
// one for its region and one for another while it is down, and starts it
// again on the same state directory: it applies and confirms the one it
// missed, once, and not the one it had applied (the sequence it kept on
// disk says where it was); the other region's it applies without
// confirming (it may be that region's shield). A POP that kept nothing
// would read from a minute before it started and apply both of its purges
// again. Its position, which the cache tier's owners compare with askers',
// ends at the stream's last record.
func TestPurgeResumesAfterRestart(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	dir := t.TempDir()
	f.startPurgePOP(dir)
	f.purgeConfirmed("before")
	f.stop()
	// pop1 is down: nothing confirms, and the timeout only ends the wait.
	f.purge(manifest.Purge{Tag: "missed", Region: "eu-test"})
	f.purge(manifest.Purge{Tag: "elsewhere", Region: "us-test"})

	f.startPurgePOP(dir)
	f.purgeConfirmed("after")
	// Purges apply in stream order, so "missed" came before "after".
	if n := f.purges("ok"); n != 2 {
		t.Fatalf("the restarted POP applied %v purges, want 2 (the one it missed, and the new one)", n)
	}
	if n := f.purges("gap"); n != 0 {
		t.Fatalf("the restarted POP emptied its cache %v times for a gap there was not", n)
	}
	if n := f.purges("other"); n != 1 {
		t.Fatalf("the restarted POP applied %v of the other region's purges, want 1", n)
	}
	if got := f.node.Purged(); got != 4 {
		t.Fatalf("the node's purge position is %d after 4 records, want 4", got)
	}
}

// TestPurgePositionFromDisk: a POP's purge position is the one it saved,
// from the moment its agent is made, before it reads the stream (or when
// it cannot): the tier's owners must not make every ask wait until the next
// purge arrives.
func TestPurgePositionFromDisk(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "purge.json"), []byte(`{"stream":"2026-01-02T03:04:05Z","seq":7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := edge.ParseConfig(fmt.Appendf(nil, "origins: {app: {addr: \"127.0.0.1:1\", key: %q}}\nroutes: [{path: /, origin: app}]\n",
		origintest.Key.Text()), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	if _, err := fleet.New(n, fleet.Options{URL: "nats://127.0.0.1:1", Region: "eu-test", POP: "pop1", Dir: dir, Trust: testTrust(t), Control: testTrust(t)}); err != nil {
		t.Fatal(err)
	}
	if got := n.Purged(); got != 7 {
		t.Fatalf("purge position %d once the agent is made, want the 7 it saved", got)
	}
}

// TestPurgeGapsOnlyForItsOwn: another region's purges, read while the POP
// followed the stream, leave it (deleted here, as age does); a POP that
// reads on from there is missing none of its own, so it keeps its cache. A
// record of its own that left while it was down empties the cache once,
// and not again at every start after.
func TestPurgeGapsOnlyForItsOwn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, embedded.Options{})
	dir := t.TempDir()
	st, err := f.stores.JS.Stream(ctx, manifest.StreamPurge)
	if err != nil {
		t.Fatal(err)
	}
	drop := func(seqs ...uint64) {
		t.Helper()
		for _, seq := range seqs {
			if err := st.DeleteMsg(ctx, seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	startAndCount := func(want float64) {
		t.Helper()
		f.startPurgePOP(dir)
		f.purgeConfirmed("sync") // the POP is past whatever it read at its start
		if n := f.purges("gap"); n != want {
			t.Fatalf("the POP emptied its cache %v times at its start, want %v", n, want)
		}
		f.stop()
	}

	f.startPurgePOP(dir)
	f.purgeConfirmed("own") // 1
	f.purge(manifest.Purge{Tag: "other", Region: "us-test"})
	f.purge(manifest.Purge{Tag: "other", Region: "us-test"}) // 3
	testutil.Eventually(t, hangGuard, "the POP's position past the other region's purges", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "purge.json"))
		var pos struct{ Seq uint64 }
		return json.Unmarshal(b, &pos) == nil && pos.Seq == 3
	})
	f.stop()
	drop(1, 2, 3)
	startAndCount(0) // 4

	f.purge(manifest.Purge{Tag: "missed", Region: "eu-test"}) // 5
	drop(4, 5)
	f.startPurgePOP(dir)
	testutil.Eventually(t, hangGuard, "the cache emptied for the purge missed", func() bool { return f.purges("gap") == 1 })
	f.stop()
	startAndCount(0)
}

// startPurgePOP starts the POP with its state in dir and waits for its
// first report.
func (f *fixture) startPurgePOP(dir string) {
	f.t.Helper()
	nc, err := f.cp.Connect("pop1")
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(nc.Close)
	f.startPOP(fleet.Options{Conn: nc, Dir: dir})
	f.status("a report", func(manifest.Status) bool { return true })
}

// purge issues p and returns at once: for purges no POP is there to
// confirm.
func (f *fixture) purge(p manifest.Purge) {
	f.t.Helper()
	if _, err := f.stores.Purge(context.Background(), p, time.Minute, time.Millisecond); err != nil {
		f.t.Fatal(err)
	}
}

// purgeConfirmed issues a purge of tag for the whole fleet and waits for
// pop1 to confirm it.
func (f *fixture) purgeConfirmed(tag string) {
	f.t.Helper()
	res, err := f.stores.Purge(context.Background(), manifest.Purge{Tag: tag}, time.Minute, hangGuard)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(res.Confirmed) != 1 || res.Confirmed[0].POP != "pop1" {
		f.t.Fatalf("purge %s confirmed by %+v, want pop1", tag, res.Confirmed)
	}
}

// purges is the POP's count of purges with result.
func (f *fixture) purges(result string) float64 {
	return testutil.MetricSum(f.t, f.node.Registry(), "wedge_fleet_purges_total", map[string]string{"result": result})
}

// TestPurgeStreamMissing: a control plane that predates purges has no
// purge stream. The POP asks for it again and again, but says so once,
// not at every try.
func TestPurgeStreamMissing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, embedded.Options{})
	if err := f.stores.JS.DeleteStream(ctx, manifest.StreamPurge); err != nil {
		t.Fatal(err)
	}
	nc, err := f.cp.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	asked, err := nc.SubscribeSync("$JS.API.STREAM.INFO." + manifest.StreamPurge)
	if err != nil {
		t.Fatal(err)
	}
	var log testutil.SyncBuffer
	f.log = slog.New(slog.NewTextHandler(&log, nil))
	f.startPurgePOP("")
	for range 3 {
		if _, err := asked.NextMsg(hangGuard); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(log.String(), "stream not found"); n != 1 {
		t.Fatalf("the POP said %d times that there is no purge stream, want once:\n%s", n, log.String())
	}
}

// TestPurgeStreamDeletedWhileFollowed deletes the purge stream under a POP
// that follows it: the POP says so (nats.go, left to itself, would try to
// recreate its consumer inside Next forever, where the agent's stop cannot
// reach it, and where the POP would say nothing), and follows the stream
// again once it is back.
func TestPurgeStreamDeletedWhileFollowed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, embedded.Options{})
	var log testutil.SyncBuffer
	f.log = slog.New(slog.NewTextHandler(&log, nil))
	f.startPurgePOP("")
	f.purgeConfirmed("before")
	if err := f.stores.JS.DeleteStream(ctx, manifest.StreamPurge); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, "the POP saying the purge stream is gone", func() bool {
		return strings.Contains(log.String(), "stream not found")
	})
	nc, err := f.cp.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := controlplane.Ensure(ctx, nc); err != nil {
		t.Fatal(err)
	}
	f.purgeConfirmed("after")
}
