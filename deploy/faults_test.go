package deploy_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	edgepop "github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestControlPlaneLostMidRollout stops the control plane (NATS, with its
// JetStream files on disk) while the first wave of a rollout bakes, with
// every POP, the controller and the test connected by URL. While it is
// down every POP serves on with no failed request; once it is back on the
// same port and directory the same controller, on the same stores, carries
// the rollout to done, every POP runs the new version, and the audit stream
// and the desired-state history hold every step exactly once, in order.
func TestControlPlaneLostMidRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("a fleet of four POPs under load, and a control plane restart")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dataDir := t.TempDir()
	var cpMu sync.Mutex
	cp, err := embedded.Start(embedded.Options{Dir: dataDir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the POPs and the controller stop.
	t.Cleanup(func() {
		cpMu.Lock()
		defer cpMu.Unlock()
		if cp != nil {
			cp.Shutdown()
		}
	})
	url := cp.URL()
	hostPort := strings.TrimPrefix(url, "nats://")

	// The controller's connection and stores live through the outage:
	// Dial reconnects forever, and the stores are opened once.
	ctlNC, err := controlplane.Dial(url, "controller", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctlNC.Close)
	ctlStores, err := controlplane.Ensure(ctx, ctlNC)
	if err != nil {
		t.Fatal(err)
	}
	testNC, err := controlplane.Dial(url, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testNC.Close)
	stores, err := controlplane.Open(ctx, testNC)
	if err != nil {
		t.Fatal(err)
	}

	fleetPOPs, key := startFleet(t, ctx, stores, pops, func(string) string { return url })

	ctlLog := &testutil.SyncBuffer{}
	defer startController(t, ctx, ctlStores, key.Public().(ed25519.PublicKey), slog.New(slog.NewTextHandler(ctlLog, nil)))()

	tl, sent, stopLoad := startLoad(ctx, fleetPOPs)
	defer stopLoad()

	if _, err := registry.New(stores).Push(ctx, key, "stamp", "v2", wasmtest.Build(t, guests+"v2"), "test"); err != nil {
		t.Fatal(err)
	}
	const bake = 2 * time.Second
	id, err := rollout.Start(ctx, stores, rollout.Spec{Plugin: "stamp", Version: "v2", Waves: "eu-west:10%,eu-west,*",
		Gates: gates, Bake: bake, MinRequests: 30, Who: "test", Why: "control plane lost mid-rollout"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, "the first wave baking", func() bool {
		r, err := rollout.Get(ctx, stores, id)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Active() || r.Wave > 0 {
			t.Fatalf("rollout %s at %s before the control plane went down", r.State, r.Progress())
		}
		return r.Phase == rollout.PhaseBaking
	})
	running := map[string]manifest.Running{}
	for _, p := range fleetPOPs {
		running[p.name] = p.node.Running()["stamp"]
	}
	if r := running["eu-west-1"]; r.Canary != "v2" || r.Share != 10 {
		t.Fatalf("eu-west-1 runs %+v in the first wave, want a 10%% canary of v2", r)
	}

	// Down, for longer than the bake (the controller would promote the
	// wave now if it could reach the control plane), and until every
	// client has been answered a few times by its POP since: the load
	// keeps running against the POPs for the whole outage.
	const outage = 3 * time.Second
	const answersDown = 5
	before := tl.answers()
	cpMu.Lock()
	cp.Shutdown()
	cp = nil
	cpMu.Unlock()
	down := time.Now()
	testutil.Eventually(t, hangGuard, fmt.Sprintf("%d answers to every client with the control plane down", answersDown), func() bool {
		if time.Since(down) < outage {
			return false
		}
		now := tl.answers()
		for _, p := range fleetPOPs {
			for c := range clients {
				if now[p.name][c]-before[p.name][c] < answersDown {
					return false
				}
			}
		}
		return true
	})
	during := tl.answers()
	for _, p := range fleetPOPs {
		n := 0
		for c := range clients {
			n += during[p.name][c] - before[p.name][c]
		}
		t.Logf("%s: %d requests answered while the control plane was down", p.name, n)
	}
	if f := tl.failures(); len(f) != 0 {
		t.Fatalf("requests failed while the control plane was down: %v", f)
	}
	for _, p := range fleetPOPs {
		if got := p.node.Running()["stamp"]; got != running[p.name] {
			t.Fatalf("%s changed what it runs while the control plane was down: %+v -> %+v", p.name, running[p.name], got)
		}
	}

	// Back on the same port and files.
	cpMu.Lock()
	cp, err = embedded.Start(embedded.Options{Dir: dataDir, Listen: hostPort})
	cpMu.Unlock()
	if err != nil {
		t.Fatalf("control plane restart on %s: %v", hostPort, err)
	}
	up := time.Now()
	t.Logf("control plane down for %s", up.Sub(down).Round(time.Millisecond))
	var r *rollout.Rollout
	testutil.Eventually(t, hangGuard, "the rollout done after the control plane returned", func() bool {
		got, err := rollout.Get(ctx, stores, id)
		if err != nil {
			return false // the test's own connection may still be reconnecting
		}
		r = got
		if !r.Active() && r.State != rollout.StateDone {
			t.Fatalf("rollout %s after the outage: %s", r.State, r.Reason)
		}
		return r.State == rollout.StateDone
	})
	done := time.Since(up)
	waitRunning(t, fleetPOPs, "v2")
	converged := time.Since(up)
	t.Logf("after the control plane returned: rollout done in %s, every POP on v2 in %s",
		done.Round(time.Millisecond), converged.Round(time.Millisecond))
	if f := tl.failures(); len(f) != 0 {
		t.Fatalf("requests failed during the rollout: %v", f)
	}

	// Every step once, in order.
	audit, err := rollout.RecentAudit(ctx, stores, 500)
	if err != nil {
		t.Fatal(err)
	}
	var steps, timeline []string
	for _, a := range audit {
		if a.Rollout != id {
			continue
		}
		steps = append(steps, strings.TrimSpace(a.Action+" "+a.Region))
		timeline = append(timeline, fmt.Sprintf("%+.3fs %s %s", a.Time.Sub(up).Seconds(), a.Action, a.Region))
	}
	t.Logf("audit, in seconds from the control plane's return:\n%s", strings.Join(timeline, "\n"))
	want := []string{"rollout.start",
		"wave.apply eu-west", "wave.applied eu-west", "wave.promote eu-west",
		"wave.apply eu-west", "wave.applied eu-west", "wave.promote eu-west",
		"wave.apply ap-south,us-east", "wave.applied ap-south,us-east", "wave.promote ap-south,us-east",
		"rollout.done"}
	if strings.Join(steps, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit of %s:\n%s\nwant exactly:\n%s", id, strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
	// The desired state of each region was written once per wave that
	// reached it: no wave applied twice.
	waveOf := regexp.MustCompile(`wave \d+/\d+`)
	for region, waves := range map[string][]string{"eu-west": {"wave 1/3", "wave 2/3"}, "us-east": {"wave 3/3"}, "ap-south": {"wave 3/3"}} {
		hist, err := stores.Desired.History(ctx, manifest.RegionKey(region))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range hist {
			var d manifest.Desired
			if json.Unmarshal(e.Value(), &d) == nil && strings.Contains(d.Why, id) {
				got = append(got, waveOf.FindString(d.Why))
			}
		}
		if strings.Join(got, ",") != strings.Join(waves, ",") {
			t.Fatalf("desired state of %s written by the rollout for %v, want %v", region, got, waves)
		}
	}
	// On the POPs: each state applied once (a reconnect replays the
	// desired state, which must not count as a new apply), none refused.
	for _, p := range fleetPOPs {
		want := 1.0
		if p.region == "eu-west" {
			want = 2
		}
		if ok, nack := counter(t, p.node.Registry(), "wedge_fleet_applies_total", "result", "ok"),
			counter(t, p.node.Registry(), "wedge_fleet_applies_total", "result", "nack"); ok != want || nack != 0 {
			t.Fatalf("%s: wedge_fleet_applies_total ok %v nack %v, want %v and 0", p.name, ok, nack, want)
		}
	}
	// The outage is in each POP's log once the link is back. Nothing logs
	// the lost link when it goes: the controller logs a tick only when a
	// request made while the link was down timed out (5 s), so a shorter
	// outage may leave no line of its own; what it logged is shown.
	if warn := grepLines(ctlLog.String(), "time="); warn != "" {
		t.Logf("controller log:\n%s", warn)
	}
	for _, p := range fleetPOPs {
		testutil.Eventually(t, hangGuard, p.name+" logging the lost link", func() bool {
			return strings.Contains(p.log.String(), "reconnected to the control plane")
		})
	}
	t.Logf("%d requests in all, none failed", sent.Load())
}

// TestEdgeRestartUnderLoad runs one POP through edge/pop.Main, the POP
// process, under steady keep-alive load, with requests held at the origin
// when it is told to stop; then starts it again on the same port and config
// with the control plane gone.
//
// The drain: a request the node has read is answered, so the requests held
// at the origin complete with 200 after the listener has closed. The 503
// "shutting down" is only for a request that arrives on a connection still
// open when the 30 s drain budget has run out, which this test never
// reaches: so every answer is a 200, exactly. Clients that were idle on a keep-alive connection when it closed
// get no answer (not acknowledged, so retryable); such failures are allowed
// only for requests that started between the stop and the new process
// serving. The restarted process serves the version the control plane last
// set (v2, not the config file's v1) from its state on disk, so no client
// ever sees v1 again once it has seen v2, and its metrics say so.
func TestEdgeRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a POP restarted under load")
	}
	ctx := context.Background()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})

	dir := t.TempDir()
	key, pubPath := signer(t)
	if err := os.WriteFile(filepath.Join(dir, "v1.wasm"), wasmtest.Build(t, guests+"v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	org := startHoldingOrigin(t)
	addr := freePort(t)
	cfgFile := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`listen: %s
admin: {listen: "127.0.0.1:0"}
pop: edge-1
region: eu-west
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: all, path: /, origin: app, chain: [{name: stamp, file: v1.wasm, version: v1}]}
fleet:
  nats: %s
  trust: [%q]
  control_keys: [%q]
  state_dir: state
`, addr, org.addr, origintest.Key.Text(), cp.URL(), pubPath, controlPub(t))), 0o644); err != nil {
		t.Fatal(err)
	}

	first := runPOP(t, cfgFile)
	// Steady load from a few keep-alive clients.
	const loaders = 4
	rec := &restartLog{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	for c := range loaders {
		load.Add(1)
		go func() { defer load.Done(); keepAliveClient(loadCtx, addr, c, rec) }()
	}
	defer func() { stopLoad(); load.Wait() }()

	// The control plane sets v2, which the config file does not name.
	art, err := registry.New(stores).Push(ctx, key, "stamp", "v2", wasmtest.Build(t, guests+"v2"), "test")
	if err != nil {
		t.Fatal(err)
	}
	rev := putDesired(t, ctx, stores, manifest.RegionKey("eu-west"), manifest.Desired{Plugins: map[string]manifest.Release{"stamp": {Artifact: *art}}})
	testutil.Eventually(t, hangGuard, "every client answered by v2", func() bool { return rec.allSaw(loaders, "v2") })
	m := first.metrics(t)
	for _, want := range []string{`wedge_fleet_applies_total{result="ok"} 1`, fmt.Sprintf("wedge_fleet_revision %d", rev),
		`wedge_edge_reloads_total{result="ok"} 1`} {
		if !strings.Contains(m, want) {
			t.Fatalf("the first process's /metrics lacks %q:\n%s", want, grepLines(m, "wedge_fleet", "wedge_edge_reloads"))
		}
	}

	// Requests in flight when the stop comes: held at the origin.
	const held = 3
	heldDone := make(chan string, held)
	for range held {
		go func() {
			status, stamp, err := get(addr, "/slow", nil)
			heldDone <- fmt.Sprintf("%d %s %v", status, stamp, err)
		}()
	}
	for i := range held {
		select {
		case <-org.entered:
		case <-time.After(hangGuard):
			t.Fatalf("only %d of %d held requests reached the origin", i, held)
		}
	}
	stopped := time.Now()
	rec.mark("stop", stopped)
	first.cancel()
	// Draining: the listener closes while the held requests run.
	testutil.Eventually(t, hangGuard, "the listener closed", func() bool {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case got := <-heldDone:
		t.Fatalf("a held request ended before the origin answered: %s", got)
	case <-first.done:
		t.Fatalf("the POP stopped before its requests in flight were done: %v", first.err)
	default:
	}
	close(org.release)
	for range held {
		if got := <-heldDone; got != "200 v2 <nil>" {
			t.Fatalf("a request in flight at the stop got %q, want \"200 v2 <nil>\"", got)
		}
	}
	if err := first.stop(t, hangGuard); err != nil {
		t.Fatalf("the first process: %v", err)
	}
	gone := time.Now()
	drained := gone.Sub(stopped)

	// Restarted with the control plane gone: from its state on disk.
	cp.Shutdown()
	restart := time.Now()
	second := runPOP(t, cfgFile)
	serving := time.Now()
	rec.mark("serving", serving)
	if !strings.Contains(second.log.String(), "serving the last-known-good state from disk") {
		t.Fatalf("the restarted process did not restore from disk:\n%s", second.log.String())
	}
	// Whatever a client got after the first process had gone came from
	// the new one. Each client gets there on its own: a keep-alive
	// connection to the old process fails at once (never waits out its
	// request timeout, which rec.check would see as a timeout), and the
	// next request dials the new one.
	testutil.Eventually(t, hangGuard, "every client served by the new process", func() bool { return rec.allServedAfter(loaders, gone, 20) })
	reconnected := rec.reconnectTimes(loaders, serving)
	t.Logf("drain %s; restart (pop.Main to serving) %s; each client's first answer from the new process %v after its serving line",
		drained.Round(time.Millisecond), serving.Sub(restart).Round(time.Millisecond), reconnected)
	m = second.metrics(t)
	for _, want := range []string{`wedge_fleet_applies_total{result="disk"} 1`, fmt.Sprintf("wedge_fleet_revision %d", rev)} {
		if !strings.Contains(m, want) {
			t.Fatalf("the restarted process's /metrics lacks %q:\n%s", want, grepLines(m, "wedge_fleet", "wedge_edge_reloads"))
		}
	}
	// Its agent cannot reach the control plane, and says so.
	testutil.Eventually(t, hangGuard, "the lost control plane in the log", func() bool {
		return strings.Contains(second.log.String(), "control plane unreachable")
	})
	unreachable := time.Since(serving)
	stopLoad()
	load.Wait()
	rec.check(t, loaders)
	if err := second.stop(t, hangGuard); err != nil {
		t.Fatalf("the restarted process: %v", err)
	}
	t.Logf("the restarted process logged the unreachable control plane %s after serving", unreachable.Round(time.Millisecond))
}

// counter reads one labelled counter off a registry.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// holdingOrigin answers 200 at once, except /slow, which it holds until
// release is closed: requests in flight for as long as the test wants.
type holdingOrigin struct {
	addr    string
	entered chan struct{}
	release chan struct{}
}

func startHoldingOrigin(t *testing.T) *holdingOrigin {
	t.Helper()
	o := &holdingOrigin{entered: make(chan struct{}, 16), release: make(chan struct{})}
	o.addr = origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		if string(req.Path) == "/slow" {
			o.entered <- struct{}{}
			select {
			case <-o.release:
			case <-time.After(hangGuard): // a failed test must not hang
			}
		}
		resp.Status = 200
	})).Addr
	return o
}

