package deploy_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	edgepop "github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm/wasmbuild"
	"github.com/talowa/wedge/wasm/wasmtest"
)

const guests = "../wasm/internal/testguests/fleet/"

// popSpec names a POP: its region and name.
type popSpec struct{ region, pop string }

// A local fleet: three regions, two POPs in the canary region.
var pops = []popSpec{
	{"eu-west", "eu-west-1"}, {"eu-west", "eu-west-2"}, {"us-east", "us-east-1"}, {"ap-south", "ap-south-1"},
}

// clients per POP, each from its own loopback source address so the
// canary split (sticky by client address) has clients on both sides.
const clients = 24

// clientPause is each client's pause between requests. The four POPs of
// a test run in this one process, under -race, on a machine other tests
// share: 96 clients at 20 requests/s (an earlier 50 ms pause) took most
// of two cores, leaving the POPs' applies (a compile-cache load and a warm
// pool each) and the plugins' 100 ms call deadlines starved, so that what
// the test measured was how busy the machine was. At 4/s each the load is
// a fraction of a core, and still dozens of requests a second through a
// canary share, which is what the gates need.
const clientPause = 250 * time.Millisecond

// hangGuard bounds each wait for an event (a wave applied, a rollout done,
// a log line): a generous deadline that only a hang reaches, however busy
// the machine. It is also the controller's ApplyTimeout in these tests,
// which check rollbacks by gates and are not about how long a POP may
// take to apply.
const hangGuard = 3 * time.Minute

// gates of the test rollouts. The latency gate is at the top of the
// health histogram (p99 is 5 s once over 1% took longer than its last
// bound, 2.5 s): a latency gate evaluated on real reports, which a busy
// machine cannot trip but a hang would.
const gates = "error_rate<1%,p99<5s"

type pop struct {
	region, name, addr string
	node               *edge.Node
	log                *testutil.SyncBuffer
}

// result is one client's count of answers by version and status.
type tally struct {
	mu sync.Mutex
	// by region, client and "status version"
	seen map[string]map[int]map[string]int
	// by region, client and version: when the client's first 200 from
	// that version came back
	first map[string]map[int]map[string]time.Time
	// by POP and client: answers of any kind
	answered map[string]map[int]int
}

func newTally() *tally {
	return &tally{seen: map[string]map[int]map[string]int{}, first: map[string]map[int]map[string]time.Time{},
		answered: map[string]map[int]int{}}
}

func (t *tally) add(p *pop, client, status int, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[p.region] == nil {
		t.seen[p.region] = map[int]map[string]int{}
		t.first[p.region] = map[int]map[string]time.Time{}
	}
	if t.seen[p.region][client] == nil {
		t.seen[p.region][client] = map[string]int{}
		t.first[p.region][client] = map[string]time.Time{}
	}
	t.seen[p.region][client][fmt.Sprintf("%d %s", status, version)]++
	if _, ok := t.first[p.region][client][version]; status == 200 && !ok {
		t.first[p.region][client][version] = time.Now()
	}
	if status != 0 {
		if t.answered[p.name] == nil {
			t.answered[p.name] = map[int]int{}
		}
		t.answered[p.name][client]++
	}
}

// answeredBefore returns the clients of region that version answered
// before the given time, in order.
func (t *tally) answeredBefore(region, version string, before time.Time) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int
	for c, first := range t.first[region] {
		if at, ok := first[version]; ok && at.Before(before) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// answers returns how many answers each POP gave each client.
func (t *tally) answers() map[string]map[int]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[int]int{}
	for p, cs := range t.answered {
		out[p] = maps.Clone(cs)
	}
	return out
}

// failures returns, per region, the clients that got anything but a 200
// and what they got.
func (t *tally) failures() map[string]map[int][]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[int][]string{}
	for region, cs := range t.seen {
		for c, seen := range cs {
			for k := range seen {
				if !strings.HasPrefix(k, "200 ") {
					if out[region] == nil {
						out[region] = map[int][]string{}
					}
					out[region][c] = append(out[region][c], k)
				}
			}
		}
	}
	return out
}

