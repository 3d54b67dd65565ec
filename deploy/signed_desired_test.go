package deploy_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	edgepop "github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// controlKey is the controller's key of every test here: the rollout
// controllers sign desired state with it, and the POPs trust its public
// key (controlPub) as their control key.
var controlKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// startController runs a rollout controller as the tests here run one:
// controlKey signs what it writes, the POPs' artifact key (pub) tells
// their revocations, ticks are fast and log goes nowhere if nil. stop
// ends it and waits. One that refuses to run fails the test: a rollout
// would wait for it in vain.
func startController(t *testing.T, ctx context.Context, stores *controlplane.Stores, pub ed25519.PublicKey, log *slog.Logger) (stop func()) {
	t.Helper()
	opts := rollout.Options{Tick: 50 * time.Millisecond, ApplyTimeout: hangGuard, Key: controlKey,
		ArtifactKeys: manifest.NewTrustStore(pub), Log: log}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rollout.NewController(stores, opts).Run(ctx); err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	return func() { cancel(); <-done }
}

// controlPub writes controlKey's public key to a PEM file for a POP's
// fleet.control_keys and returns its path.
func controlPub(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(controlKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "controller.pub")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// putDesired writes d under key (a region's or a POP's) signed by the
// controller's key, as the controller does, and returns its revision.
func putDesired(t testing.TB, ctx context.Context, stores *controlplane.Stores, key string, d manifest.Desired) uint64 {
	t.Helper()
	b, err := manifest.SignDesired(controlKey, key, time.Now(), &d)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := stores.Desired.Put(ctx, key, b)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestPOPRefusesUnsignedDesired: a POP applies only desired state the
// controller's key signed for its key, newer than what it applied. With
// real NATS and a real POP running the auth plugin from the control
// plane, writes with bucket access alone, each making every path public
// through the auth plugin's config, are refused: (a) unsigned, (b) signed
// then edited, (c) signed by another key, (d) signed for another region
// and copied, (e) an older signed record written again (also after the
// POP restarts, from its disk state), and a delete. The POP keeps
// refusing /secret, and its status and metric say why; then a properly
// signed change applies.
func TestPOPRefusesUnsignedDesired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	key, trust := signer(t)
	authFile := edgetest.ModuleFile(t, "../plugins/auth")
	bin, err := os.ReadFile(authFile)
	if err != nil {
		t.Fatal(err)
	}
	art, err := registry.New(stores).Push(ctx, key, "auth", "1.0.0", bin, "test")
	if err != nil {
		t.Fatal(err)
	}
	// The auth plugin's config with public as its public paths.
	config := func(public ...string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"realm": "test", "public": public,
			"jwks": map[string]any{"keys": []any{map[string]any{"kty": "oct", "alg": "HS256", "kid": "k", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}}}})
		return b
	}
	desired := func(public ...string) manifest.Desired {
		return manifest.Desired{Plugins: map[string]manifest.Release{"auth": {Artifact: *art, Config: config(public...)}}, Why: "test"}
	}
	region := manifest.RegionKey("eu-west")
	sign := func(priv ed25519.PrivateKey, key string, d manifest.Desired) []byte {
		b, err := manifest.SignDesired(priv, key, time.Now(), &d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	put := func(b []byte) uint64 {
		rev, err := stores.Desired.Put(ctx, region, b)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}

	dir := t.TempDir() // the POP's config and state, kept across its restart
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
pop: eu-west-1
region: eu-west
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: all, path: /, origin: app, chain: [{name: auth, file: %q, version: "0", config: %s}]}
fleet: {nats: %q, trust: [%q], control_keys: [%q], state_dir: state}
`, origintest.Start(t, origintest.OK).Addr, origintest.Key.Text(), authFile, config("/public/"), cp.URL(), trust, controlPub(t))
	p, stopPOP := startStoppablePOP(t, ctx, cfg, dir)
	get := func(path string) int {
		t.Helper()
		st, _, err := fasthttp.GetTimeout(nil, "http://"+p.Addr().String()+path, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	status := func(what string, ok func(manifest.Status) bool) manifest.Status {
		t.Helper()
		var st manifest.Status
		testutil.Eventually(t, hangGuard, what, func() bool {
			e, err := stores.Status.Get(ctx, manifest.StatusKey("eu-west", "eu-west-1"))
			st = manifest.Status{}
			return err == nil && json.Unmarshal(e.Value(), &st) == nil && ok(st)
		})
		return st
	}
	applied := func(rev uint64) func(manifest.Status) bool {
		return func(st manifest.Status) bool {
			return st.Revision >= rev && st.Applied && st.Error == "" && st.Running["auth"].Version == "1.0.0"
		}
	}

	// An old record made everything public; the current one does not.
	open := sign(controlKey, region, desired("/"))
	status("the open config applied", applied(put(open)))
	if st := get("/secret"); st != 200 {
		t.Fatalf("GET /secret under the open config: %d, want 200", st)
	}
	tight := sign(controlKey, region, desired("/public/"))
	tightRev := put(tight)
	status("the tight config applied", applied(tightRev))
	if st := get("/secret"); st != 401 {
		t.Fatalf("GET /secret under the tight config: %d, want 401", st)
	}

	unsigned, _ := json.Marshal(desired("/"))
	_, otherKey, _ := ed25519.GenerateKey(nil)
	refused := func(p *edgepop.POP, what, reason string, write func() uint64) {
		t.Helper()
		before := counter(t, p.Node().Registry(), "wedge_fleet_desired_refused_total", "reason", reason)
		rev := write()
		st := status(what+" refused", func(st manifest.Status) bool { return len(st.Refused) == 1 && st.Refused[0].Revision == rev })
		// Reported apart: what the POP runs is still the tight config's
		// revision, applied, so no rollout takes this for a NACK.
		if r := st.Refused[0]; r.Reason != reason || r.Key != region || st.Revision != tightRev || !st.Applied || st.Running["auth"].Version != "1.0.0" {
			t.Fatalf("%s: status %+v, want it refused as %s on revision %d", what, st, reason, tightRev)
		}
		if got := counter(t, p.Node().Registry(), "wedge_fleet_desired_refused_total", "reason", reason); got != before+1 {
			t.Fatalf("%s: wedge_fleet_desired_refused_total{reason=%q} %v, want %v", what, reason, got, before+1)
		}
		if st := get("/secret"); st != 401 {
			t.Fatalf("after %s: GET /secret %d, want 401: the POP serves a config nobody signed", what, st)
		}
	}
	refused(p, "an unsigned record", "unsigned", func() uint64 { return put(unsigned) })
	refused(p, "a signed record with its config edited", "bad_signature", func() uint64 {
		return put(bytes.Replace(tight, []byte(`"public":["/public/"]`), []byte(`"public":["/"]`), 1))
	})
	refused(p, "a record signed by another key", "unknown_key", func() uint64 { return put(sign(otherKey, region, desired("/"))) })
	refused(p, "a record of another region", "wrong_key", func() uint64 {
		return put(sign(controlKey, manifest.RegionKey("us-east"), desired("/")))
	})
	refused(p, "a delete", "deleted", func() uint64 {
		if err := stores.Desired.Delete(ctx, region); err != nil {
			t.Fatal(err)
		}
		e, err := stores.Desired.Watch(ctx, region) // the revision of the delete
		if err != nil {
			t.Fatal(err)
		}
		defer e.Stop()
		return (<-e.Updates()).Revision()
	})
	refused(p, "an old record written again", "stale", func() uint64 { return put(open) })

	// Restarted, the POP serves its state from disk and still knows the
	// old record in the bucket for a replay.
	stopPOP()
	p, stopPOP = startStoppablePOP(t, ctx, cfg, dir)
	defer stopPOP()
	testutil.Eventually(t, hangGuard, "the restarted POP refusing the replay", func() bool {
		return counter(t, p.Node().Registry(), "wedge_fleet_desired_refused_total", "reason", "stale") == 1
	})
	if st := get("/secret"); st != 401 {
		t.Fatalf("restarted: GET /secret %d, want 401", st)
	}
	if st := status("the restarted POP's report", func(st manifest.Status) bool { return len(st.Refused) == 1 }); st.Refused[0].Reason != "stale" {
		t.Fatalf("restarted: refused %+v, want the replay named", st.Refused)
	}

	// A properly signed change applies.
	status("a signed change applied", applied(put(sign(controlKey, region, desired("/public/", "/health")))))
	if get("/health") != 200 || get("/secret") != 401 {
		t.Fatal("the signed change does not serve its config")
	}
	if got := counter(t, p.Node().Registry(), "wedge_fleet_applies_total", "result", "ok"); got != 1 {
		t.Fatalf("the restarted POP applied %v states, want 1", got)
	}
}

// startStoppablePOP runs a POP of cfg (its config file's directory dir)
// until stop, which returns once it has stopped.
func startStoppablePOP(t *testing.T, ctx context.Context, cfg, dir string) (_ *edgepop.POP, stop func()) {
	t.Helper()
	c, err := edge.ParseConfig([]byte(cfg), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, _, stop := servePOPStop(t, ctx, "pop", c, 100*time.Millisecond)
	return p, stop
}
