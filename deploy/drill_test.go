package deploy_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/backup"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestDisasterDrill is the drill of README.md, "Backup and restore". Three
// POPs serve under load while a rollout of v2 bakes its first wave (a 50%
// canary in eu-west). The rollout controller stops, the control plane is
// backed up, then destroyed (shut down, its files deleted), and an empty
// one started on the same address, into which the backup is restored.
// Then: no request failed at any point; every POP runs exactly what it
// ran before (canary included) and applied nothing new, and reports to the
// restored control plane a revision above any the old one gave out; a new
// controller carries the restored rollout to done; and the audit stream
// holds every old entry once, unchanged, at its old sequence, with the new
// entries right after them.
func TestDisasterDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("a fleet of three POPs under load, and a control plane destroyed and restored")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dataDir := filepath.Join(t.TempDir(), "nats")
	cp, err := embedded.Start(embedded.Options{Dir: dataDir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the POPs stop.
	t.Cleanup(func() { cp.Shutdown() })
	url := cp.URL()
	hostPort := strings.TrimPrefix(url, "nats://")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	stores, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}

	fleetPOPs, key := startFleet(t, ctx, stores, pops[:3], func(string) string { return url })
	tl, sent, stopLoad := startLoad(ctx, fleetPOPs)
	defer stopLoad()

	// A rollout, stopped with its first wave baking.
	stopCtl := startController(t, ctx, stores, key.Public().(ed25519.PublicKey), nil)
	if _, err := registry.New(stores).Push(ctx, key, "stamp", "v2", wasmtest.Build(t, guests+"v2"), "test"); err != nil {
		t.Fatal(err)
	}
	id, err := rollout.Start(ctx, stores, rollout.Spec{Plugin: "stamp", Version: "v2", Waves: "eu-west:50%,eu-west,*",
		Gates: gates, Bake: 2 * time.Second, MinRequests: 30, Who: "test", Why: "disaster drill"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, "the first wave baking", func() bool {
		r, err := rollout.Get(ctx, stores, id)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Active() || r.Wave > 0 {
			t.Fatalf("rollout %s at %s before the drill", r.State, r.Progress())
		}
		return r.Phase == rollout.PhaseBaking
	})
	stopCtl()
	running, applies, oldRevision := map[string]manifest.Running{}, map[string]float64{}, uint64(0)
	for _, p := range fleetPOPs {
		running[p.name] = p.node.Running()["stamp"]
		applies[p.name] = counter(t, p.node.Registry(), "wedge_fleet_applies_total", "result", "ok")
	}
	if r := running["eu-west-1"]; r.Canary != "v2" || r.Share != 50 {
		t.Fatalf("eu-west-1 runs %+v in the first wave, want a 50%% canary of v2", r)
	}
	desired, err := stores.JS.Stream(ctx, "KV_"+manifest.BucketDesired)
	if err != nil {
		t.Fatal(err)
	}
	oldRevision = desired.CachedInfo().State.LastSeq
	oldAudit := auditLog(t, ctx, stores.Audit)

	// Back up, destroy, start empty, restore.
	dir := filepath.Join(t.TempDir(), "backup")
	start := time.Now()
	m, err := backup.Backup(ctx, nc, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup of %d streams in %s", len(m.Streams), time.Since(start).Round(time.Millisecond))
	nc.Close()
	cp.Shutdown()
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	if cp, err = embedded.Start(embedded.Options{Dir: dataDir, Listen: hostPort}); err != nil {
		t.Fatalf("an empty control plane on %s: %v", hostPort, err)
	}
	if nc, err = nats.Connect(url); err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := backup.Restore(ctx, nc, dir, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	t.Logf("control plane destroyed, then restored in %s", restored.Sub(down).Round(time.Millisecond))
	if stores, err = controlplane.Open(ctx, nc); err != nil {
		t.Fatal(err)
	}

	// Every POP reports to the restored control plane, in step with it.
	for _, p := range fleetPOPs {
		testutil.Eventually(t, hangGuard, p.name+" reporting to the restored control plane", func() bool {
			st, err := stores.Status.Get(ctx, manifest.StatusKey(p.region, p.name))
			if err != nil {
				return false
			}
			var s manifest.Status
			if err := json.Unmarshal(st.Value(), &s); err != nil {
				t.Fatal(err)
			}
			if !s.Applied && s.Error != "" {
				t.Fatalf("%s refused the restored desired state: %s", p.name, s.Error)
			}
			// Its first report may go out before it has caught up. A
			// region the rollout has not reached has no desired state:
			// revision 0.
			caughtUp := s.Revision > oldRevision || p.region != "eu-west" && s.Revision == 0
			return s.Time.After(restored) && s.Applied && s.Source == "control" && caughtUp
		})
	}
	for _, p := range fleetPOPs {
		if got := p.node.Running()["stamp"]; got != running[p.name] {
			t.Errorf("%s runs %+v after the restore, %+v before", p.name, got, running[p.name])
		}
		if got := counter(t, p.node.Registry(), "wedge_fleet_applies_total", "result", "ok"); got != applies[p.name] {
			t.Errorf("%s applied a desired state %v times across the drill", p.name, got-applies[p.name])
		}
		if nack := counter(t, p.node.Registry(), "wedge_fleet_applies_total", "result", "nack"); nack != 0 {
			t.Errorf("%s refused %v desired states", p.name, nack)
		}
	}
	if f := tl.failures(); len(f) != 0 {
		t.Fatalf("requests failed during the drill: %v", f)
	}

	// A new controller carries the restored rollout on.
	defer startController(t, ctx, stores, key.Public().(ed25519.PublicKey), nil)()
	testutil.Eventually(t, hangGuard, "the restored rollout done", func() bool {
		r, err := rollout.Get(ctx, stores, id)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Active() && r.State != rollout.StateDone {
			t.Fatalf("restored rollout %s: %s", r.State, r.Reason)
		}
		return r.State == rollout.StateDone
	})
	waitRunning(t, fleetPOPs, "v2")
	if f := tl.failures(); len(f) != 0 {
		t.Fatalf("requests failed during the drill: %v", f)
	}

	// The audit: the old entries as they were, the new ones after them.
	newAudit := auditLog(t, ctx, stores.Audit)
	if len(newAudit) <= len(oldAudit) || strings.Join(newAudit[:len(oldAudit)], "\n") != strings.Join(oldAudit, "\n") {
		t.Fatalf("audit before the drill:\n%s\nafter it:\n%s", strings.Join(oldAudit, "\n"), strings.Join(newAudit, "\n"))
	}
	var steps []string
	for _, line := range newAudit {
		steps = append(steps, line[strings.Index(line, " ")+1:strings.Index(line, "{")-1])
	}
	want := []string{"wedge.audit.registry", "wedge.audit.rollout.start"}
	for range 3 {
		want = append(want, "wedge.audit.wave.apply", "wedge.audit.wave.applied", "wedge.audit.wave.promote")
	}
	want = append(want, "wedge.audit.rollout.done")
	if strings.Join(steps, ",") != strings.Join(want, ",") {
		t.Fatalf("audit steps %v, want each of %v once", steps, want)
	}
	t.Logf("audit: %d entries before the drill, %d after it, in sequence; %d requests, none failed",
		len(oldAudit), len(newAudit), sent.Load())
}

// auditLog is every entry of the audit stream: its sequence, subject and
// bytes, read by sequence so that a gap shows.
func auditLog(t *testing.T, ctx context.Context, audit jetstream.Stream) []string {
	t.Helper()
	info, err := audit.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := audit.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("audit entry %d: %v", seq, err)
		}
		out = append(out, fmt.Sprintf("%d %s %s", seq, m.Subject, m.Data))
	}
	return out
}
