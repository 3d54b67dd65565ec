package deploy_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/internal/testutil"
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
// request failed, and the audit stream holds every step exactly once,
// though the controller's connection was cut just after it published its
// first step, before the ack: the step it published again was dropped as
// a duplicate (its Nats-Msg-Id, within the stream's two-minute duplicate
// window).
func TestClusterServerLostMidRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-server control plane, a fleet of three POPs under load, and a server lost")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Started first, so it stops after the POPs and the controller.
	cluster, testNC := controlplanetest.StartCluster(t)
	url := cluster.URL() // nats://a,nats://b,nats://c
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

	// The controller dials the victim first, through a proxy that cuts
	// its connection right after its first wave.apply entry goes out,
	// before the ack returns: the controller repeats the step, and the
	// entry's Nats-Msg-Id makes the stream drop the second copy. Later it
	// loses the victim too.
	members := strings.Split(url, ",")
	cutter := startAckCutter(t, strings.TrimPrefix(members[victim], "nats://"), manifest.SubjectAudit+".wave.apply")
	order := []string{cutter.url()}
	for i, m := range members {
		if i != victim {
			order = append(order, m)
		}
	}
	linkLog := slog.New(slog.NewTextHandler(&testutil.SyncBuffer{}, nil))
	ctlNC, err := controlplane.Dial(strings.Join(order, ","), "controller", linkLog, nats.DontRandomize())
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

	// ap-south's POP dials its leaf, the others the cluster's list.
	fleetPOPs, key := startFleet(t, ctx, stores, []popSpec{pops[0], pops[1], pops[3]}, func(region string) string {
		if region == "ap-south" {
			return leaf.URL()
		}
		return url
	})

	ctlLog := &testutil.SyncBuffer{}
	defer startController(t, ctx, ctlStores, key.Public().(ed25519.PublicKey), slog.New(slog.NewTextHandler(ctlLog, nil)))()

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
			e, err := stores.Status.Get(ctx, manifest.StatusKey(p.region, p.name))
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
	// The first wave.apply kept is the one whose ack was cut: the step
	// was published again (the rollout went on, which takes an ack), and
	// that copy was dropped as a duplicate.
	cut := cutter.message(t)
	if first := audit[slices.IndexFunc(audit, func(a manifest.Audit) bool { return a.Rollout == id && a.Action == "wave.apply" })]; !first.Time.Equal(cut.Time) {
		t.Fatalf("the first wave.apply kept was published at %s; the one whose ack was cut, at %s", first.Time, cut.Time)
	}
	if warn := grepLines(ctlLog.String(), "time="); warn != "" {
		t.Logf("controller log:\n%s", warn)
	}
	t.Logf("%d requests in all, none failed", sent.Load())
}

// ackCutter is a TCP proxy to a NATS server's client port. It passes a
// client's traffic until the client publishes on subject: it passes that
// message whole, then cuts the connection before the server's ack can
// come back, as a server lost just after taking a publish would. It cuts
// once; later connections pass.
type ackCutter struct {
	ln              net.Listener
	target, subject string
	mu              sync.Mutex
	cut             []byte // the message's body once cut off
}

func startAckCutter(t *testing.T, target, subject string) *ackCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &ackCutter{ln: ln, target: target, subject: subject}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go a.forward(c)
		}
	}()
	return a
}

func (a *ackCutter) url() string { return "nats://" + a.ln.Addr().String() }

// message is the audit entry whose ack was cut off.
func (a *ackCutter) message(t *testing.T) manifest.Audit {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var e manifest.Audit
	if err := json.Unmarshal(a.cut, &e); err != nil {
		t.Fatalf("the message cut off (%q): %v", a.cut, err)
	}
	return e
}

// take reports whether to cut after the message with this body, the
// first on the subject.
func (a *ackCutter) take(body []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cut != nil {
		return false
	}
	a.cut = body
	return true
}

// forward reads the client's protocol operations whole (a PUB or HPUB
// with its payload) and passes them to the server, and the server's
// bytes back, until either side closes or a cut.
func (a *ackCutter) forward(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", a.target)
	if err != nil {
		return // the server is down: the client tries its next one
	}
	defer s.Close()
	var backMu sync.Mutex // held while passing the server's bytes back
	cutOff := false
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			backMu.Lock()
			if n > 0 && !cutOff {
				c.Write(buf[:n]) // a failure ends the client's side, and so this
			}
			backMu.Unlock()
			if err != nil {
				c.Close()
				return
			}
		}
	}()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		f := strings.Fields(string(line))
		var payload []byte
		if len(f) >= 3 && (f[0] == "PUB" || f[0] == "HPUB") {
			size, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return
			}
			payload = make([]byte, size+2) // and its CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
		}
		cut := false
		if payload != nil && f[1] == a.subject {
			hdr := 0 // HPUB SUBJECT [REPLY] HDR_SIZE TOTAL_SIZE: headers first
			if f[0] == "HPUB" {
				if hdr, err = strconv.Atoi(f[len(f)-2]); err != nil || hdr > len(payload)-2 {
					return
				}
			}
			cut = a.take(payload[hdr : len(payload)-2])
		}
		if cut {
			backMu.Lock()
			cutOff = true
			backMu.Unlock()
		}
		if _, err := s.Write(append(line, payload...)); err != nil || cut {
			return
		}
	}
}
