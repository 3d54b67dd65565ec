package deploy_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestUntrustedRevocationFleet: revocations signed by a key the POPs do
// not trust (a writer of the revocations bucket alone) change nothing,
// on the POPs nor in the controller: a rollout of a version so "revoked"
// starts, its canary runs beside the version the region ran, with its
// config, and aborting it restores that version. The controller took any
// record for a revocation: it refused the start, and the stable side and
// the rollback switched the region to the POPs' config-file version.
func TestUntrustedRevocationFleet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	reg := registry.New(stores)
	fleetPOPs, key := startFleet(t, ctx, stores, pops[:1], func(string) string { return cp.URL() })
	pop := fleetPOPs[0]
	trust := manifest.NewTrustStore(key.Public().(ed25519.PublicKey))
	defer startController(t, ctx, stores, key.Public().(ed25519.PublicKey), nil)()

	push := func(version, guest string) *manifest.Artifact {
		t.Helper()
		a, err := reg.Push(ctx, key, "stamp", version, wasmtest.Build(t, guests+guest), "test")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	v2, v3 := push("v2", "v2"), push("v3", "fail500")
	// eu-west runs v2 with a config of its own, as a rollout leaves it.
	cfg := json.RawMessage(`{"name":"r2"}`)
	region := manifest.RegionKey("eu-west")
	was := manifest.Desired{Plugins: map[string]manifest.Release{"stamp": {Artifact: *v2, Config: cfg}}, Why: "test"}
	b, err := manifest.SignDesired(controlKey, region, time.Now(), &was)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stores.Desired.Put(ctx, region, b); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, pop.name+" running v2", func() bool { return pop.node.Running()["stamp"].Version == "v2" })

	// mallory, whose key no POP trusts, "revokes" both versions.
	_, mallory, _ := ed25519.GenerateKey(nil)
	for _, d := range []string{v2.Digest, v3.Digest} {
		if _, err := reg.Revoke(ctx, mallory, nil, d, "x", "mallory"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, hangGuard, pop.name+" refusing the revocations", func() bool {
		return strings.Count(pop.log.String(), "revocation refused") >= 2
	})

	spec := rollout.Spec{Plugin: "stamp", Version: "v3", Waves: "eu-west:50%,eu-west", Gates: "error_rate<1%",
		Bake: time.Hour, MinRequests: 1 << 30, Who: "test", Trust: trust}
	id, err := rollout.Start(ctx, stores, spec)
	if err != nil {
		t.Fatalf("start of a version only an untrusted key revoked: %v", err)
	}
	testutil.Eventually(t, hangGuard, pop.name+" running the canary beside v2", func() bool {
		if r, err := rollout.Get(ctx, stores, id); err == nil && !r.Active() {
			t.Fatalf("the rollout ended before its canary ran: %s: %s", r.State, r.Reason)
		}
		r := pop.node.Running()["stamp"]
		return r.Version == "v2" && r.Canary == "v3"
	})
	if err := rollout.Command(ctx, stores, id, rollout.ActionAbort, "test", "test"); err != nil {
		t.Fatal(err)
	}
	var r *rollout.Rollout
	testutil.Eventually(t, hangGuard, "the rollout rolled back", func() bool {
		r, err = rollout.Get(ctx, stores, id)
		return err == nil && !r.Active()
	})
	if r.State != rollout.StateRolledBack {
		t.Fatalf("rollout %s: %s", r.State, r.Reason)
	}
	e, err := stores.Desired.Get(ctx, region)
	if err != nil {
		t.Fatal(err)
	}
	var now manifest.Desired
	if err := json.Unmarshal(e.Value(), &now); err != nil {
		t.Fatal(err)
	}
	if rel := now.Plugins["stamp"]; rel.Artifact.Digest != v2.Digest || string(rel.Config) != string(cfg) || rel.Canary != nil {
		t.Errorf("eu-west after the rollback: %+v, want v2 with its config", rel)
	}
	testutil.Eventually(t, hangGuard, pop.name+" back on v2 alone", func() bool {
		r := pop.node.Running()["stamp"]
		return r.Version == "v2" && r.Canary == ""
	})
}