// freePort returns a loopback address no one listens on just now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// popProcess is one run of pop.Main.
type popProcess struct {
	admin  string
	log    *testutil.SyncBuffer
	done   chan struct{} // closed when Run has returned, with err set
	err    error
	cancel func()
}

// stop cancels the run and waits (bounded) for Run's result.
func (p *popProcess) stop(t *testing.T, limit time.Duration) error {
	t.Helper()
	p.cancel()
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		t.Fatalf("pop.Main did not return within %s of its stop", limit)
		return nil
	}
}

var servingLine = regexp.MustCompile(`edge: serving" listen=(\S+) tls=off admin=(\S+)`)

// runPOP starts pop.Main on the config file and waits until it serves.
func runPOP(t *testing.T, cfgFile string) *popProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &popProcess{log: &testutil.SyncBuffer{}, done: make(chan struct{}), cancel: cancel}
	go func() { p.err = edgepop.Main(ctx, []string{"-config", cfgFile}, p.log); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(hangGuard):
			t.Errorf("pop.Main did not return within %s of the end of the test", hangGuard)
		}
	})
	var m []string
	for deadline := time.Now().Add(hangGuard); m == nil; m = servingLine.FindStringSubmatch(p.log.String()) {
		select {
		case <-p.done:
			t.Fatalf("pop.Main: %v\n%s", p.err, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no serving line:\n%s", p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.admin = m[2]
	return p
}

func (p *popProcess) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// get sends one request on a connection of its own.
func get(addr, path string, hc *fasthttp.HostClient) (int, string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + path)
	var err error
	if hc != nil {
		err = hc.DoTimeout(req, resp, 10*time.Second)
	} else {
		err = fasthttp.DoTimeout(req, resp, 10*time.Second)
	}
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode(), string(resp.Header.Peek("X-Stamp")), nil
}

// outcome is one request of a keep-alive client.
type outcome struct {
	client     int
	start, end time.Time
	status     int
	stamp      string
	err        error
}

// restartLog records every request of the keep-alive clients, and the
// moments the test stopped the POP and the new process served.
type restartLog struct {
	mu    sync.Mutex
	all   []outcome
	marks map[string]time.Time
}

func (r *restartLog) add(o outcome) {
	r.mu.Lock()
	r.all = append(r.all, o)
	r.mu.Unlock()
}

func (r *restartLog) mark(what string, at time.Time) {
	r.mu.Lock()
	if r.marks == nil {
		r.marks = map[string]time.Time{}
	}
	r.marks[what] = at
	r.mu.Unlock()
}

// allSaw reports whether each client has had an answer from version.
func (r *restartLog) allSaw(clients int, version string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[int]bool{}
	for _, o := range r.all {
		if o.stamp == version {
			seen[o.client] = true
		}
	}
	return len(seen) == clients
}

// allServedAfter reports whether each client has had n answers to
// requests it started after t.
func (r *restartLog) allServedAfter(clients int, t time.Time, n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := map[int]int{}
	for _, o := range r.all {
		if o.status != 0 && o.start.After(t) {
			got[o.client]++
		}
	}
	for c := range clients {
		if got[c] < n {
			return false
		}
	}
	return true
}

// reconnectTimes is, per client, how long after t its first answer to a
// request started after t came.
func (r *restartLog) reconnectTimes(clients int, t time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, clients)
	for _, o := range r.all {
		if o.status != 0 && o.start.After(t) && out[o.client] == 0 {
			out[o.client] = o.end.Sub(t).Round(time.Millisecond)
		}
	}
	return out
}

