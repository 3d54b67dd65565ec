package deploy_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestRollbackAuditFromPOPReports: a rollback in a region where one POP
// refused what it restores (a release for a plugin none of its routes
// has, which its region ran before the rollout) says, from the POPs'
// reports, which POP restored it and which refused it, and why, as soon
// as both have answered. The refusing POP said nothing of the restore (it
// had refused that state before), so the rollback waited out its
// ApplyTimeout and said the state was "restored in the desired state" but
// not confirmed, naming neither the POP that did restore it nor the
// refusal (ops review).
func TestRollbackAuditFromPOPReports(t *testing.T) {
	if testing.Short() {
		t.Skip("two POPs and a controller")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangGuard)
	defer cancel()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	key, trust := signer(t)
	originAddr := origintest.Start(t, origintest.OK).Addr
	v1 := filepath.Join(t.TempDir(), "v1.wasm")
	if err := os.WriteFile(v1, wasmtest.Build(t, guests+"v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// eu-west-1 runs a second plugin, other, on a route of its own;
	// eu-west-2 runs stamp alone.
	for _, p := range []struct{ name, routes string }{
		{"eu-west-1", fmt.Sprintf(`
  - {name: all, path: /, origin: app, chain: [{name: stamp, file: %q, version: v1}]}
  - {name: side, path: /side, origin: app, chain: [{name: other, file: %q, version: v1}]}`, v1, v1)},
		{"eu-west-2", fmt.Sprintf(`
  - {name: all, path: /, origin: app, chain: [{name: stamp, file: %q, version: v1}]}`, v1)},
	} {
		cfg, err := edge.ParseConfig([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
pop: %s
region: eu-west
origins:
  app: {addr: %q, key: %q}
routes:%s
fleet: {nats: %q, trust: [%q], control_keys: [%q], state_dir: state}
`, p.name, originAddr, origintest.Key.Text(), p.routes, cp.URL(), trust, controlPub(t))), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		servePOP(t, ctx, p.name, cfg, 200*time.Millisecond)
	}
	status := func(pop string) manifest.Status {
		e, err := stores.Status.Get(ctx, manifest.StatusKey("eu-west", pop))
		if err != nil {
			return manifest.Status{}
		}
		st, _ := manifest.StatusOf(e.Key(), e.Value())
		return st
	}
	// What eu-west ran before: other's release (its config file's
	// module, a config of its own), which eu-west-2 refuses.
	rev := putDesired(t, ctx, stores, manifest.RegionKey("eu-west"), manifest.Desired{
		Plugins: map[string]manifest.Release{"other": {Config: []byte(`{}`)}}})
	testutil.Eventually(t, hangGuard, "both POPs answering revision "+fmt.Sprint(rev), func() bool {
		return status("eu-west-1").Revision >= rev && status("eu-west-1").Applied &&
			status("eu-west-2").Revision >= rev && !status("eu-west-2").Applied
	})

	defer startController(t, ctx, stores, key.Public().(ed25519.PublicKey), nil)()
	if _, err := registry.New(stores).Push(ctx, key, "stamp", "v2", wasmtest.Build(t, guests+"v2"), "test"); err != nil {
		t.Fatal(err)
	}
	id, err := rollout.Start(ctx, stores, rollout.Spec{Plugin: "stamp", Version: "v2", Waves: "eu-west", Gates: gates,
		Bake: time.Hour, Who: "test", Why: "rollback audit test"})
	if err != nil {
		t.Fatal(err)
	}
	var r *rollout.Rollout
	testutil.Eventually(t, hangGuard, "the rollout ended", func() bool {
		r, err = rollout.Get(ctx, stores, id)
		return err == nil && !r.Active()
	})
	// eu-west-2 refused the wave too (it holds other's release): a NACK.
	if r.State != rollout.StateRolledBack || !strings.Contains(r.Reason, "POP eu-west-2 refused revision") {
		t.Fatalf("%s: reason %q, want rolled back for eu-west-2's NACK", r.State, r.Reason)
	}
	audit, err := rollout.RecentAudit(ctx, stores, 100)
	if err != nil {
		t.Fatal(err)
	}
	var why string
	for _, a := range audit {
		if a.Rollout == id && a.Action == "rollout.rolled_back" {
			why = a.Why
		}
	}
	for _, want := range []string{"stamp restored in", "on eu-west-1 (eu-west)", "not restored where the POPs refused it",
		"POP eu-west-2 refused revision", "no route has that plugin"} {
		if !strings.Contains(why, want) {
			t.Errorf("rolled_back entry %q does not say %q", why, want)
		}
	}
	if strings.Contains(why, "not confirmed") || strings.Contains(why, "eu-west-2 (eu-west)") {
		t.Errorf("rolled_back entry %q: eu-west-2 answered, with a refusal", why)
	}
	if len(r.RollbackRefused) != 1 || len(r.RollbackUnconfirmed) != 0 {
		t.Errorf("record: refused %q, unconfirmed %q", r.RollbackRefused, r.RollbackUnconfirmed)
	}
}
