package rollout

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/internal/testutil"
)

func TestParseWaves(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // waves joined by space, or "error: <substring>"
	}{
		{"eu-west:10%,eu-west:100%,us-east,*", "eu-west:10% eu-west:100% us-east:100% *"},
		{" eu-west:2.5% , us-east:50 ", "eu-west:2.5% us-east:50%"},
		{"*", "*"},
		{"", "error: empty"},
		{"eu-west,,us-east", "error: wave 2 is empty"},
		{"*,eu-west", "error: * must be the last"},
		{"eu-west:0%", "error: (0, 100]"},
		{"eu-west:101%", "error: (0, 100]"},
		{"eu-west:ten", "error: share"},
		{"EU", "error: region"},
		{"eu-west:50%,eu-west:10%", "error: must grow"},
		{"eu-west,eu-west", "error: must grow"},
		{"*:10%", "error: region"},
	} {
		ws, err := ParseWaves(tc.in)
		got := ""
		if err != nil {
			got = "error: " + err.Error()
			if !strings.HasPrefix(tc.want, "error: ") || !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) {
				t.Errorf("ParseWaves(%q) = %v, want %s", tc.in, err, tc.want)
			}
			continue
		}
		var parts []string
		for _, w := range ws {
			parts = append(parts, w.String())
		}
		if got = strings.Join(parts, " "); got != tc.want {
			t.Errorf("ParseWaves(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseGates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Gate
		err  string
	}{
		{in: "error_rate<1%,p99<50ms", want: []Gate{{MetricErrorRate, "<", 1}, {MetricP99, "<", float64(50 * time.Millisecond)}}},
		{in: "error_rate <= 0.5% , p50<=2ms,p90<1s,p95<100us", want: []Gate{{MetricErrorRate, "<=", 0.5},
			{MetricP50, "<=", float64(2 * time.Millisecond)}, {MetricP90, "<", float64(time.Second)}, {MetricP95, "<", float64(100 * time.Microsecond)}}},
		{in: "", err: "no gates"},
		{in: "error_rate<1", err: "wants a percentage"},
		{in: "error_rate<200%", err: "not a percentage"},
		{in: "p99<fast", err: "not a positive duration"},
		{in: "p99>50ms", err: "want METRIC<VALUE"},
		{in: "p42<5ms", err: "unknown metric"},
	} {
		got, err := ParseGates(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseGates(%q) error = %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseGates(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	g := Gate{MetricErrorRate, "<", 1}
	if !g.Holds(0.99) || g.Holds(1) || !(Gate{MetricErrorRate, "<=", 1}).Holds(1) {
		t.Error("Gate.Holds compares wrongly")
	}
}

// TestGateValueRounded: a measured error rate is written to four
// significant digits (audit entries, the status page's gate values), not
// as the float it was computed as; a limit is written as given.
func TestGateValueRounded(t *testing.T) {
	for v, want := range map[float64]string{8.0 / 75 * 100: "10.67%", 50: "50%", 100: "100%", 0: "0%", 1.0 / 3000: "0.0003333%"} {
		if got := formatValue(MetricErrorRate, v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
	if got := (Gate{MetricErrorRate, "<", 0.12345}).String(); got != "error_rate<0.12345%" {
		t.Errorf("gate %q: its limit was not written as given", got)
	}
	if got := formatValue(MetricP99, float64(1988*time.Microsecond)); got != "1.988ms" {
		t.Errorf("p99 %q", got)
	}
}

func TestWindow(t *testing.T) {
	base := manifest.Health{Requests: 100, Errors: 1, Buckets: []uint64{50, 50}}
	var w Window
	w.add(manifest.Health{Requests: 140, Errors: 21, Buckets: []uint64{50, 90}}, &base)
	// A restarted POP counts from zero: everything it reports is new.
	w.add(manifest.Health{Requests: 10, Errors: 0, Buckets: []uint64{10, 0}}, &base)
	if w.Requests != 50 || w.Errors != 20 || !slices.Equal(w.Buckets, []uint64{10, 40}) {
		t.Fatalf("window = %+v", w)
	}
	if got := w.Value(MetricErrorRate); got != 40 {
		t.Errorf("error rate = %v, want 40", got)
	}
	if got := time.Duration(w.Value(MetricP99)); got != 1988*time.Microsecond {
		t.Errorf("p99 = %v, want 1.988ms (interpolated in (1ms, 2ms], to the microsecond)", got)
	}
}

// env is an embedded control plane, a registry with auth@v1 and auth@v2,
// and fake POPs.
type env struct {
	t      *testing.T
	ctx    context.Context
	s      *controlplane.Stores
	v1, v2 manifest.Artifact
	mu     sync.Mutex
	bad    map[string]bool    // digests, and config hashes, that answer 50% errors
	nack   map[string]bool    // digests the POPs refuse, or "POP digest" that POP alone
	quiet  bool               // the POPs serve no requests: no window fills
	key    ed25519.PrivateKey // the controller's: signs desired state
	art    ed25519.PrivateKey // the artifact key, which the POPs trust
}

func newEnv(t *testing.T) *env {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	_, s := controlplanetest.Start(t, embedded.Options{})
	_, ctlKey, _ := ed25519.GenerateKey(nil)
	e := &env{t: t, ctx: ctx, s: s, bad: map[string]bool{}, nack: map[string]bool{}, key: ctlKey}
	_, key, _ := ed25519.GenerateKey(nil)
	e.art = key
	for _, v := range []struct {
		a    *manifest.Artifact
		ver  string
		code string
	}{{&e.v1, "v1", "one"}, {&e.v2, "v2", "two"}} {
		a, err := manifest.Sign(key, "auth", v.ver, []byte(v.code), "test")
		if err != nil {
			t.Fatal(err)
		}
		*v.a = *a
		b, _ := json.Marshal(a)
		if _, err := s.Artifacts.Put(ctx, manifest.ArtifactKey("auth", v.ver), b); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// revoke writes a revocation of digest, "leaks tokens", signed by the
// artifact key, as the POPs (and the controller) take it.
func (e *env) revoke(digest string) { e.revokeWith(e.art, digest) }

// revokeWith writes a revocation of digest signed by key.
func (e *env) revokeWith(key ed25519.PrivateKey, digest string) {
	e.t.Helper()
	rv, err := manifest.SignRevocation(key, digest, "leaks tokens", "test")
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(rv)
	if _, err := e.s.Revoked.Put(e.ctx, digest, b); err != nil {
		e.t.Fatal(err)
	}
}

// trust is the POPs' trust store: the artifact key.
func (e *env) trust() manifest.TrustStore {
	return manifest.NewTrustStore(e.art.Public().(ed25519.PublicKey))
}

func (e *env) mark(set map[string]bool, digest string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	set[digest] = true
}

func (e *env) putDesired(region string, d manifest.Desired) uint64 {
	return e.putSigned(manifest.RegionKey(region), d)
}

// putSigned writes d under key signed by the controller's key, as the
// controller would.
func (e *env) putSigned(key string, d manifest.Desired) uint64 {
	b, err := manifest.SignDesired(e.key, key, time.Now(), &d)
	if err != nil {
		e.t.Fatal(err)
	}
	rev, err := e.s.Desired.Put(e.ctx, key, b)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func (e *env) desired(region string) (manifest.Desired, uint64) {
	var d manifest.Desired
	ent, err := e.s.Desired.Get(e.ctx, manifest.RegionKey(region))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return d, 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(ent.Value(), &d); err != nil {
		e.t.Fatal(err)
	}
	return d, ent.Revision()
}

// pop runs a fake POP until stop is called or the test ends: it echoes
// its region's desired state into its status (NACKing digests in e.nack)
// and serves 10 requests per release (digest and config) per report, half
// of them failing on digests and config hashes in e.bad. Like a real POP
// it reports each side's config hash and a Health per release, the stable
// side's first.
func (e *env) pop(name, region string) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	stop = func() { cancel(); <-done }
	e.t.Cleanup(stop)
	go func() {
		defer close(done)
		type release struct{ digest, config string }
		health := map[release]*manifest.Health{}
		var order []release // as first reported
		running := map[string]manifest.Running{}
		var applied uint64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			st := manifest.Status{POP: name, Region: region, Time: time.Now(), Applied: true, Source: "control"}
			ent, err := e.s.Desired.Get(ctx, manifest.RegionKey(region))
			if err == nil {
				st.Revision = ent.Revision()
				var d manifest.Desired
				json.Unmarshal(ent.Value(), &d)
				e.mu.Lock()
				for _, rel := range d.Plugins {
					refuses := func(digest string) bool { return e.nack[digest] || e.nack[name+" "+digest] }
					if refuses(rel.Artifact.Digest) || (rel.Canary != nil && refuses(rel.Canary.Artifact.Digest)) {
						st.Applied, st.Error = false, "compile auth: wasm: trap in _initialize"
					}
				}
				e.mu.Unlock()
				if st.Applied && applied != st.Revision {
					applied = st.Revision
					running = map[string]manifest.Running{}
					for k, rel := range d.Plugins {
						r := manifest.Running{Version: rel.Artifact.Version, Digest: rel.Artifact.Digest, Config: manifest.ConfigHash(rel.Config)}
						if c := rel.Canary; c != nil {
							r.Canary, r.CanaryDigest, r.CanaryConfig, r.Share = c.Artifact.Version, c.Artifact.Digest, manifest.ConfigHash(c.Config), c.Share
						}
						running[k] = r
					}
				}
			}
			// A POP reports every plugin of its routes, those the
			// desired state leaves to its config file too: each route
			// here runs auth.
			st.Running = maps.Clone(running)
			if _, ok := st.Running["auth"]; !ok {
				st.Running["auth"] = manifest.Running{Version: "v0", Digest: "config-file"}
			}
			serve := func(rel release, version string) {
				h := health[rel]
				if h == nil {
					h = &manifest.Health{Plugin: "auth", Version: version, Digest: rel.digest, Config: rel.config,
						Buckets: make([]uint64, len(manifest.LatencyBounds)+1)}
					health[rel] = h
					order = append(order, rel)
				}
				if e.quiet {
					return
				}
				h.Requests += 10
				h.Buckets[2] += 10 // 5ms
				if e.bad[rel.digest] || e.bad[rel.config] {
					h.Errors += 5
				}
			}
			e.mu.Lock()
			for _, r := range running {
				serve(release{r.Digest, r.Config}, r.Version)
				if r.Canary != "" {
					serve(release{r.CanaryDigest, r.CanaryConfig}, r.Canary)
				}
			}
			e.mu.Unlock()
			st.Health = nil
			for _, rel := range order {
				h := health[rel]
				hc := *h
				hc.Buckets = slices.Clone(h.Buckets)
				st.Health = append(st.Health, hc)
			}
			b, _ := json.Marshal(st)
			e.s.Status.Put(ctx, manifest.StatusKey(region, name), b)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return stop
}

// fleet is three regions: eu-west (two POPs, running auth@v1),
// us-east and ap-south (one POP each, other plugins only).
// It returns the POPs' stop functions by name.
func (e *env) fleet() map[string]func() {
	e.putDesired("eu-west", manifest.Desired{Plugins: map[string]manifest.Release{"auth": {Artifact: e.v1}}})
	e.putDesired("us-east", manifest.Desired{Plugins: map[string]manifest.Release{"cache": {}}})
	e.putDesired("ap-south", manifest.Desired{Plugins: map[string]manifest.Release{"cache": {}}})
	stops := map[string]func(){}
	for _, p := range [][2]string{{"eu-west-1", "eu-west"}, {"eu-west-2", "eu-west"}, {"us-east-1", "us-east"}, {"ap-south-1", "ap-south"}} {
		stops[p[0]] = e.pop(p[0], p[1])
	}
	// The POPs report asynchronously; a rollout started before their
	// first report would find regions without traffic.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := readFleet(e.ctx, e.s, time.Minute)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(f.status) == 4 {
			return stops
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d of 4 POPs reported", len(f.status))
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// controller runs a controller until the returned stop is called (or
// the test ends).
func (e *env) controller() (stop func()) {
	// Fresh is generous: on a loaded 2-core machine under -race a fake POP
	// can miss seconds of reports.
	return e.controllerWith(Options{Tick: 25 * time.Millisecond, Fresh: 5 * time.Second, ApplyTimeout: 10 * time.Second})
}

func (e *env) controllerWith(opts Options) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	opts.Log, opts.Key, opts.ArtifactKeys = slog.New(slog.NewTextHandler(io.Discard, nil)), e.key, e.trust()
	c := NewController(e.s, opts)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) start(waves string, bake time.Duration) string {
	id, err := Start(e.ctx, e.s, Spec{Plugin: "auth", Version: "v2", Waves: waves, Gates: "error_rate<1%,p99<50ms",
		Bake: bake, Who: "alice", Why: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// wait polls the rollout until cond holds.
func (e *env) wait(id, what string, cond func(*Rollout) bool) *Rollout {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a hang guard, not a bound on the controller
	for {
		r, err := Get(e.ctx, e.s, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rollout never got %s: state %s, %s, reason %q", what, r.State, r.Progress(), r.Reason)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

func (e *env) actions(id string) []string {
	all, err := RecentAudit(e.ctx, e.s, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, a := range all {
		if a.Rollout == id {
			out = append(out, a.Action)
		}
	}
	return out
}

func release(d manifest.Desired, key string) (manifest.Release, bool) {
	r, ok := d.Plugins[key]
	return r, ok
}

func TestGoodRolloutReachesEveryRegion(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.controller()
	id := e.start("eu-west:10%,eu-west:100%,us-east,*", 300*time.Millisecond)
	r := e.wait(id, "done", func(r *Rollout) bool { return r.State == StateDone || r.State == StateRolledBack })
	if r.State != StateDone {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	for _, region := range []string{"eu-west", "us-east", "ap-south"} {
		d, _ := e.desired(region)
		rel, ok := release(d, "auth")
		if !ok || rel.Artifact.Digest != e.v2.Digest || rel.Canary != nil {
			t.Errorf("%s runs %+v, want auth@v2 alone", region, rel)
		}
	}
	if got := r.Waves[3].Regions; !slices.Equal(got, []string{"ap-south"}) {
		t.Errorf("* resolved to %v, want [ap-south]", got)
	}
	// The first wave was a 10% canary beside v1.
	hist, err := e.s.Desired.History(e.ctx, manifest.RegionKey("eu-west"))
	if err != nil {
		t.Fatal(err)
	}
	var canary bool
	for _, h := range hist {
		var d manifest.Desired
		json.Unmarshal(h.Value(), &d)
		if rel := d.Plugins["auth"]; rel.Canary != nil {
			canary = rel.Canary.Share == 10 && rel.Canary.Artifact.Digest == e.v2.Digest && rel.Artifact.Digest == e.v1.Digest
		}
	}
	if !canary {
		t.Error("eu-west never ran v2 as a 10% canary beside v1")
	}
	want := []string{"rollout.start"}
	for range 4 {
		want = append(want, "wave.apply", "wave.applied", "wave.promote")
	}
	want = append(want, "rollout.done")
	if got := e.actions(id); !slices.Equal(got, want) {
		t.Errorf("audit = %v\nwant    %v", got, want)
	}
	// The lock goes just after the end is saved (TestStartTakesEndedLock).
	testutil.Eventually(t, time.Minute, "the finished rollout's lock released", func() bool {
		_, err := e.s.Rollouts.Get(e.ctx, lockKey("auth"))
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	o, err := Overview(e.ctx, e.s)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Regions) != 3 || len(o.Rollouts) != 1 || o.Rollouts[0].ID != id || len(o.Audit) != len(want) {
		t.Fatalf("overview: %d regions, %d rollouts, %d audit entries", len(o.Regions), len(o.Rollouts), len(o.Audit))
	}
	var sawV2 bool
	for _, v := range o.Regions[0].Versions { // ap-south, sorted first
		sawV2 = sawV2 || (v.Version == "v2" && v.Requests > 0 && v.ErrorRate == 0 && v.P99 == 4970*time.Microsecond) // all in (2ms, 5ms]
	}
	if o.Regions[0].Region != "ap-south" || !sawV2 {
		t.Errorf("overview of %s: %+v", o.Regions[0].Region, o.Regions[0].Versions)
	}
}

func TestBadVersionRolledBackInCanary(t *testing.T) {
	e := newEnv(t)
	e.mark(e.bad, e.v2.Digest)
	e.fleet()
	_, usRev := e.desired("us-east")
	_, apRev := e.desired("ap-south")
	before, _ := e.desired("eu-west")
	e.controller()
	id := e.start("eu-west:10%,eu-west:100%,us-east,*", 300*time.Millisecond)
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return r.State == StateDone || r.State == StateRolledBack })
	if r.State != StateRolledBack || r.Wave != 0 || !strings.Contains(r.Reason, "error_rate 50% is not < 1%") {
		t.Fatalf("state %s at wave %d, reason %q", r.State, r.Wave, r.Reason)
	}
	if r.RollbackDuration <= 0 {
		t.Error("no rollback duration recorded")
	}
	if _, rev := e.desired("us-east"); rev != usRev {
		t.Errorf("us-east desired revision %d -> %d: a bad canary reached another region", usRev, rev)
	}
	if _, rev := e.desired("ap-south"); rev != apRev {
		t.Errorf("ap-south desired revision %d -> %d", apRev, rev)
	}
	after, _ := e.desired("eu-west")
	a, _ := json.Marshal(before.Plugins)
	b, _ := json.Marshal(after.Plugins)
	if string(a) != string(b) {
		t.Errorf("eu-west not restored:\n%s\nwant\n%s", b, a)
	}
	want := []string{"rollout.start", "wave.apply", "wave.applied", "gate.fail", "rollout.rollback", "rollout.rolled_back"}
	if got := e.actions(id); !slices.Equal(got, want) {
		t.Errorf("audit = %v\nwant    %v", got, want)
	}
}

// TestTargetHealth: a wave's target is judged on its version's requests
// under every config a POP runs it with (routes of the POP's config file
// may give it their own), but a canary of the stable side's own module,
// one that changes only the config, on its config's requests alone.
func TestTargetHealth(t *testing.T) {
	a, b := manifest.ConfigHash([]byte(`{"a":1}`)), manifest.ConfigHash([]byte(`{"b":1}`))
	row := func(digest, config string, requests, errs uint64) manifest.Health {
		return manifest.Health{Plugin: "auth", Digest: digest, Config: config, Requests: requests, Errors: errs, Buckets: []uint64{requests, 0}}
	}
	for _, tc := range []struct {
		name   string
		target manifest.Artifact
		run    manifest.Running
		want   manifest.Health
	}{
		{"a new version, under two configs", manifest.Artifact{Digest: "d2"},
			manifest.Running{Digest: "d1", Config: a, Canary: "v2", CanaryDigest: "d2", CanaryConfig: a},
			manifest.Health{Requests: 30, Errors: 3, Buckets: []uint64{30, 0}}},
		{"the same version, another config", manifest.Artifact{Digest: "d1"},
			manifest.Running{Digest: "d1", Config: a, Canary: "v1", CanaryDigest: "d1", CanaryConfig: b},
			manifest.Health{Requests: 40, Errors: 40, Buckets: []uint64{40, 0}}},
	} {
		r := &Rollout{Key: "auth", Plugin: "auth", Artifact: tc.target, Waves: []Wave{{Region: "eu-west", Share: 20}}}
		st := manifest.Status{Running: map[string]manifest.Running{"auth": tc.run},
			Health: []manifest.Health{row("d1", a, 100, 0), row("d1", b, 40, 40), row("d2", a, 10, 1), row("d2", b, 20, 2)}}
		h, ok := r.health(st)
		if !ok || h.Requests != tc.want.Requests || h.Errors != tc.want.Errors || !slices.Equal(h.Buckets, tc.want.Buckets) {
			t.Errorf("%s: health %+v, %v; want %d requests, %d errors, buckets %v", tc.name, h, ok, tc.want.Requests, tc.want.Errors, tc.want.Buckets)
		}
	}
}

// TestConfigOnlyCanaryJudgedOnItsOwnRequests: a canary of the version the
// region runs, with another config, shares the stable side's digest; its
// gates see its own requests, not the stable side's too, so a config that
// fails is rolled back in its canary wave, and the audit tells the two
// sides apart by config.
func TestConfigOnlyCanaryJudgedOnItsOwnRequests(t *testing.T) {
	e := newEnv(t)
	config := json.RawMessage(`{"greeting":"fail"}`)
	e.mark(e.bad, manifest.ConfigHash(config))
	e.fleet()
	before, _ := e.desired("eu-west")
	e.controller()
	id, err := Start(e.ctx, e.s, Spec{Plugin: "auth", Version: "v1", Config: config, Waves: "eu-west:20%,eu-west",
		Gates: "error_rate<1%", Bake: 300 * time.Millisecond, Who: "alice", Why: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// Past its canary wave it has failed already: every client is on it.
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() || r.Wave > 0 })
	if r.State != StateRolledBack || r.Wave != 0 || !strings.Contains(r.Reason, "error_rate 50% is not < 1%") {
		t.Fatalf("state %s at wave %d, reason %q", r.State, r.Wave, r.Reason)
	}
	after, _ := e.desired("eu-west")
	a, _ := json.Marshal(before.Plugins)
	b, _ := json.Marshal(after.Plugins)
	if string(a) != string(b) {
		t.Errorf("eu-west not restored:\n%s\nwant\n%s", b, a)
	}
	all, err := RecentAudit(e.ctx, e.s, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := "auth@v1 with config " + manifest.ConfigHash(config)[:8] + " on 20% of clients, with config (the POPs' own) on the rest"
	i := slices.IndexFunc(all, func(a manifest.Audit) bool { return a.Rollout == id && a.Action == "wave.apply" })
	if i < 0 || !strings.Contains(all[i].Why, want) {
		t.Errorf("audit of the canary wave does not say %q: %+v", want, all)
	}
}

func TestNACKRollsBack(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	// eu-west had no auth release: the rollback must remove the key.
	e.putDesired("eu-west", manifest.Desired{Plugins: map[string]manifest.Release{"cache": {}}})
	e.mark(e.nack, e.v2.Digest)
	e.controller()
	id := e.start("eu-west:10%,*", time.Hour)
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "trap in _initialize") {
		t.Fatalf("state %s, reason %q", r.State, r.Reason)
	}
	d, _ := e.desired("eu-west")
	if _, ok := d.Plugins["auth"]; ok || len(d.Plugins) != 1 {
		t.Errorf("eu-west after rollback: %+v, want cache only", d.Plugins)
	}
	if got := e.actions(id); !slices.Contains(got, "wave.nack") || got[len(got)-1] != "rollout.rolled_back" {
		t.Errorf("audit = %v", got)
	}
}

// TestRevokedStableSide: with the version a region runs revoked, a
// canary's other side and what a rollback restores are the POPs' own
// version, which POPs run in its place; both named the revoked version,
// which every POP refused, so no canary could start and a rollback
// restored nothing (ops review).
func TestRevokedStableSide(t *testing.T) {
	e := newEnv(t)
	e.fleet() // eu-west runs auth v1
	e.revoke(e.v1.Digest)
	e.controller()
	id := e.start("eu-west:50%,eu-west", time.Hour)
	e.wait(id, "the canary baking", func(r *Rollout) bool { return r.Phase == PhaseBaking || !r.Active() })
	d, _ := e.desired("eu-west")
	if rel := d.Plugins["auth"]; rel.Artifact.Digest != "" || rel.Canary == nil || rel.Canary.Artifact.Digest != e.v2.Digest {
		t.Fatalf("the canary's release: %+v, want v2 beside the POPs' own version", rel)
	}
	if err := Command(e.ctx, e.s, id, "abort", "alice", "test"); err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	d, _ = e.desired("eu-west")
	if _, ok := d.Plugins["auth"]; ok || r.State != StateRolledBack {
		t.Errorf("after the rollback: %s, eu-west %+v; want auth left to the POPs' own version", r.State, d.Plugins)
	}
}

// TestUntrustedRevocation: a revocation record signed by a key the POPs
// do not trust revokes nothing, for the controller as for the POPs: the
// start and the dry run took it for one and refused a version the POPs
// run, and the controller dropped the version a region ran from the
// canary's stable side and from what a rollback restored (review D2).
func TestUntrustedRevocation(t *testing.T) {
	e := newEnv(t)
	e.fleet() // eu-west runs auth v1
	cfg := json.RawMessage(`{"name":"r2"}`)
	e.putDesired("eu-west", manifest.Desired{Plugins: map[string]manifest.Release{"auth": {Artifact: e.v1, Config: cfg}}})
	before, _ := e.desired("eu-west")
	_, mallory, _ := ed25519.GenerateKey(nil)
	e.revokeWith(mallory, e.v1.Digest)
	e.revokeWith(mallory, e.v2.Digest)
	spec := Spec{Plugin: "auth", Version: "v2", Waves: "eu-west:50%,eu-west", Gates: "error_rate<1%,p99<50ms",
		Bake: time.Hour, Who: "alice", Trust: e.trust()}
	p, err := Resolve(e.ctx, e.s, spec)
	if err != nil || p.Refused == nil || !strings.Contains(p.String(), "not revoked") {
		t.Fatalf("dry run: %v, %v; want a plan saying the record is refused", p, err)
	}
	id, err := Start(e.ctx, e.s, spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	e.controller()
	e.wait(id, "the canary baking", func(r *Rollout) bool { return r.Phase == PhaseBaking || !r.Active() })
	d, _ := e.desired("eu-west")
	if rel := d.Plugins["auth"]; rel.Artifact.Digest != e.v1.Digest || string(rel.Config) != string(cfg) ||
		rel.Canary == nil || rel.Canary.Artifact.Digest != e.v2.Digest {
		t.Fatalf("the canary's release: %s, want v2 beside v1 with its config", mustJSON(rel))
	}
	if err := Command(e.ctx, e.s, id, "abort", "alice", "test"); err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	after, _ := e.desired("eu-west")
	if a, b := mustJSON(before.Plugins), mustJSON(after.Plugins); a != b || r.State != StateRolledBack {
		t.Errorf("after the rollback (%s): eu-west %s, want %s restored", r.State, b, a)
	}
}

// TestRevokedMidRollout: a version revoked while its canary bakes rolls
// back, saying so; it baked on, waiting for traffic that the POPs, which
// stop a revoked version, no longer sent it (ops review).
func TestRevokedMidRollout(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	before, _ := e.desired("eu-west")
	e.controller()
	id := e.start("eu-west:50%,eu-west", time.Hour)
	e.wait(id, "the canary baking", func(r *Rollout) bool { return r.Phase == PhaseBaking || !r.Active() })
	e.revoke(e.v2.Digest)
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "auth@v2 was revoked: leaks tokens") {
		t.Fatalf("state %s, reason %q", r.State, r.Reason)
	}
	after, _ := e.desired("eu-west")
	if a, b := mustJSON(before.Plugins), mustJSON(after.Plugins); a != b {
		t.Errorf("eu-west not restored: %s, want %s", b, a)
	}
}

func TestPauseBlocksPromotionAndResumeContinues(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.controller()
	// No traffic until the pause has landed: a wave is promoted once its
	// bake is over and its window holds min_requests, and with traffic a
	// slow machine let the 200 ms bake end before the pause came.
	e.mu.Lock()
	e.quiet = true
	e.mu.Unlock()
	bake := 200 * time.Millisecond
	id := e.start("eu-west:10%,eu-west", bake)
	e.wait(id, "first wave baking", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	// A resume of a rollout not paused would do nothing: refused, as is a
	// second pause while the first is still queued.
	if err := Command(e.ctx, e.s, id, ActionResume, "bob", ""); err == nil || !strings.Contains(err.Error(), "is not paused: nothing to resume") {
		t.Errorf("resume while running: %v", err)
	}
	if err := Command(e.ctx, e.s, id, ActionPause, "bob", "looking at dashboards"); err != nil {
		t.Fatal(err)
	}
	if err := Command(e.ctx, e.s, id, ActionPause, "bob", ""); err == nil || !strings.Contains(err.Error(), "paused already") {
		t.Errorf("pause with a pause queued: %v", err)
	}
	e.wait(id, "paused", func(r *Rollout) bool { return r.Paused })
	e.mu.Lock()
	e.quiet = false
	e.mu.Unlock()
	// A promote would wait unseen and promote at the resume; a second
	// pause would do nothing: both are refused, saying why.
	if err := Command(e.ctx, e.s, id, ActionPromote, "bob", ""); err == nil || !strings.Contains(err.Error(), "is paused: resume it, then promote") {
		t.Errorf("promote while paused: %v", err)
	}
	if err := Command(e.ctx, e.s, id, ActionPause, "bob", ""); err == nil || !strings.Contains(err.Error(), "paused already") {
		t.Errorf("pause while paused: %v", err)
	}
	// Well past the bake with plenty of traffic, it must still be on wave 1.
	r := e.wait(id, "a long healthy bake", func(r *Rollout) bool {
		return r.Wave > 0 || (r.Window.Requests >= 4*r.MinRequests && time.Since(r.AppliedAt) > 3*bake)
	})
	if r.Wave != 0 || r.State != StateRunning {
		t.Fatalf("paused rollout moved on: %s", r.Progress())
	}
	if err := Command(e.ctx, e.s, id, ActionResume, "bob", "looks fine"); err != nil {
		t.Fatal(err)
	}
	r = e.wait(id, "done", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateDone {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	got := e.actions(id)
	if i, j := slices.Index(got, "rollout.pause"), slices.Index(got, "rollout.resume"); i < 0 || j < i || slices.Index(got, "wave.promote") < j {
		t.Errorf("audit = %v: want pause, resume, then the promotion", got)
	}
	if err := Command(e.ctx, e.s, id, ActionPause, "bob", ""); err == nil {
		t.Error("pausing a finished rollout succeeded")
	}
}

func TestPromoteSkipsBakeAndAbortRestores(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	before, _ := e.desired("eu-west")
	e.controller()
	id := e.start("eu-west:10%,eu-west,us-east", time.Hour)
	e.wait(id, "first wave baking", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	if err := Command(e.ctx, e.s, id, ActionPromote, "carol", "smoke tests pass"); err != nil {
		t.Fatal(err)
	}
	e.wait(id, "second wave baking", func(r *Rollout) bool { return r.Wave == 1 && r.Phase == PhaseBaking })
	if err := Command(e.ctx, e.s, id, ActionAbort, "carol", "customer report"); err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, "rolled back", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "customer report") {
		t.Fatalf("state %s, reason %q", r.State, r.Reason)
	}
	after, _ := e.desired("eu-west")
	if a, b := after.Plugins["auth"], before.Plugins["auth"]; a.Artifact.Digest != b.Artifact.Digest || a.Canary != nil {
		t.Errorf("eu-west after abort runs %+v, want v1", a)
	}
	d, _ := e.desired("us-east")
	if _, ok := d.Plugins["auth"]; ok {
		t.Error("us-east got auth though its wave never started")
	}
	got := e.actions(id)
	if !slices.Contains(got, "rollout.promote") || !slices.Contains(got, "rollout.abort") {
		t.Errorf("audit = %v", got)
	}
	if err := Command(e.ctx, e.s, id, ActionResume, "carol", ""); err == nil {
		t.Error("resuming a rolled back rollout succeeded")
	}
}

func TestRestartedControllerContinues(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	stop := e.controller()
	id := e.start("eu-west:10%,eu-west,*", 300*time.Millisecond)
	e.wait(id, "second wave", func(r *Rollout) bool { return r.Wave == 1 })
	stop()
	e.controller()
	r := e.wait(id, "done", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateDone {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	// What it remembers as eu-west's previous state is v1, not its canary:
	// rolling the finished rollout back restores the state before it.
	if p := r.Previous["eu-west"]; p == nil || p.Artifact.Digest != e.v1.Digest || p.Canary != nil {
		t.Fatalf("previous eu-west release: %+v", p)
	}
	if err := Command(e.ctx, e.s, id, ActionRollback, "dave", "revert the week's changes"); err != nil {
		t.Fatal(err)
	}
	r = e.wait(id, "rolled back", func(r *Rollout) bool { return r.State == StateRolledBack })
	for region, want := range map[string]string{"eu-west": e.v1.Digest, "us-east": "", "ap-south": ""} {
		d, _ := e.desired(region)
		rel, ok := d.Plugins["auth"]
		if (want == "") == ok || rel.Artifact.Digest != want {
			t.Errorf("%s after rollback: %+v (present %v), want digest %q", region, rel, ok, want)
		}
	}
	// The restart repeated nothing.
	got := e.actions(id)
	if n := len(slices.DeleteFunc(slices.Clone(got), func(a string) bool { return a != "wave.apply" })); n != 3 {
		t.Errorf("audit = %v: want 3 wave.apply", got)
	}
}

func TestStartValidates(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	e.putDesired("empty", manifest.Desired{Plugins: map[string]manifest.Release{}})
	good := Spec{Plugin: "auth", Version: "v2", Waves: "eu-west", Gates: "error_rate<1%", Bake: time.Second, Who: "alice", Trust: e.trust()}
	for _, tc := range []struct {
		change func(*Spec)
		err    string
	}{
		{func(s *Spec) { s.Version = "v3" }, "not in the registry"},
		{func(s *Spec) { s.Plugin = "Auth" }, "plugin"},
		{func(s *Spec) { s.Waves = "mars" }, `region "mars" is unknown`},
		{func(s *Spec) { s.Config = json.RawMessage("{") }, "not valid JSON"},
		{func(s *Spec) { s.Key = "api/cache" }, "want \"auth\" or ROUTE/auth"},
		{func(s *Spec) { s.Gates = "latency<1ms" }, "unknown metric"},
		{func(s *Spec) { s.Bake = -time.Second }, "negative"},
		{func(s *Spec) { s.Split = "ip" }, "split \"ip\""},
		{func(s *Spec) { s.Who = "" }, "no operator named"},
	} {
		spec := good
		tc.change(&spec)
		if _, err := Start(e.ctx, e.s, spec); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Start(%+v) error = %v, want %q", spec, err, tc.err)
		}
	}
	p, err := Resolve(e.ctx, e.s, Spec{Plugin: "auth", Version: "v2", Waves: "eu-west:10%,*", Gates: "p99<50ms"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Waves[1].Regions; !slices.Equal(got, []string{"ap-south", "empty", "us-east"}) ||
		!slices.Equal(p.Waves[0].POPs["eu-west"], []string{"eu-west-1", "eu-west-2"}) ||
		!strings.Contains(p.String(), "empty (no POP reports: the wave would roll back)") {
		t.Errorf("plan: %s", p)
	}
	// A revoked module: every POP would refuse it, so the start (and a
	// dry run) does, rather than a wave that rolls back.
	e.revoke(e.v1.Digest)
	revoked := good
	revoked.Version = "v1"
	if _, err := Resolve(e.ctx, e.s, revoked); err == nil || !strings.Contains(err.Error(), `is revoked ("leaks tokens")`) {
		t.Errorf("dry run of a revoked version: %v", err)
	}
	if _, err := Start(e.ctx, e.s, revoked); err == nil || !strings.Contains(err.Error(), "is revoked") {
		t.Errorf("start of a revoked version: %v", err)
	}
	if rs, _ := List(e.ctx, e.s); len(rs) != 0 {
		t.Errorf("a dry run or a refused start stored %d rollouts", len(rs))
	}
	if _, err := Start(e.ctx, e.s, good); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(e.ctx, e.s, good); err == nil || !strings.Contains(err.Error(), "already has an active rollout") {
		t.Errorf("second rollout of auth: %v", err)
	}
	// A region without POPs cannot be gated: the rollout fails at once.
	e.controller()
	spec := good
	spec.Key = "api/auth"
	spec.Waves = "empty"
	id, err := Start(e.ctx, e.s, spec)
	if err != nil {
		t.Fatal(err)
	}
	r := e.wait(id, "failed", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "cannot gate without traffic") {
		t.Errorf("state %s, reason %q", r.State, r.Reason)
	}
}

// TestRestartKeepsBakeWindow: a POP that restarts while its wave bakes
// starts its counters again; what it served before stays in the window.
// Before, the window was the difference of the counters since the wave
// was applied, and a restart dropped that POP's share of it: a version
// that failed requests (or crashed its POP) until a restart had its
// errors forgotten, and passed its gate.
func TestRestartKeepsBakeWindow(t *testing.T) {
	e := newEnv(t)
	stops := e.fleet()
	e.controller()
	e.mark(e.bad, e.v2.Digest) // half its requests fail
	id, err := Start(e.ctx, e.s, Spec{Plugin: "auth", Version: "v2", Waves: "us-east", Gates: "error_rate<1%",
		Bake: time.Second, MinRequests: 2000, Who: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(id, "errors in the window", func(r *Rollout) bool { return r.Phase == PhaseBaking && r.Window.Errors >= 50 })
	// us-east-1 restarts, healthy from now on.
	stops["us-east-1"]()
	e.mu.Lock()
	delete(e.bad, e.v2.Digest)
	e.mu.Unlock()
	e.pop("us-east-1", "us-east")
	r := e.wait(id, "ended", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "error_rate") {
		t.Fatalf("state %s, window %+v, reason %q: want the errors served before the restart to fail the gate", r.State, r.Window, r.Reason)
	}
}

// TestRevokedKeyDropped: a region runs another key's version that was
// revoked since. The POPs refuse a desired state that holds it, so every
// rollout there of any other key was NACKed and rolled back, until that
// key got a new version. The controller now drops the revoked release
// from the region's record (the POPs run their config file's plugin for
// it already) and says so in the audit.
func TestRevokedKeyDropped(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	cache, err := manifest.Sign(e.art, "cache", "v4", []byte("four"), "test")
	if err != nil {
		t.Fatal(err)
	}
	e.putDesired("eu-west", manifest.Desired{Plugins: map[string]manifest.Release{
		"auth": {Artifact: e.v1}, "cache": {Artifact: *cache}}})
	e.revoke(cache.Digest)
	e.mark(e.nack, cache.Digest) // as the POPs would
	e.controller()
	id := e.start("eu-west", 100*time.Millisecond)
	r := e.wait(id, "ended", func(r *Rollout) bool { return !r.Active() })
	if r.State != StateDone {
		t.Fatalf("state %s: %s", r.State, r.Reason)
	}
	d, _ := e.desired("eu-west")
	if _, ok := d.Plugins["cache"]; ok || d.Plugins["auth"].Artifact.Digest != e.v2.Digest {
		t.Errorf("eu-west's desired state: %+v", d.Plugins)
	}
	if got := e.actions(id); !slices.Contains(got, "desired.drop_revoked") {
		t.Errorf("audit %v: no desired.drop_revoked", got)
	}
}

// TestStartTakesEndedLock: a rollout's lock outlives its end for a moment
// (the controller saves the end, then releases the lock) or for good (a
// controller stopped in between), and a lock outlives a Start killed
// before it wrote its record. A Start took neither, so an operator who saw
// a rollout end and started the next at once was refused, and one left
// for good needed the bucket edited. A running rollout's lock, or a
// starting one's, still refuses.
func TestStartTakesEndedLock(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	first := e.start("eu-west", time.Second) // no controller: it stays running
	spec := Spec{Plugin: "auth", Version: "v2", Waves: "eu-west", Gates: "error_rate<1%", Bake: time.Second, Who: "bob"}
	if _, err := Start(e.ctx, e.s, spec); err == nil || !strings.Contains(err.Error(), "already has an active rollout, "+first) {
		t.Fatalf("start beside a running rollout: %v", err)
	}
	// It ends, its lock still held.
	r, err := Get(e.ctx, e.s, first)
	if err != nil {
		t.Fatal(err)
	}
	r.State = StateDone
	b, _ := json.Marshal(r)
	if _, err := e.s.Rollouts.Update(e.ctx, first, b, r.rev); err != nil {
		t.Fatal(err)
	}
	second, err := Start(e.ctx, e.s, spec)
	if err != nil {
		t.Fatalf("start after the rollout ended: %v", err)
	}
	if l, err := e.s.Rollouts.Get(e.ctx, lockKey("auth")); err != nil || string(l.Value()) != second {
		t.Fatalf("lock after the start: %v", err)
	}
	// A lock without a record: a Start under way, then one killed.
	if err := e.s.Rollouts.Delete(e.ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(e.ctx, e.s, spec); err == nil || !strings.Contains(err.Error(), "already has a rollout starting, "+second) {
		t.Fatalf("start beside a starting rollout: %v", err)
	}
	startingFor = 0
	defer func() { startingFor = time.Minute }()
	if _, err := Start(e.ctx, e.s, spec); err != nil {
		t.Fatalf("start after a killed start: %v", err)
	}
}

// TestStartAuditFirst: a start whose audit entry cannot be written stores
// no rollout and leaves no lock, so that starting again works once the
// stream is back; a rollout that exists always has its rollout.start.
func TestStartAuditFirst(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	spec := Spec{Plugin: "auth", Version: "v2", Waves: "eu-west", Gates: "error_rate<1%", Bake: time.Second, Who: "alice"}
	info, err := e.s.Audit.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.JS.DeleteStream(e.ctx, manifest.StreamAudit); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(e.ctx, e.s, spec); err == nil || !strings.Contains(err.Error(), "audit rollout.start") {
		t.Fatalf("start without an audit stream: %v, want an audit error", err)
	}
	if rs, _ := List(e.ctx, e.s); len(rs) != 0 {
		t.Fatalf("an unaudited start stored %d rollouts", len(rs))
	}
	if _, err := e.s.JS.CreateStream(e.ctx, info.Config); err != nil {
		t.Fatal(err)
	}
	id, err := Start(e.ctx, e.s, spec)
	if err != nil {
		t.Fatalf("start again once the audit stream is back: %v", err)
	}
	if got := e.audit(id, "rollout.start"); len(got) != 1 || got[0].Who != "alice" {
		t.Errorf("rollout.start entries: %+v, want one by alice", got)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