// TestFleetRollouts runs a good version through every wave of a three
// region fleet, then a version that answers 500s and one that traps: each
// bad one is stopped in the canary share of the first region and rolled
// back automatically, and no request outside that share fails. The audit
// stream records every step.
func TestFleetRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("a fleet of four POPs under load")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Listening on loopback: the POPs dial it, as POPs elsewhere would.
	// Started first, so it stops after the POPs: they hold connections.
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	reg := registry.New(stores)
	fleetPOPs, key := startFleet(t, ctx, stores, pops, func(string) string { return cp.URL() })
	defer startController(t, ctx, stores, key.Public().(ed25519.PublicKey), nil)()

	tl, sent, stopLoad := startLoad(ctx, fleetPOPs)
	defer stopLoad()

	waves := "eu-west:10%,eu-west:100%,us-east,*"
	run := func(version, guest string) *rollout.Rollout {
		t.Helper()
		bin := wasmtest.Build(t, guests+guest)
		pushed := time.Now()
		if _, err := reg.Push(ctx, key, "stamp", version, bin, "test"); err != nil {
			t.Fatal(err)
		}
		id, err := rollout.Start(ctx, stores, rollout.Spec{Plugin: "stamp", Version: version, Waves: waves, Gates: gates,
			Bake: 1500 * time.Millisecond, MinRequests: 30, Who: "test", Why: "fleet test " + version})
		if err != nil {
			t.Fatal(err)
		}
		var r *rollout.Rollout
		for deadline := time.Now().Add(hangGuard); ; {
			if r, err = rollout.Get(ctx, stores, id); err != nil {
				t.Fatal(err)
			}
			if r.State == rollout.StateDone || r.State == rollout.StateRolledBack {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout of %s still %s (%s) after %s", version, r.State, r.Progress(), hangGuard)
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
		// Publish -> applied: from the controller writing a wave's
		// desired state to every POP of its region acknowledging it.
		var applying time.Time
		var waves []string
		audit, err := rollout.RecentAudit(ctx, stores, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range audit {
			switch {
			case a.Version != version:
			case a.Action == "wave.apply":
				applying = a.Time
			case a.Action == "wave.applied":
				waves = append(waves, fmt.Sprintf("%s %s", a.Region, a.Time.Sub(applying).Round(time.Millisecond)))
			}
		}
		t.Logf("%s: %s %s after the push (%s); desired state to applied on every POP: %s; rollback applied in %s",
			version, r.State, time.Since(pushed).Round(time.Millisecond), r.Reason, strings.Join(waves, ", "),
			r.RollbackDuration.Round(time.Millisecond))
		return r
	}
	desiredRevs := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, region := range []string{"eu-west", "us-east", "ap-south"} {
			if e, err := stores.Desired.Get(ctx, manifest.RegionKey(region)); err == nil {
				out[region] = e.Revision()
			}
		}
		return out
	}

	// A good version reaches every POP of every region.
	if r := run("v2", "v2"); r.State != rollout.StateDone {
		t.Fatalf("good version: %s: %s", r.State, r.Reason)
	}
	for _, p := range fleetPOPs {
		if got := p.node.Running()["stamp"]; got.Version != "v2" || got.Canary != "" {
			t.Fatalf("%s runs %+v after the good rollout, want v2", p.name, got)
		}
	}
	if f := tl.failures(); len(f) != 0 {
		t.Fatalf("requests failed during the good rollout: %v", f)
	}
	// The canary share, by what the clients saw: the clients of eu-west
	// that v2 answered before its first wave was promoted (until then only
	// the canary share ran it). The split is by client address and plugin,
	// not version, so the bad versions' canary is the same share.
	promoted := auditTime(t, ctx, stores, "v2", "wave.promote")
	canaryClients := tl.answeredBefore("eu-west", "v2", promoted)
	if len(canaryClients) == 0 || len(canaryClients) > clients/5 {
		t.Fatalf("v2's 10%% canary answered %d of %d eu-west clients %v, want about 10%%", len(canaryClients), clients, canaryClients)
	}
	t.Logf("v2's canary share: eu-west clients %v", canaryClients)

	// Bad versions: stopped in eu-west's canary share and rolled back.
	// Responses name the version that answered by its guest (X-Stamp).
	for _, bad := range []struct{ version, guest string }{{"v3-500", "fail500"}, {"v4-trap", "trap"}} {
		before := desiredRevs()
		r := run(bad.version, bad.guest)
		if r.State != rollout.StateRolledBack || r.Wave != 0 {
			t.Fatalf("%s: %s in wave %d (%s), want rolled back in the first wave", bad.version, r.State, r.Wave, r.Reason)
		}
		after := desiredRevs()
		for _, region := range []string{"us-east", "ap-south"} {
			if before[region] != after[region] {
				t.Fatalf("%s: the desired state of %s changed (revision %d -> %d)", bad.version, region, before[region], after[region])
			}
		}
		waitRunning(t, fleetPOPs, "v2")
		failed := tl.failures()
		for region := range failed {
			if region != "eu-west" {
				t.Fatalf("%s: requests failed outside the canary region: %s: %v", bad.version, region, failed[region])
			}
		}
		// Only clients of the canary share failed, and only on the bad
		// version. Which of them failed depends on which sent a request in
		// the moments the bad version ran (the gate needs 30 requests), so
		// not every one need have; but some did, or the gate saw nothing.
		var canary []int
		for c, what := range failed["eu-west"] {
			for _, w := range what {
				// A trapped plugin's fail-closed 503 carries no stamp.
				if !strings.HasSuffix(w, " "+bad.guest) && (bad.guest != "trap" || w != "503 ") {
					t.Fatalf("%s: client %d got %q, not from the canary version", bad.version, c, w)
				}
			}
			// The split is sticky per client and plugin, whatever the version.
			if !slices.Contains(canaryClients, c) {
				t.Fatalf("%s: client %d of eu-west saw failures, but the canary share is %v", bad.version, c, canaryClients)
			}
			canary = append(canary, c)
		}
		if len(canary) == 0 {
			t.Fatalf("%s: no eu-west client saw the canary version fail", bad.version)
		}
		slices.Sort(canary)
		t.Logf("%s: failures only in eu-west, from %d of the canary clients: %v", bad.version, len(canary), canary)
		tl.reset()
	}

	// The audit stream holds each step, in order.
	audit, err := rollout.RecentAudit(ctx, stores, 200)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, a := range audit {
		if a.Plugin == "stamp" {
			steps = append(steps, a.Action+" "+a.Version)
		}
	}
	want := []string{"rollout.start v2", "wave.apply v2", "wave.applied v2", "wave.promote v2", "rollout.done v2",
		"rollout.start v3-500", "wave.apply v3-500", "wave.applied v3-500", "gate.fail v3-500", "rollout.rolled_back v3-500",
		"rollout.start v4-trap", "wave.apply v4-trap", "wave.applied v4-trap", "gate.fail v4-trap", "rollout.rolled_back v4-trap"}
	if !inOrder(steps, want) {
		t.Fatalf("audit steps:\n%s\nwant, in order, among them:\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("%d requests in all", sent.Load())
}

// TestFleetConfigOnlyCanary: a canary that changes only the config of the
// version a region runs shares its module, digest and all, with the
// stable side. The POP reports each side's health apart and the gate
// judges the canary on its own requests: a config that makes every one a
// 500 is stopped in its 20% canary wave, though its share of the region's
// requests (a fifth) would hold a 50% gate, and rolled back to the config
// before it.
func TestFleetConfigOnlyCanary(t *testing.T) {
	if testing.Short() {
		t.Skip("a POP under load")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	fleetPOPs, key := startFleet(t, ctx, stores, []popSpec{{"eu-west", "eu-west-1"}}, func(string) string { return cp.URL() })
	defer startController(t, ctx, stores, key.Public().(ed25519.PublicKey), nil)()
	_, _, stopLoad := startLoad(ctx, fleetPOPs)
	defer stopLoad()

	if _, err := registry.New(stores).Push(ctx, key, "stamp", "v2", wasmtest.Build(t, guests+"v2"), "test"); err != nil {
		t.Fatal(err)
	}
	ok, fail := json.RawMessage(`{"do":"ok"}`), json.RawMessage(`{"do":"fail500"}`)
	run := func(config json.RawMessage, waves string) *rollout.Rollout {
		t.Helper()
		id, err := rollout.Start(ctx, stores, rollout.Spec{Plugin: "stamp", Version: "v2", Config: config, Waves: waves,
			Gates: "error_rate<50%", Bake: 1500 * time.Millisecond, MinRequests: 20, Who: "test", Why: "config " + string(config)})
		if err != nil {
			t.Fatal(err)
		}
		var r *rollout.Rollout
		testutil.Eventually(t, hangGuard, "rollout "+id+" over", func() bool {
			if r, err = rollout.Get(ctx, stores, id); err != nil {
				t.Fatal(err)
			}
			return !r.Active()
		})
		return r
	}
	if r := run(ok, "eu-west"); r.State != rollout.StateDone {
		t.Fatalf("good config: %s: %s", r.State, r.Reason)
	}
	r := run(fail, "eu-west:20%,eu-west")
	if r.State != rollout.StateRolledBack || r.Wave != 0 || !strings.Contains(r.Reason, "error_rate 100% is not < 50%") {
		t.Fatalf("failing config: %s in wave %d (%s), want rolled back in its canary wave, every canary request an error", r.State, r.Wave, r.Reason)
	}
	testutil.Eventually(t, hangGuard, "the POP back on the good config", func() bool {
		got := fleetPOPs[0].node.Running()["stamp"]
		return got.Version == "v2" && got.Canary == "" && got.Config == manifest.ConfigHash(ok)
	})
	// The audit tells the canary wave's sides apart by config.
	audit, err := rollout.RecentAudit(ctx, stores, 200)
	if err != nil {
		t.Fatal(err)
	}
	want := "stamp@v2 with config " + manifest.ConfigHash(fail)[:8] + " on 20% of clients, with config " + manifest.ConfigHash(ok)[:8] + " on the rest"
	i := slices.IndexFunc(audit, func(a manifest.Audit) bool { return a.Rollout == r.ID && a.Action == "wave.apply" })
	if i < 0 || !strings.Contains(audit[i].Why, want) {
		t.Errorf("audit of the canary wave does not say %q", want)
	}
}

// auditTime returns when the controller wrote the first audit entry of
// action for version.
func auditTime(t *testing.T, ctx context.Context, stores *controlplane.Stores, version, action string) time.Time {
	t.Helper()
	audit, err := rollout.RecentAudit(ctx, stores, 200)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range audit {
		if a.Version == version && a.Action == action {
			return a.Time
		}
	}
	t.Fatalf("no audit entry %s for %s", action, version)
	return time.Time{}
}

// startLoad sends steady traffic to every POP from every client, bounded
// in time by stop (or ctx) and in rate by a pause between requests.
func startLoad(ctx context.Context, ps []*pop) (tl *tally, sent *atomic.Int64, stop func()) {
	tl, sent = newTally(), new(atomic.Int64)
	loadCtx, cancel := context.WithCancel(ctx)
	var load sync.WaitGroup
	for _, p := range ps {
		for c := range clients {
			load.Go(func() { client(loadCtx, p, c, tl, sent) })
		}
	}
	return tl, sent, func() { cancel(); load.Wait() }
}

// inOrder reports whether want is a subsequence of got.
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func (t *tally) reset() {
	fresh := newTally()
	t.mu.Lock()
	t.seen, t.first, t.answered = fresh.seen, fresh.first, fresh.answered
	t.mu.Unlock()
}

func waitRunning(t *testing.T, ps []*pop, version string) {
	t.Helper()
	testutil.Eventually(t, hangGuard, "every POP on "+version, func() bool {
		for _, p := range ps {
			if r := p.node.Running()["stamp"]; r.Version != version || r.Canary != "" {
				return false
			}
		}
		return true
	})
}

// client sends requests from its own loopback address until ctx ends.
func client(ctx context.Context, p *pop, c int, tl *tally, sent *atomic.Int64) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(c+1))}
	hc := &fasthttp.HostClient{Addr: p.addr, MaxConns: 1, Dial: func(addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: local, Timeout: 2 * time.Second}
		return d.Dial("tcp4", addr)
	}}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + p.addr + "/x")
	tick := time.NewTicker(clientPause)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		status, version := 0, "transport-error"
		if err := hc.DoTimeout(req, resp, 10*time.Second); err == nil {
			status, version = resp.StatusCode(), string(resp.Header.Peek("X-Stamp"))
		}
		if ctx.Err() != nil {
			return
		}
		sent.Add(1)
		tl.add(p, c, status, version)
	}
}

