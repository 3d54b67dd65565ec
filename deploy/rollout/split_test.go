package rollout

import (
	"strings"
	"testing"
	"time"
)

// TestSplitReachesDesiredState: a rollout's split key goes with its canary
// into the desired state the POPs read, and the start's audit entry says
// it.
func TestSplitReachesDesiredState(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.controller()
	id, err := Start(e.ctx, e.s, Spec{Plugin: "auth", Version: "v2", Waves: "eu-west:10%", Gates: "error_rate<1%",
		Bake: time.Hour, Split: "cookie:uid", Who: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(id, "applied", func(r *Rollout) bool { return r.Phase != PhasePending || !r.Active() })
	d, _ := e.desired("eu-west")
	if c := d.Plugins["auth"].Canary; c == nil || c.Split != "cookie:uid" || c.Share != 10 {
		t.Fatalf("eu-west desired canary %+v: want 10%% split by cookie:uid", c)
	}
	audit, err := RecentAudit(e.ctx, e.s, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) == 0 || audit[0].Action != "rollout.start" || audit[0].Who != "alice" ||
		!strings.Contains(audit[0].Why, "canary split by cookie:uid") {
		t.Errorf("audit %+v: want the start by alice naming the split", audit)
	}
	// A command needs an operator too.
	if err := Command(e.ctx, e.s, id, ActionPause, "", "x"); err == nil || !strings.Contains(err.Error(), "no operator named") {
		t.Errorf("a pause by nobody: %v", err)
	}
}