// check asserts what the clients got: only 200s; failures only for
// requests started between the stop and the new process serving, and none
// that waited out its timeout (a client stuck on a connection of the old
// process); and no client back on v1 once it had v2.
func (r *restartLog) check(t *testing.T, clients int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	stop, serving := r.marks["stop"], r.marks["serving"]
	last := map[int]string{}
	var ok, failed int
	for _, o := range r.all {
		switch {
		case o.status == 0:
			failed++
			if timedOut(o.err) {
				t.Fatalf("client %d: a request started %s after the stop waited out its timeout: %v",
					o.client, o.start.Sub(stop).Round(time.Millisecond), o.err)
			}
			// One that started just before the stop may still meet it: the
			// old process closes an idle keep-alive connection as the
			// request goes out on it, and the retry's dial is refused.
			if o.end.Before(stop) || o.start.After(serving) {
				t.Fatalf("client %d: a request from %s to %s after the stop failed (%s); failures are allowed only from the stop to the new process serving (%s after it)",
					o.client, o.start.Sub(stop).Round(time.Millisecond), o.end.Sub(stop).Round(time.Millisecond), o.err, serving.Sub(stop).Round(time.Millisecond))
			}
		case o.status != 200:
			t.Fatalf("client %d: status %d (stamp %q) %s after the stop; every answer must be a 200",
				o.client, o.status, o.stamp, o.start.Sub(stop).Round(time.Millisecond))
		default:
			ok++
			if last[o.client] == "v2" && o.stamp != "v2" {
				t.Fatalf("client %d: answered by %q after v2, %s after the stop", o.client, o.stamp, o.start.Sub(stop).Round(time.Millisecond))
			}
			if o.start.After(stop) && o.stamp != "v2" {
				t.Fatalf("client %d: answered by %q after the stop, want v2", o.client, o.stamp)
			}
			last[o.client] = o.stamp
		}
	}
	for c := range clients {
		if last[c] != "v2" {
			t.Fatalf("client %d last answered by %q", c, last[c])
		}
	}
	t.Logf("keep-alive clients: %d answers, all 200; %d requests without an answer, all between the stop and the new process serving", ok, failed)
}

// timedOut reports whether err is a request or dial that ran into its
// timeout.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout()
}

// keepAliveClient sends requests over one keep-alive connection (a new
// one when it breaks) until ctx ends.
func keepAliveClient(ctx context.Context, addr string, c int, rec *restartLog) {
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1, Dial: func(addr string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp4", addr)
	}}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		o := outcome{client: c, start: time.Now()}
		o.status, o.stamp, o.err = get(addr, "/x", hc)
		o.end = time.Now()
		if ctx.Err() != nil {
			return
		}
		rec.add(o)
	}
}