// startFleet starts a POP for each of specs, every one running v1 of the
// stamp plugin against one origin and trusting a new signing key, its
// agent dialing the control plane at url(its region), and waits until
// each has reported to stores: a rollout is planned against the POPs that
// report. It returns the POPs, and the key that signs the versions the
// test pushes.
func startFleet(t *testing.T, ctx context.Context, stores *controlplane.Stores, specs []popSpec, url func(region string) string) ([]*pop, ed25519.PrivateKey) {
	t.Helper()
	key, trust := signer(t)
	originAddr := origintest.Start(t, origintest.OK).Addr
	v1 := filepath.Join(t.TempDir(), "v1.wasm")
	if err := os.WriteFile(v1, wasmtest.Build(t, guests+"v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	var fleet []*pop
	for _, s := range specs {
		fleet = append(fleet, startPOP(t, ctx, url(s.region), trust, s.region, s.pop, originAddr, v1))
	}
	for _, p := range fleet {
		testutil.Eventually(t, hangGuard, "a status report from "+p.name, func() bool {
			_, err := stores.Status.Get(ctx, manifest.StatusKey(p.region, p.name))
			return err == nil
		})
	}
	return fleet, key
}

// startPOP starts a POP with pop.New and Run, the way `wedgectl up` and
// the edge command do: its agent dials the control plane at url (and keeps
// reconnecting, so a control plane that goes away is lost for real and
// found again when it returns), trusts the keys in the file trust, keeps
// its state in a directory of its own and reports every 200 ms. Its log is
// p.log, shown if the test fails.
func startPOP(t *testing.T, ctx context.Context, url, trust, region, name, originAddr, v1 string) *pop {
	t.Helper()
	dir := t.TempDir()
	cfg, err := edge.ParseConfig([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
pop: %s
region: %s
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: all, path: /, origin: app, chain: [{name: stamp, file: %q, version: v1}]}
fleet: {nats: %q, trust: [%q], control_keys: [%q], state_dir: state}
`, name, region, originAddr, origintest.Key.Text(), v1, url, trust, controlPub(t))), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, lb := servePOP(t, ctx, name, cfg, 200*time.Millisecond)
	return &pop{region: region, name: name, addr: p.Addr().String(), node: p.Node(), log: lb}
}

// servePOP makes a POP of cfg with pop.New and runs it until the test ends,
// its agent reporting every report (0: the default). Its log is the
// buffer returned, shown if the test fails.
func servePOP(t testing.TB, ctx context.Context, name string, cfg *edge.Config, report time.Duration) (*edgepop.POP, *testutil.SyncBuffer) {
	t.Helper()
	p, lb, _ := servePOPStop(t, ctx, name, cfg, report)
	return p, lb
}

// servePOPStop is servePOP with a stop func, which returns once the POP has
// stopped (a restart); the test's end stops it too.
func servePOPStop(t testing.TB, ctx context.Context, name string, cfg *edge.Config, report time.Duration) (_ *edgepop.POP, _ *testutil.SyncBuffer, stop func()) {
	t.Helper()
	// None of these tests is about overload: several POPs and their
	// clients flat out in one process under -race keep its CPU behind,
	// which a node rightly sheds (edge/overload.go has its own tests).
	cfg.Overload.Off = true
	lb := &testutil.SyncBuffer{}
	p, err := edgepop.New(ctx, cfg, edgepop.Options{Logger: slog.New(slog.NewTextHandler(lb, nil)),
		CompilationCache: wasmbuild.CompilationCacheDir(), Report: report})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: run: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, lb.String())
		}
	})
	t.Cleanup(stop)
	return p, lb, stop
}

// signer is a new signing key, with the file of its public key for the
// POPs' trust lists.
func signer(t testing.TB) (ed25519.PrivateKey, string) {
	t.Helper()
	priv, pub, err := registry.GenerateKey(t.TempDir(), "signer")
	if err != nil {
		t.Fatal(err)
	}
	key, err := registry.LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return key, pub
}
