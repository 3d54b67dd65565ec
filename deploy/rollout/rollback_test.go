package rollout

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/internal/testutil"
)

// TestRollbackAuditSaysWhichPOPsRestored: the end of a rollback names
// the POPs that run what it restored, those that refused it with their
// reason, and those that stopped reporting, from their reports. It said
// "restored in the desired state, but ... have not confirmed it: NACK:
// ..." after waiting out ApplyTimeout for a POP that had answered, named
// neither the POP that did restore nor one that had stopped reporting,
// and with no NACK it said "restored on every POP of eu-west" past a
// POP that never answered (ops review).
func TestRollbackAuditSaysWhichPOPsRestored(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	stop3 := e.pop("eu-west-3", "eu-west")
	e.controller() // Fresh: 5s
	testutil.Eventually(t, 10*time.Second, "eu-west-3 reporting", func() bool {
		_, err := e.s.Status.Get(e.ctx, manifest.StatusKey("eu-west", "eu-west-3"))
		return err == nil
	})
	id := e.start("eu-west", time.Hour)
	e.wait(id, "its wave applied", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	// eu-west-3 goes quiet for good, and eu-west-2 refuses what the
	// rollback restores (v1).
	stop3()
	testutil.Eventually(t, 30*time.Second, "eu-west-3's report stale", func() bool {
		f, err := readFleet(e.ctx, e.s, 5*time.Second)
		return err == nil && len(f.quiet("eu-west")) == 1
	})
	e.mark(e.nack, "eu-west-2 "+e.v1.Digest)
	if err := Command(e.ctx, e.s, id, ActionRollback, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	a := e.audit(id, "rollout.rolled_back")
	if len(a) != 1 {
		t.Fatalf("rolled_back entries %+v, want one", a)
	}
	why := a[0].Why
	for _, want := range []string{
		"auth restored in", "on eu-west-1 (eu-west)",
		"not restored where the POPs refused it", "POP eu-west-2 refused revision", "trap in _initialize",
		"not confirmed by POPs that stopped reporting: eu-west-3 (eu-west, last report",
	} {
		if !strings.Contains(why, want) {
			t.Errorf("rolled_back entry %q does not say %q", why, want)
		}
	}
	if strings.Contains(why, "every POP") || strings.Contains(why, "eu-west-2 (eu-west)") {
		t.Errorf("rolled_back entry %q claims a restore where a POP refused it or did not answer", why)
	}
	if len(r.RollbackRefused) != 1 || !strings.Contains(r.RollbackRefused[0], "eu-west-2") ||
		len(r.RollbackUnconfirmed) != 1 || !strings.HasPrefix(r.RollbackUnconfirmed[0], "eu-west-3 ") {
		t.Errorf("record: refused %q, unconfirmed %q", r.RollbackRefused, r.RollbackUnconfirmed)
	}
	if got, want := r.Progress(), "rolled back in the desired state; 1 POPs refused it, 1 did not confirm it"; got != want {
		t.Errorf("Progress() = %q, want %q", got, want)
	}
}

// TestWaveNACKNamesEveryPOP: a wave of several regions that POPs of two
// of them refuse is rolled back naming both. The rollback named the
// NACKs of the first region it looked at, and only those (ops review).
func TestWaveNACKNamesEveryPOP(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.mark(e.nack, "us-east-1 "+e.v2.Digest)
	e.mark(e.nack, "ap-south-1 "+e.v2.Digest)
	e.controller()
	id := e.start("*", time.Hour)
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	for _, pop := range []string{"us-east-1", "ap-south-1"} {
		if !strings.Contains(r.Reason, "POP "+pop+" refused revision") {
			t.Errorf("reason %q does not name %s's NACK", r.Reason, pop)
		}
	}
	if strings.Contains(r.Reason, "eu-west-") {
		t.Errorf("reason %q names a POP that applied the wave", r.Reason)
	}
	nack := e.audit(id, "wave.nack")
	if len(nack) != 1 || !strings.HasPrefix(nack[0].Why, r.Reason) {
		t.Errorf("wave.nack entries %+v, want one with the reason", nack)
	}
	if got := e.actions(id); !slices.Contains(got, "wave.nack") || got[len(got)-1] != "rollout.rolled_back" {
		t.Errorf("audit = %v", got)
	}
}

// TestBakeNACKRollsBackNotPromotes: a POP of a baking wave that refuses
// its release (here one that joins the region meanwhile and cannot load
// it) fails the wave. It was promoted on an operator's word, and the
// rollout went on as if the region ran the version (ops review).
func TestBakeNACKRollsBackNotPromotes(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.controller()
	id := e.start("eu-west,us-east", time.Hour)
	r := e.wait(id, "its first wave applied", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	rev := r.Revisions["eu-west"]
	e.mark(e.nack, "eu-west-3 "+e.v2.Digest)
	e.pop("eu-west-3", "eu-west")
	testutil.Eventually(t, 10*time.Second, "eu-west-3 refusing the wave", func() bool {
		ent, err := e.s.Status.Get(e.ctx, manifest.StatusKey("eu-west", "eu-west-3"))
		if err != nil {
			return false
		}
		st, ok := manifest.StatusOf(ent.Key(), ent.Value())
		return ok && st.Revision >= rev && !st.Applied
	})
	// The controller reads the fleet after the rollout, and so after the
	// command: whichever tick takes it sees the refusal. Once it has
	// rolled back the rollout takes no promote.
	if err := Command(e.ctx, e.s, id, ActionPromote, "alice", "looks good"); err != nil && !strings.Contains(err.Error(), "rolling back") &&
		!strings.Contains(err.Error(), "nothing to promote") {
		t.Fatal(err)
	}
	r = e.wait(id, "past its first wave", func(r *Rollout) bool { return !r.Active() || r.Wave > 0 })
	if r.State != StateRolledBack || r.Wave != 0 || !strings.Contains(r.Reason, "POP eu-west-3 refused revision") {
		t.Fatalf("state %s in wave %d, reason %q: want rolled back in the first wave, for eu-west-3's NACK", r.State, r.Wave, r.Reason)
	}
	if got := e.actions(id); slices.Contains(got, "wave.promote") || !slices.Contains(got, "wave.nack") {
		t.Errorf("audit = %v: want a NACK and no promotion", got)
	}
}

// TestWaveAppliedNamesQuietPOPs: a wave applied while a POP of its
// region that reported during the rollout has stopped reporting says so.
// It said "applied on all 1 POPs", counting only those that report
// (ops review).
func TestWaveAppliedNamesQuietPOPs(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	stop := e.pop("us-east-2", "us-east")
	e.controller() // Fresh: 5s
	testutil.Eventually(t, 10*time.Second, "us-east-2 reporting", func() bool {
		_, err := e.s.Status.Get(e.ctx, manifest.StatusKey("us-east", "us-east-2"))
		return err == nil
	})
	id := e.start("eu-west,us-east", time.Hour)
	e.wait(id, "its first wave applied", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	stop()
	testutil.Eventually(t, 30*time.Second, "us-east-2's report stale", func() bool {
		f, err := readFleet(e.ctx, e.s, 5*time.Second)
		return err == nil && len(f.quiet("us-east")) == 1
	})
	if err := Command(e.ctx, e.s, id, ActionPromote, "alice", "on to us-east"); err != nil {
		t.Fatal(err)
	}
	e.wait(id, "its second wave applied", func(r *Rollout) bool { return r.Wave == 1 && r.Phase == PhaseBaking })
	a := e.audit(id, "wave.applied")
	if len(a) != 2 {
		t.Fatalf("wave.applied entries %+v, want two", a)
	}
	if why := a[1].Why; !strings.Contains(why, "applied on all 1 POPs reporting") ||
		!strings.Contains(why, "not confirmed by POPs that stopped reporting: us-east-2 (us-east, last report") {
		t.Errorf("us-east's wave.applied entry %q does not say us-east-2 did not confirm it", why)
	}
}

// reports waits until every POP of eu-west reports what cond wants.
func (e *env) reports(what string, cond func(manifest.Status) bool) {
	e.t.Helper()
	testutil.Eventually(e.t, 20*time.Second, what, func() bool {
		for _, p := range []string{"eu-west-1", "eu-west-2"} {
			ent, err := e.s.Status.Get(e.ctx, manifest.StatusKey("eu-west", p))
			if err != nil {
				return false
			}
			st, ok := manifest.StatusOf(ent.Key(), ent.Value())
			if !ok || !cond(st) {
				return false
			}
		}
		return true
	})
}

// refuseLaterWrite writes another plugin's release into eu-west, as a
// rollout of that plugin would (locks are per key), which its POPs
// refuse, and waits for them to say so; they keep running auth at want.
func (e *env) refuseLaterWrite(want string) {
	e.t.Helper()
	d, _ := e.desired("eu-west")
	d.Plugins["other"] = manifest.Release{Artifact: manifest.Artifact{Name: "other", Version: "v9", Digest: "other-bad"}}
	e.mark(e.nack, "other-bad")
	later := e.putDesired("eu-west", d)
	e.reports("the later write refused", func(st manifest.Status) bool {
		return st.Revision == later && !st.Applied && st.Running["auth"].Digest == want
	})
}

// TestLaterWriteRefusedKeepsWave: the POPs of a wave apply it, then
// refuse a later write of their region (another plugin's release) before
// the controller reads their ACKs. They run the target, so the wave is
// applied, bakes and finishes. It was rolled back as NACKed with the
// other write's error (review).
func TestLaterWriteRefusedKeepsWave(t *testing.T) {
	e := newEnv(t)
	stops := e.fleet()
	stops["eu-west-1"]()
	stops["eu-west-2"]()
	stopC := e.controller()
	id := e.start("eu-west", time.Hour)
	r := e.wait(id, "its wave written", func(r *Rollout) bool { return r.Revisions["eu-west"] > 0 })
	stopC()
	rev := r.Revisions["eu-west"]
	e.pop("eu-west-1", "eu-west")
	e.pop("eu-west-2", "eu-west")
	e.reports("the wave applied", func(st manifest.Status) bool {
		return st.Revision == rev && st.Applied && st.Running["auth"].Digest == e.v2.Digest
	})
	e.refuseLaterWrite(e.v2.Digest)
	e.controller()
	r = e.wait(id, "baking or ended", func(r *Rollout) bool { return r.Phase == PhaseBaking || !r.Active() })
	if !r.Active() {
		t.Fatalf("every POP runs auth v2 (revision %d), yet the rollout ended %s: %s", rev, r.State, r.Reason)
	}
	// Baking judges the POPs as applying did: promoted, it finishes.
	if err := Command(e.ctx, e.s, id, ActionPromote, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	if r = e.wait(id, "ended", func(r *Rollout) bool { return !r.Active() }); r.State != StateDone {
		t.Fatalf("promoted, the rollout ended %s: %s", r.State, r.Reason)
	}
}

// TestLaterWriteRefusedKeepsRestore: the POPs apply a rollback's restore,
// then refuse a later write of their region (another plugin's release)
// before the controller reads their ACKs. They run what it restored, and
// the audit says so. It said they refused the restore, "which serve what
// they ran before it", with the other write's error (review).
func TestLaterWriteRefusedKeepsRestore(t *testing.T) {
	e := newEnv(t)
	stops := e.fleet()
	stopC := e.controller()
	id := e.start("eu-west", time.Hour)
	e.wait(id, "its wave applied", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	stops["eu-west-1"]()
	stops["eu-west-2"]()
	if err := Command(e.ctx, e.s, id, ActionRollback, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, "the restore written", func(r *Rollout) bool { return r.State == StateRollingBack && len(r.RollbackRevs) > 0 })
	stopC()
	rev := r.RollbackRevs["eu-west"]
	e.pop("eu-west-1", "eu-west")
	e.pop("eu-west-2", "eu-west")
	e.reports("the restore applied", func(st manifest.Status) bool {
		return st.Revision == rev && st.Applied && st.Running["auth"].Digest == e.v1.Digest
	})
	e.refuseLaterWrite(e.v1.Digest)
	e.controller()
	r = e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	a := e.audit(id, "rollout.rolled_back")
	if len(a) != 1 {
		t.Fatalf("rolled_back entries %+v, want one", a)
	}
	if why := a[0].Why; strings.Contains(why, "refused") || !strings.Contains(why, "eu-west-1 (eu-west)") ||
		!strings.Contains(why, "eu-west-2 (eu-west)") || len(r.RollbackRefused) > 0 {
		t.Fatalf("both POPs run auth v1 (the restore, revision %d), yet the audit says %q, refused %q", rev, why, r.RollbackRefused)
	}
}

// confirmed counts a POP's failure to apply a later revision against
// rev only where its report shows it running, whole, what rev put there
// (runsRelease); a POP that refused rev itself is refused whatever it
// runs, and where no report can show the release (the POPs' own version)
// the failure counts.
func TestConfirmedNACKOnlyWithoutWant(t *testing.T) {
	want := &manifest.Release{Artifact: manifest.Artifact{Digest: "d2"}, Config: json.RawMessage(`{"realm":"new"}`)}
	target := manifest.Running{Digest: "d2", Config: manifest.ConfigHash(want.Config)}
	old := manifest.Running{Digest: "d2", Config: manifest.ConfigHash([]byte(`{"realm":"old"}`))}
	refused := []manifest.Refused{{Key: manifest.RegionKey("eu"), Revision: 5, Error: "refused (unsigned)"}}
	f := &fleet{status: []manifest.Status{
		// A later write refused, the revision's release running.
		{POP: "p1", Region: "eu", Revision: 6, Error: "trap", Running: map[string]manifest.Running{"auth": target}},
		// The revision itself refused, the module running with the old config.
		{POP: "p2", Region: "eu", Revision: 5, Error: "bad config", Running: map[string]manifest.Running{"auth": old}},
		// The revision's record refused, the release running as a canary.
		{POP: "p3", Region: "eu", Revision: 4, Applied: true, Refused: refused,
			Running: map[string]manifest.Running{"auth": {Digest: "d1", CanaryDigest: "d2", CanaryConfig: target.Config}}},
		// The revision's record refused, the release running (the revision
		// before wrote it too): refused all the same.
		{POP: "p4", Region: "eu", Revision: 4, Applied: true, Refused: refused, Running: map[string]manifest.Running{"auth": target}},
	}}
	ran, waiting, nacks := confirmed(f, "eu", 5, "auth", want, nil)
	nack := strings.Join(nacks, "; ")
	if !slices.Equal(ran, []string{"p1"}) || len(waiting) != 0 || len(nacks) != 3 ||
		!strings.Contains(nack, "POP p2 refused revision 5: bad config") || !strings.Contains(nack, "POP p3 refused revision 5: refused (unsigned)") ||
		!strings.Contains(nack, "POP p4 refused revision 5: refused (unsigned)") {
		t.Errorf("confirmed: ran %v, waiting %v, nacks %q", ran, waiting, nack)
	}
	// What no report tells apart (the POPs' own version) is never run.
	if ran, _, nacks := confirmed(f, "eu", 5, "auth", nil, nil); len(ran) != 0 || len(nacks) != 4 {
		t.Errorf("confirmed with nothing to run: ran %v, nacks %q", ran, nacks)
	}
}

// A POP that refused a wave's revision runs much of it all the same: a
// share step (10% -> 50%) leaves the canary at 10%, a config dropped back
// to the POPs' own leaves the old one. Both are NACKs, and so is a later
// revision's failure where the canary runs at another share.
func TestConfirmedRefusedWaveIsNACK(t *testing.T) {
	share := &manifest.Release{Artifact: manifest.Artifact{Digest: "d1"},
		Canary: &manifest.Canary{Artifact: manifest.Artifact{Digest: "d2"}, Share: 50}}
	at10 := map[string]manifest.Running{"auth": {Digest: "d1", CanaryDigest: "d2", Share: 10}}
	drop := &manifest.Release{Artifact: manifest.Artifact{Digest: "d1"}} // the POPs' own config
	oldConfig := map[string]manifest.Running{"auth": {Digest: "d1", Config: manifest.ConfigHash([]byte(`{"realm":"old"}`))}}
	refused := []manifest.Refused{{Key: manifest.RegionKey("eu"), Revision: 5, Error: "refused (unsigned)"}}
	for name, c := range map[string]struct {
		want    *manifest.Release
		running map[string]manifest.Running
	}{"share step": {share, at10}, "config dropped": {drop, oldConfig}} {
		f := &fleet{status: []manifest.Status{
			{POP: "p1", Region: "eu", Revision: 5, Error: "apply failed", Running: c.running},
			{POP: "p2", Region: "eu", Revision: 4, Applied: true, Refused: refused, Running: c.running},
		}}
		if ran, _, nacks := confirmed(f, "eu", 5, "auth", c.want, nil); len(nacks) != 2 {
			t.Errorf("%s: both POPs refused revision 5: ran %v, nacks %q", name, ran, nacks)
		}
	}
	later := &fleet{status: []manifest.Status{{POP: "p1", Region: "eu", Revision: 6, Error: "trap", Running: at10}}}
	if ran, _, nacks := confirmed(later, "eu", 5, "auth", share, nil); len(nacks) != 1 {
		t.Errorf("a later revision failed, the canary at 10%% where revision 5 put 50%%: ran %v, nacks %q", ran, nacks)
	}
}

// A later revision's failure does not pass for the release where the POP
// runs a config another release of the rollout set, the release leaving
// it to the POP (a wave dropping the config back to the POPs' own; the
// restore of a region whose release set none, the rollout's config still
// running), and does where a canary's share is the one the edge keeps
// (hundredths of a percent, truncated: 0.29% runs as 0.28%, as a 0.68%
// wave does not).
func TestConfirmedLaterFailureOthersConfig(t *testing.T) {
	later := func(run manifest.Running) *fleet {
		return &fleet{status: []manifest.Status{{POP: "p1", Region: "eu", Revision: 9, Error: "trap", Running: map[string]manifest.Running{"auth": run}}}}
	}
	x := json.RawMessage(`{"realm":"x"}`)
	d2 := manifest.Artifact{Name: "auth", Version: "v2", Digest: "d2"}
	dropped := &manifest.Release{Artifact: d2}
	withX := manifest.Release{Artifact: d2, Config: x}
	if ran, _, nacks := confirmed(later(manifest.Running{Digest: "d2", Config: manifest.ConfigHash(x)}), "eu", 5, "auth", dropped, []manifest.Release{withX}); len(nacks) != 1 {
		t.Errorf("a wave dropping config x, the POP running x: ran %v, nacks %q", ran, nacks)
	}
	if ran, _, _ := confirmed(later(manifest.Running{Digest: "d2", Config: "own"}), "eu", 5, "auth", dropped, []manifest.Release{withX}); len(ran) != 1 {
		t.Errorf("a wave dropping config x, the POP running its own: ran %v", ran)
	}
	r := &Rollout{Key: "auth", Artifact: d2, Previous: map[string]*manifest.Release{"eu": {Artifact: manifest.Artifact{Name: "auth", Version: "v1", Digest: "d1"}}}}
	for _, c := range []struct {
		wave, reported float64
		ran            bool
	}{{0.29, 0.28, true}, {0.58, 0.57, true}, {10, 10, true}, {0.69, 0.68, false}, {0.01, 0, false}, {50, 10, false}} {
		want := r.release("eu", c.wave)
		if ran, _, nacks := confirmed(later(manifest.Running{Digest: "d1", CanaryDigest: "d2", Share: c.reported}), "eu", 5, "auth", &want, nil); (len(ran) == 1) != c.ran {
			t.Errorf("a %v%% canary, the POP reporting %v%%: ran %v, nacks %q; want run %v", c.wave, c.reported, ran, nacks, c.ran)
		}
	}
}
