package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestClusterServerLostMidRollout runs the control plane on a cluster of
// three NATS servers (every bucket and stream kept in three copies) and
// stops one while the first wave of a rollout bakes: the leader of the
// audit stream, which the controller is connected to. Two POPs dial the
// cluster by its list of URLs; the third reaches it through its region's
// leaf node. With the server down the rollout goes on to its next wave
// and every POP keeps reporting; the server comes back on its files and
// catches up; the rollout finishes, every POP runs the new version, no
// request failed, and the audit stream holds every step exactly once.
func TestClusterServerLostMidRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-server control plane, a fleet of three POPs under load, and a server lost")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cluster, err := embedded.StartCluster(t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the POPs and the controller stop.
	t.Cleanup(cluster.Shutdown)
	url := cluster.URL() // nats://a,nats://b,nats://c
	linkLog := slog.New(slog.NewTextHandler(&testutil.SyncBuffer{}, nil))
	testNC, err := controlplane.Dial(url, "test", linkLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testNC.Close)
	stores, err := controlplane.Ensure(ctx, testNC)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stores.Audit.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("audit stream: %d replicas, cluster %+v; want 3 replicas and a leader", info.Config.Replicas, info.Cluster)
	}
	victim := cluster.Index(info.Cluster.Leader)

	// The controller dials the victim first: it loses its server too.
	members := strings.Split(url, ",")
	ctlURL := strings.Join(append([]string{members[victim]}, append(members[:victim:victim], members[victim+1:]...)...), ",")
	ctlNC, err := controlplane.Dial(ctlURL, "controller", linkLog, nats.DontRandomize())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctlNC.Close)
	ctlStores, err := controlplane.Ensure(ctx, ctlNC)
	if err != nil {
		t.Fatal(err)
	}
	if got := ctlNC.ConnectedServerName(); got != info.Cluster.Leader {
		t.Fatalf("the controller is connected to %s, want %s", got, info.Cluster.Leader)
	}

	// ap-south's POP attaches to its region's leaf node.
	leaf, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", Name: "leaf-ap-south", Hub: cluster.LeafURLs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Shutdown)

	key, trust := signer(t)
	originAddr := origintest.Start(t, origintest.OK).Addr
	v1 := filepath.Join(t.TempDir(), "v1.wasm")
	if err := os.WriteFile(v1, wasmtest.Build(t, guests+"v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	fleetPOPs := []*pop{
		startPOP(t, ctx, url, trust, "eu-west", "eu-west-1", originAddr, v1),
		startPOP(t, ctx, url, trust, "eu-west", "eu-west-2", originAddr, v1),
		startPOP(t, ctx, leaf.URL(), trust, "ap-south", "ap-south-1", originAddr, v1),
	}
	for _, p := range fleetPOPs {
		testutil.Eventually(t, hangGuard, "a status report from "+p.name, func() bool {
			_, err := stores.Status.Get(ctx, manifest.POPKey(p.name))
			return err == nil
		})
	}

	ctlLog := &testutil.SyncBuffer{}
	ctl := rollout.NewController(ctlStores, rollout.Options{Tick: 50 * time.Millisecond, ApplyTimeout: hangGuard,
		Log: slog.New(slog.NewTextHandler(ctlLog, nil))})
	ctlCtx, stopCtl := context.WithCancel(ctx)
	ctlDone := make(chan struct{})
	go func() { ctl.Run(ctlCtx); close(ctlDone) }()
	defer func() { stopCtl(); <-ctlDone }()

	tl, sent, stopLoad := startLoad(ctx, fleetPOPs)
	defer stopLoad()

	if _, err := registry.New(stores).Push(ctx, key, "stamp", "v2", wasmtest.Build(t, guests+"v2"), "test"); err != nil {
		t.Fatal(err)
	}
	id, err := rollout.Start(ctx, stores, rollout.Spec{Plugin: "stamp", Version: "v2", Waves: "eu-west:10%,eu-west,*",
		Gates: gates, Bake: 2 * time.Second, MinRequests: 30, Who: "test", Why: "a control plane server lost mid-rollout"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, "the first wave baking", func() bool {
		r, err := rollout.Get(ctx, stores, id)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Active() || r.Wave > 0 {
			t.Fatalf("rollout %s at %s before the server was lost", r.State, r.Progress())
		}
		return r.Phase == rollout.PhaseBaking
	})

	// Lost: the rollout and the POPs go on with two servers.
	cluster.Stop(victim)
	down := time.Now()
	reported := map[string]uint64{}
	testutil.Eventually(t, hangGuard, "the second wave applied, and every POP reporting, with a server down", func() bool {
		r, err := rollout.Get(ctx, stores, id)
		if err != nil {
			return false // the test's connection may be on the lost server
		}
		if !r.Active() && r.State != rollout.StateDone {
			t.Fatalf("rollout %s with a server down: %s", r.State, r.Reason)
		}
		for _, p := range fleetPOPs {
			e, err := stores.Status.Get(ctx, manifest.POPKey(p.name))
			if err != nil || e.Created().Before(down) {
				return false
			}
			reported[p.name] = e.Revision()
		}
		return r.Wave >= 1
	})
	t.Logf("with %s down for %s: the rollout reached its second wave, every POP reported (revisions %v)",
		info.Cluster.Leader, time.Since(down).Round(time.Millisecond), reported)
	if got := ctlNC.ConnectedServerName(); got == info.Cluster.Leader || got == "" {
		t.Fatalf("the controller is connected to %q with %s down", got, info.Cluster.Leader)
	}

	// Back, on its files; it catches up with the others.
	if err := cluster.Restart(victim); err != nil {
		t.Fatal(err)
	}
	readyCtx, cancelReady := context.WithTimeout(ctx, hangGuard)
	defer cancelReady()
	if err := cluster.WaitReady(readyCtx); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	testutil.Eventually(t, hangGuard, "the rollout done", func() bool {
		r, err := rollout.Get(ctx, stores, id)
		if err != nil {
			return false
		}
		if !r.Active() && r.State != rollout.StateDone {
			t.Fatalf("rollout %s: %s", r.State, r.Reason)
		}
		return r.State == rollout.StateDone
	})
	waitRunning(t, fleetPOPs, "v2")
	t.Logf("after the server returned: the rollout done and every POP on v2 in %s", time.Since(up).Round(time.Millisecond))
	// The returned server holds the audit stream again, all of it.
	testutil.Eventually(t, hangGuard, "three current copies of the audit stream", func() bool {
		info, err := stores.Audit.Info(ctx)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline || r.Lag != 0 {
				return false
			}
		}
		return true
	})
	stopLoad()
	if f := tl.failures(); len(f) != 0 {
		t.Fatalf("requests failed: %v", f)
	}

	// Every step once, in order.
	audit, err := rollout.RecentAudit(ctx, stores, 500)
	if err != nil {
		t.Fatal(err)
	}
	var steps, timeline []string
	for _, a := range audit {
		if a.Rollout != id {
			continue
		}
		steps = append(steps, strings.TrimSpace(a.Action+" "+a.Region))
		timeline = append(timeline, fmt.Sprintf("%+.3fs %s %s", a.Time.Sub(down).Seconds(), a.Action, a.Region))
	}
	t.Logf("audit, in seconds from the server's loss:\n%s", strings.Join(timeline, "\n"))
	want := []string{"rollout.start",
		"wave.apply eu-west", "wave.applied eu-west", "wave.promote eu-west",
		"wave.apply eu-west", "wave.applied eu-west", "wave.promote eu-west",
		"wave.apply ap-south", "wave.applied ap-south", "wave.promote ap-south",
		"rollout.done"}
	if strings.Join(steps, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit of %s:\n%s\nwant exactly:\n%s\ncontroller log:\n%s", id, strings.Join(steps, "\n"), strings.Join(want, "\n"), ctlLog.String())
	}
	if warn := grepLines(ctlLog.String(), "time="); warn != "" {
		t.Logf("controller log:\n%s", warn)
	}
	t.Logf("%d requests in all, none failed", sent.Load())
}
