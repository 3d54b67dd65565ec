package rollout

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// The controller signs what it writes, for the key it writes it under,
// issued after the record it replaces even when that one is ahead of its
// clock; and it never takes a record it did not sign as the base of a
// change, which would give an unsigned write (a config rewritten in the
// bucket) its signature: it writes its own last record over it, and the
// audit says so.
func TestWriteDesiredSigns(t *testing.T) {
	e := newEnv(t)
	c := NewController(e.s, Options{Log: discard, Key: e.key})
	r := &Rollout{ID: "r-test", Plugin: "auth", Version: "v2"}
	ahead := time.Now().Add(time.Hour)
	b, err := manifest.SignDesired(e.key, manifest.RegionKey("eu-west"), ahead, &manifest.Desired{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Desired.Put(e.ctx, manifest.RegionKey("eu-west"), b); err != nil {
		t.Fatal(err)
	}
	rel := manifest.Release{Artifact: e.v1, Config: json.RawMessage(`{"public": ["/health"]}`)}
	if _, err := c.writeDesired(e.ctx, r, "eu-west", "test", func(d *manifest.Desired) { d.Plugins["auth"] = rel }); err != nil {
		t.Fatal(err)
	}
	d, raw := e.signed("eu-west")
	if !d.Issued.After(ahead) || string(d.Plugins["auth"].Config) != `{"public":["/health"]}` || d.Why != "test" {
		t.Fatalf("written %+v, want auth's config issued after %s", d, ahead)
	}

	// Someone with bucket access rewrites the config, unsigned.
	tampered := strings.Replace(raw, `"public":["/health"]`, `"public":["/"]`, 1)
	if _, err := e.s.Desired.Put(e.ctx, manifest.RegionKey("eu-west"), []byte(tampered)); err != nil {
		t.Fatal(err)
	}
	if _, err = c.writeDesired(e.ctx, r, "eu-west", "test", func(d *manifest.Desired) { d.Plugins["cache"] = manifest.Release{} }); err != nil {
		t.Fatalf("writing over a tampered record: %v", err)
	}
	if d, _ := e.signed("eu-west"); string(d.Plugins["auth"].Config) != `{"public":["/health"]}` || len(d.Plugins) != 2 {
		t.Fatalf("written over the tampered record: %+v, want auth's signed config and cache", d.Plugins)
	}
	if a := e.audit(r.ID, "desired.overwrite"); len(a) != 1 || !strings.Contains(a[0].Why, "bad_signature") {
		t.Fatalf("audit of the overwrite: %+v", a)
	}

	// Without a key it writes nothing, and Run says so at once.
	_, err = NewController(e.s, Options{Log: discard}).writeDesired(e.ctx, r, "us-east", "test", func(d *manifest.Desired) { d.Plugins["auth"] = rel })
	if err == nil || !strings.Contains(err.Error(), "no controller key") {
		t.Fatalf("a controller without a key: %v", err)
	}
	if err := NewController(e.s, Options{Log: discard}).Run(e.ctx); err == nil || !strings.Contains(err.Error(), "no controller key") {
		t.Fatalf("Run without a key: %v", err)
	}
	// Nor without the POPs' trust store, which tells it a revocation.
	if err := NewController(e.s, Options{Log: discard, Key: e.key}).Run(e.ctx); err == nil || !strings.Contains(err.Error(), "no artifact keys") {
		t.Fatalf("Run without artifact keys: %v", err)
	}
}

// signed reads region's record, which must verify with the env's key.
func (e *env) signed(region string) (*manifest.Desired, string) {
	e.t.Helper()
	got, err := e.s.Desired.Get(e.ctx, manifest.RegionKey(region))
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := manifest.ParseSignedDesired(got.Value(), manifest.RegionKey(region), manifest.NewTrustStore(e.key.Public().(ed25519.PublicKey)))
	if err != nil {
		e.t.Fatalf("the record does not verify: %v\n%s", err, got.Value())
	}
	return d, string(got.Value())
}

// A delete of a region's record, or an old record written again, is not
// the base of the next write: that would sign a record holding only the
// rollout's plugin (or an old config) and the POPs would drop the
// region's other plugins. The newest trusted record is; with none left
// in the history the write is refused, not started from empty.
func TestWriteDesiredBaseFromHistory(t *testing.T) {
	e := newEnv(t)
	c := NewController(e.s, Options{Log: discard, Key: e.key})
	r := &Rollout{ID: "r-test"}
	key := manifest.RegionKey("eu-west")
	old, err := manifest.SignDesired(e.key, key, time.Now().Add(-time.Hour), &manifest.Desired{Plugins: map[string]manifest.Release{"old": {}}})
	if err != nil {
		t.Fatal(err)
	}
	e.putDesired("eu-west", manifest.Desired{Plugins: map[string]manifest.Release{"auth": {Artifact: e.v1}, "cache": {}}})
	for _, attack := range []struct {
		name  string
		write func() error
	}{
		{"delete", func() error { return e.s.Desired.Delete(e.ctx, key) }},
		{"replay", func() error { _, err := e.s.Desired.Put(e.ctx, key, old); return err }},
	} {
		if err := attack.write(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.writeDesired(e.ctx, r, "eu-west", "test", func(d *manifest.Desired) { d.Plugins[attack.name] = manifest.Release{} }); err != nil {
			t.Fatalf("after a %s: %v", attack.name, err)
		}
		d, _ := e.signed("eu-west")
		_, added := d.Plugins[attack.name]
		if _, cache := d.Plugins["cache"]; d.Plugins["auth"].Artifact.Digest != e.v1.Digest || !cache || !added {
			t.Fatalf("after a %s the controller wrote %+v, want auth and cache kept", attack.name, d.Plugins)
		}
		if _, ok := d.Plugins["old"]; ok {
			t.Fatalf("after a %s the controller based its write on the old record: %+v", attack.name, d.Plugins)
		}
	}
	// The history purged, then a record the controller did not sign.
	e.purgeDesired(key)
	if _, err := e.s.Desired.Put(e.ctx, key, []byte(`{"plugins":{}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.writeDesired(e.ctx, r, "eu-west", "test", func(d *manifest.Desired) { d.Plugins["x"] = manifest.Release{} }); err == nil ||
		!strings.Contains(err.Error(), "not starting it from empty") {
		t.Fatalf("after a purge and an unsigned record: %v, want a refusal", err)
	}
}

// A record signed by an earlier controller key (Options.Trust) is a base
// for the new key's writes; without it the controller refuses the key.
func TestWriteDesiredTrustsEarlierKeys(t *testing.T) {
	e := newEnv(t)
	e.putDesired("eu-west", manifest.Desired{Plugins: map[string]manifest.Release{"auth": {Artifact: e.v1}}})
	pub, newKey, _ := ed25519.GenerateKey(nil)
	r := &Rollout{ID: "r-test"}
	change := func(d *manifest.Desired) { d.Plugins["cache"] = manifest.Release{} }
	if _, err := NewController(e.s, Options{Log: discard, Key: newKey}).writeDesired(e.ctx, r, "eu-west", "test", change); err == nil {
		t.Fatal("a new key changed a record it cannot verify")
	}
	if _, err := NewController(e.s, Options{Log: discard, Key: newKey, Trust: []ed25519.PublicKey{e.key.Public().(ed25519.PublicKey)}}).
		writeDesired(e.ctx, r, "eu-west", "test", change); err != nil {
		t.Fatal(err)
	}
	got, _ := e.s.Desired.Get(e.ctx, manifest.RegionKey("eu-west"))
	d, err := manifest.ParseSignedDesired(got.Value(), manifest.RegionKey("eu-west"), manifest.NewTrustStore(pub))
	if err != nil || len(d.Plugins) != 2 {
		t.Fatalf("after the rotation: %v %+v", err, d)
	}
}

// A POP's refused record NACKs a wave only when it is the revision the
// controller wrote: one a bucket writer wrote cannot fail a rollout.
func TestConfirmedCountsOwnRevisionOnly(t *testing.T) {
	st := func(refused uint64) *fleet {
		return &fleet{status: []manifest.Status{{POP: "p1", Region: "eu", Revision: 5, Applied: true,
			Refused: []manifest.Refused{{Key: manifest.RegionKey("eu"), Revision: refused, Reason: "unsigned", Error: "refused (unsigned)"}}}}}
	}
	if ran, _, nack := confirmed(st(6), "eu", 5, "auth", nil, nil); len(ran) != 1 || len(nack) != 0 {
		t.Fatalf("a bucket writer's record at 6: ran %v nack %q, want the wave confirmed", ran, nack)
	}
	if _, _, nack := confirmed(st(7), "eu", 7, "auth", nil, nil); len(nack) != 1 || !strings.Contains(nack[0], "refused (unsigned)") {
		t.Fatalf("the controller's own revision refused: nack %q", nack)
	}
	if ran, _, nack := confirmed(&fleet{status: []manifest.Status{{POP: "p1", Region: "eu", Revision: 5}}}, "eu", 5, "auth", nil, nil); len(ran) != 0 || len(nack) != 1 {
		t.Fatalf("a failed apply: ran %v nack %q, want a NACK", ran, nack)
	}
}

// A step that fails every tick for longer than ApplyTimeout is in the
// audit, once, and the overview (`rollout status`) says the rollout is
// stuck.
func TestStuckStepAudited(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	if _, err := e.s.Desired.Put(e.ctx, manifest.RegionKey("eu-west"), []byte(`{"plugins":{}}`)); err != nil {
		t.Fatal(err)
	}
	e.purgeDesired(manifest.RegionKey("eu-west"))
	if _, err := e.s.Desired.Put(e.ctx, manifest.RegionKey("eu-west"), []byte(`{"plugins":{}}`)); err != nil {
		t.Fatal(err)
	}
	id := e.start("eu-west:10%", time.Hour)
	// Stuck from the second failing tick on: any time is longer than 1ns.
	c := NewController(e.s, Options{Log: discard, Key: e.key, Fresh: time.Minute, ApplyTimeout: time.Nanosecond})
	for range 3 {
		if err := c.tick(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.release()
	if a := e.audit(id, "rollout.stuck"); len(a) != 1 || !strings.Contains(a[0].Why, "not starting it from empty") {
		t.Fatalf("stuck entries %+v, want one naming the cause", a)
	}
	if o, err := Overview(e.ctx, e.s); err != nil || !strings.Contains(o.Stuck[id], "not starting it from empty") {
		t.Fatalf("overview: %v, stuck %+v", err, o.Stuck)
	}
}

// purgeDesired drops key's history from the desired-state bucket, as the
// controller's credential can through the stream (the bucket refuses the
// rollup a KV purge is: controlplane.ensureKV).
func (e *env) purgeDesired(key string) {
	e.t.Helper()
	st, err := e.s.JS.Stream(e.ctx, "KV_"+manifest.BucketDesired)
	if err == nil {
		err = st.Purge(e.ctx, jetstream.WithPurgeSubject("$KV."+manifest.BucketDesired+"."+key))
	}
	if err != nil {
		e.t.Fatal(err)
	}
}
