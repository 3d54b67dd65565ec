package deploy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestPlanRefusesPluginNoPOPRuns: a rollout of a plugin no route of any
// reporting POP runs is refused by the dry run and by Start, with the
// plugins the POPs do run, before anything is written. The dry run showed
// a plan, and the rollout started: its POPs refused the wave ("no route
// has that plugin") and it rolled back (ops review).
func TestPlanRefusesPluginNoPOPRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	// Two POPs whose one route, "all", runs stamp.
	_, key := startFleet(t, ctx, stores, pops[:2], func(string) string { return cp.URL() })
	reg := registry.New(stores)
	bin := wasmtest.Build(t, guests+"v2")
	for _, name := range []string{"stamp", "other"} {
		if _, err := reg.Push(ctx, key, name, "v2", bin, "test"); err != nil {
			t.Fatal(err)
		}
	}
	spec := func(plugin, key string) rollout.Spec {
		return rollout.Spec{Plugin: plugin, Version: "v2", Key: key, Waves: "eu-west:10%,*", Gates: gates,
			Bake: time.Minute, Who: "test", Why: "plan test"}
	}
	for _, tc := range []struct{ plugin, key, want string }{
		{"other", "", "none of the 2 POPs reporting runs plugin other"},
		{"other", "all/other", "none of the 2 POPs reporting runs plugin other on route all"},
	} {
		_, err := rollout.Resolve(ctx, stores, spec(tc.plugin, tc.key))
		if err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "eu-west-1 (eu-west): stamp") || !strings.Contains(err.Error(), "eu-west-2 (eu-west): stamp") {
			t.Errorf("dry run of %s as %q: %v, want an error saying %q and what each POP runs", tc.plugin, tc.key, err, tc.want)
		}
		if _, err := rollout.Start(ctx, stores, spec(tc.plugin, tc.key)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("start of %s as %q: %v, want an error saying %q", tc.plugin, tc.key, err, tc.want)
		}
	}
	if rs, err := rollout.List(ctx, stores); err != nil || len(rs) != 0 {
		t.Errorf("refused starts stored rollouts: %v %v", rs, err)
	}
	if keys, _ := stores.Rollouts.Keys(ctx); len(keys) != 0 {
		t.Errorf("refused starts left keys in the rollouts bucket: %v", keys)
	}
	audit, err := rollout.RecentAudit(ctx, stores, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range audit {
		if a.Action != "plugin.push" {
			t.Errorf("refused starts wrote to the audit stream: %+v", a)
		}
	}
	// What the POPs run plans as before, on every route or on "all".
	for _, key := range []string{"", "all/stamp"} {
		if p, err := rollout.Resolve(ctx, stores, spec("stamp", key)); err != nil || !strings.Contains(p.String(), "eu-west (2 POPs: eu-west-1 eu-west-2)") {
			t.Errorf("dry run of stamp as %q: %v\n%v", key, err, p)
		}
	}
}
