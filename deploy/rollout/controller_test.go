package rollout

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/internal/testutil"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// audit returns the audit entries of a rollout with the given action.
func (e *env) audit(id, action string) []manifest.Audit {
	all, err := RecentAudit(e.ctx, e.s, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(a manifest.Audit) bool { return a.Rollout != id || a.Action != action })
}

// A controller that lost the lease must not overwrite what its successor
// saved; a command the CLI queued meanwhile is merged, not a conflict.
func TestSaveKeepsAnotherControllersState(t *testing.T) {
	e := newEnv(t)
	e.putDesired("eu-west", manifest.Desired{Plugins: map[string]manifest.Release{}})
	id := e.start("eu-west:10%", time.Hour)
	old, succ := NewController(e.s, Options{Log: discard, Key: e.key}), NewController(e.s, Options{Log: discard, Key: e.key})
	stale, err := Get(e.ctx, e.s, id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Get(e.ctx, e.s, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := Command(e.ctx, e.s, id, ActionPause, "bob", "lunch"); err != nil {
		t.Fatal(err)
	}
	r.Reason = "saved by the successor"
	if err := succ.save(e.ctx, r); err != nil {
		t.Fatalf("save over a queued command: %v", err)
	}
	got, err := Get(e.ctx, e.s, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Reason != r.Reason || len(got.Commands) != 1 || got.Commands[0].Action != ActionPause {
		t.Fatalf("after the successor's save: reason %q, commands %+v", got.Reason, got.Commands)
	}
	stale.Reason = "saved by the old controller"
	if err := old.save(e.ctx, stale); err == nil || !strings.Contains(err.Error(), "another controller changed it") {
		t.Errorf("stale save: %v, want a refusal", err)
	}
	if got, _ = Get(e.ctx, e.s, id); got.Reason != r.Reason || len(got.Commands) != 1 {
		t.Errorf("stale save overwrote the successor's record: reason %q, commands %+v", got.Reason, got.Commands)
	}
}

// A tick renews the lease before each step and stops when another
// controller holds it.
func TestTickStopsWhenLeaseIsLost(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.start("eu-west:10%", time.Hour)
	if _, err := Start(e.ctx, e.s, Spec{Plugin: "auth", Version: "v2", Key: "api/auth", Waves: "us-east",
		Gates: "error_rate<1%", Bake: time.Hour, Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	c := NewController(e.s, Options{Log: discard, Key: e.key})
	var stepped []string
	c.beforeStep = func(r *Rollout) {
		stepped = append(stepped, r.ID)
		if len(stepped) == 2 { // a successor took over during the first step
			b, _ := json.Marshal(lease{Holder: "successor", Expires: time.Now().Add(time.Hour)})
			if _, err := e.s.Rollouts.Put(e.ctx, leaseKey, b); err != nil {
				t.Error(err)
			}
		}
	}
	if err := c.tick(e.ctx); err != nil {
		t.Fatal(err)
	}
	if len(stepped) != 2 {
		t.Fatalf("tick reached %d rollouts, want 2", len(stepped))
	}
	first, _ := Get(e.ctx, e.s, stepped[0])
	second, _ := Get(e.ctx, e.s, stepped[1])
	if first.Phase != PhaseApplying {
		t.Errorf("first rollout, stepped under the lease: %s", first.Progress())
	}
	if second.Phase != PhasePending || len(second.Touched) != 0 || len(e.actions(second.ID)) != 1 {
		t.Errorf("second rollout stepped without the lease: %s, touched %v, audit %v", second.Progress(), second.Touched, e.actions(second.ID))
	}
}

// Rolling back a finished rollout restores only the regions that still
// run what it wrote, and says why it left the others.
func TestRollbackOfFinishedRolloutKeepsNewerWork(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.controller()
	id := e.start("eu-west,us-east", 100*time.Millisecond)
	if r := e.wait(id, "done", func(r *Rollout) bool { return !r.Active() }); r.State != StateDone {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	// Newer work: someone put v1 on us-east since.
	d, _ := e.desired("us-east")
	d.Plugins["auth"] = manifest.Release{Artifact: e.v1}
	e.putDesired("us-east", d)
	if err := Command(e.ctx, e.s, id, ActionRollback, "dave", "revert"); err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return r.State == StateRolledBack })
	if d, _ := e.desired("eu-west"); d.Plugins["auth"].Artifact.Digest != e.v1.Digest {
		t.Errorf("eu-west after rollback runs %+v, want v1", d.Plugins["auth"])
	}
	if d, _ := e.desired("us-east"); d.Plugins["auth"].Artifact.Digest != e.v1.Digest {
		t.Errorf("us-east after rollback: %+v, want the newer v1 kept", d.Plugins)
	}
	if !slices.Equal(r.RollbackKept, []string{"us-east"}) || !strings.Contains(r.Reason+e.audit(id, "rollout.rolled_back")[0].Why, "us-east left as they are") {
		t.Errorf("kept %v, final audit %q", r.RollbackKept, e.audit(id, "rollout.rolled_back")[0].Why)
	}
	skips := e.audit(id, "region.skip")
	if len(skips) != 1 || skips[0].Region != "us-east" || !strings.Contains(skips[0].Why, "auth is now auth@v1, not what rollout") {
		t.Errorf("region.skip entries: %+v", skips)
	}
	// The lock goes just after the end is saved (TestStartTakesEndedLock).
	testutil.Eventually(t, time.Minute, "the rolled-back rollout's lock released", func() bool {
		_, err := e.s.Rollouts.Get(e.ctx, lockKey("auth"))
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}

// A rollback of a finished rollout queued before a new rollout of the key
// started is ignored: it would undo the new one.
func TestRollbackOfFinishedRolloutNeedsTheLock(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	stop := e.controller()
	id := e.start("eu-west", 100*time.Millisecond)
	if r := e.wait(id, "done", func(r *Rollout) bool { return !r.Active() }); r.State != StateDone {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	stop()
	if err := Command(e.ctx, e.s, id, ActionRollback, "dave", "revert"); err != nil {
		t.Fatal(err)
	}
	id2 := e.start("us-east", time.Hour)
	e.controller()
	r := e.wait(id, "the rollback handled", func(r *Rollout) bool { return r.Handled >= 1 })
	if r.State != StateDone || !slices.Contains(e.actions(id), "rollout.ignored") {
		t.Errorf("state %s, audit %v: want the rollback ignored", r.State, e.actions(id))
	}
	if d, _ := e.desired("eu-west"); d.Plugins["auth"].Artifact.Digest != e.v2.Digest {
		t.Errorf("eu-west runs %+v, want v2 still", d.Plugins["auth"])
	}
	if l, err := e.s.Rollouts.Get(e.ctx, lockKey("auth")); err != nil || string(l.Value()) != id2 {
		t.Errorf("lock of auth: %v, want held by %s", err, id2)
	}
}

// A wave whose region stops reporting while it bakes is rolled back
// rather than left baking forever. Fresh and ApplyTimeout are short so the
// test is, but not so short that the fake POPs (reporting every 20 ms)
// going unscheduled for a moment on a busy machine looks like silence.
func TestSilentRegionRollsBack(t *testing.T) {
	e := newEnv(t)
	stops := e.fleet()
	e.controllerWith(Options{Tick: 25 * time.Millisecond, Fresh: time.Second, ApplyTimeout: 3 * time.Second})
	id := e.start("eu-west:10%,eu-west", time.Hour)
	e.wait(id, "baking", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	stops["eu-west-1"]()
	stops["eu-west-2"]()
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "POPs of eu-west stopped reporting for ") {
		t.Errorf("state %s, reason %q", r.State, r.Reason)
	}
	// No POP of eu-west confirmed the restore: the audit must not claim it.
	a := e.audit(id, "rollout.rolled_back")
	if len(a) != 1 || strings.Contains(a[0].Why, "on every POP") || !strings.Contains(a[0].Why, "auth restored in the desired state of eu-west, where no POP reports") {
		t.Errorf("rolled_back entries %+v: want one, saying no POP of eu-west confirmed", a)
	}
}

// confirmed names every POP that refused, and the ones still behind.
func TestConfirmedNamesEveryNACK(t *testing.T) {
	f := &fleet{status: []manifest.Status{
		{POP: "p1", Region: "eu", Revision: 5, Error: "trap"},
		{POP: "p2", Region: "eu", Revision: 4, Applied: true},
		{POP: "p3", Region: "eu", Revision: 5, Applied: true,
			Refused: []manifest.Refused{{Key: manifest.RegionKey("eu"), Revision: 5, Error: "refused (unsigned)"}}},
	}}
	ran, waiting, nacks := confirmed(f, "eu", 5, "auth", nil, nil)
	nack := strings.Join(nacks, "; ")
	if len(ran) != 0 || !slices.Equal(waiting, []string{"p2"}) || !strings.Contains(nack, "POP p1 refused revision 5: trap") ||
		!strings.Contains(nack, "POP p3 refused revision 5: refused (unsigned)") {
		t.Errorf("confirmed: ran %v, waiting %v, nack %q", ran, waiting, nack)
	}
}

func TestProgressSaysWaitingForTraffic(t *testing.T) {
	r := &Rollout{State: StateRunning, Phase: PhaseBaking, Waves: []Wave{{Region: "eu-west", Share: 10}},
		MinRequests: 20, Window: Window{Requests: 3}}
	if got, want := r.Progress(), "wave 1/1 eu-west:10% baking, waiting for traffic (3/20 requests)"; got != want {
		t.Errorf("Progress() = %q, want %q", got, want)
	}
	r.Window.Requests = 20
	if got := r.Progress(); strings.Contains(got, "waiting") {
		t.Errorf("Progress() with enough traffic = %q", got)
	}
}

// Freshness is the server's time of a report, whatever the POP's clock.
func TestFreshnessUsesServerTime(t *testing.T) {
	e := newEnv(t)
	for pop, skew := range map[string]time.Duration{"behind": -time.Hour, "ahead": time.Hour} {
		b, _ := json.Marshal(manifest.Status{POP: pop, Region: "eu-west", Time: time.Now().Add(skew), Applied: true})
		if _, err := e.s.Status.Put(e.ctx, manifest.StatusKey("eu-west", pop), b); err != nil {
			t.Fatal(err)
		}
	}
	f, err := readFleet(e.ctx, e.s, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.pops("eu-west")); n != 2 {
		t.Errorf("%d POPs fresh within a minute of their reports, want 2 (a POP clock an hour behind)", n)
	}
	if f, err = readFleet(e.ctx, e.s, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if n := len(f.pops("eu-west")); n != 0 {
		t.Errorf("%d POPs fresh within 1ns of their reports, want 0 (a POP clock an hour ahead)", n)
	}
}

// One unreadable record must not stop the controller handling the others.
func TestCorruptRecordIsSkipped(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	if _, err := e.s.Rollouts.Put(e.ctx, "auth-garbage", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	e.controller()
	id := e.start("eu-west:10%", time.Hour)
	e.wait(id, "baking", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	if err := Command(e.ctx, e.s, id, ActionAbort, "erin", "test"); err != nil {
		t.Fatal(err)
	}
	if r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() }); r.State != StateRolledBack {
		t.Errorf("state %s: %s", r.State, r.Reason)
	}
	rs, err := List(e.ctx, e.s)
	if err != nil || len(rs) != 1 || rs[0].ID != id {
		t.Errorf("List = %d rollouts, %v; want %s alone", len(rs), err, id)
	}
}

// A POP whose own desired state overrides the key would confirm the wave
// without running the target: the wave is refused.
func TestPOPOverrideRefusesWave(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	_, rev := e.desired("eu-west")
	e.putSigned(manifest.POPKey("eu-west-2"), manifest.Desired{Plugins: map[string]manifest.Release{"auth": {Artifact: e.v1}}})
	e.controller()
	id := e.start("eu-west:10%,eu-west", time.Hour)
	r := e.wait(id, "baking or ended", func(r *Rollout) bool { return r.Phase == PhaseBaking || !r.Active() })
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "POP eu-west-2 of eu-west has its own auth") ||
		!strings.Contains(r.Reason, "remove the override or target the POP") {
		t.Fatalf("state %s, reason %q", r.State, r.Reason)
	}
	if _, now := e.desired("eu-west"); now != rev {
		t.Errorf("eu-west desired revision %d -> %d: the refused wave wrote it", rev, now)
	}
}
