package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
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
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// tierReport is the tier POPs' report interval: a POP silent for 3 of them
// leaves its peers' views.
const tierReport = 200 * time.Millisecond

// TestRegionalTier runs one region of three POPs, each with the cache
// plugin on a route with `tier: region`, a real control plane for their
// membership, and one counting origin. 1,000 keys requested once at each
// POP reach the origin at most once each (each POP alone would fetch every
// key: 3,000). Then one POP is killed while the other two take load: no
// request fails, before or after they see it gone (the detection time is
// logged), and the keys it owned, asked for at both survivors afterwards,
// reach the origin once each.
func TestRegionalTier(t *testing.T) {
	if testing.Short() {
		t.Skip("a region of three POPs with a control plane")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startTierFleet(t, ctx, "region")
	ps := f.pops

	// 1,000 keys at each POP, the three streams at once, each starting a
	// third of the way further into the keys, 3 requests at a time each.
	const keys = 1000
	var mu sync.Mutex
	mix := map[string]int{}
	var example string
	var wg sync.WaitGroup
	for i, p := range ps {
		var next atomic.Int64
		for range 3 {
			wg.Go(func() {
				for n := next.Add(1) - 1; n < keys; n = next.Add(1) - 1 {
					path := fmt.Sprintf("/k/%d", (int(n)+i*keys/3)%keys)
					cs, err := p.get(path)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					mix[tierAnswer(cs)]++
					if example == "" && strings.HasPrefix(cs, "wedge-tier; hit") {
						example = cs
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	fetched := f.origin.count()
	t.Logf("%d distinct keys requested once at each of %d POPs: the origin saw %d requests; answers: %v",
		keys, len(ps), fetched, mix)
	if fetched > keys {
		t.Errorf("the origin saw %d requests for %d keys, want at most %d", fetched, keys, keys)
	}
	// The Cache-Status of a key another POP owned and had cached names
	// the owner's cache as the tier, before the asker's own.
	if example == "" || !strings.Contains(example, ", wedge; fwd=uri-miss") {
		t.Errorf("no answer from an owner's cache through the tier (Cache-Status %q), want e.g. \"wedge-tier; hit, wedge; fwd=uri-miss; stored\"", example)
	} else {
		t.Logf("Cache-Status of a tier hit: %s", example)
	}

	// Keys the victim owns: fresh keys asked for at the victim, which
	// names no tier in its Cache-Status for those it fetched itself. They
	// are cached there only.
	victim, survivors := ps[2], ps[:2]
	var owned []string
	for n := range 150 {
		path := fmt.Sprintf("/dead/%d", n)
		cs, err := victim.get(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(cs, "-tier") {
			owned = append(owned, path)
		}
	}
	if len(owned) == 0 {
		t.Fatalf("%s owns none of 150 keys", victim.name)
	}

	// Load on the survivors, two clients each, a fresh key each time so
	// that every request asks its owner (the victim too, until it is seen
	// gone), bounded in count and time. The victim is killed under it;
	// the load goes on until both survivors' views have lost the victim
	// and their tiers have stopped asking it: quiet requests in a row
	// without falling back to the origin (a third of fresh keys were the
	// victim's, so while a tier still counts it a member, 60 in a row miss
	// it with a chance of (2/3)^60, about 3e-11).
	const (
		quiet   = 60
		maxLoad = 20000
		// loadPause paces each of the 4 clients: at most 2,000 requests
		// a second, so that maxLoad is 10 s of load at least.
		loadPause = 2 * time.Millisecond
	)
	var next, failed atomic.Int64
	var answered [2]atomic.Int64
	var stop atomic.Bool
	loadCtx, stopLoad := context.WithTimeout(ctx, hangGuard)
	defer stopLoad()
	for i, p := range survivors {
		for range 2 {
			wg.Go(func() {
				tick := time.NewTicker(loadPause)
				defer tick.Stop()
				for ; !stop.Load() && loadCtx.Err() == nil; <-tick.C {
					n := next.Add(1)
					if n > maxLoad {
						return
					}
					if _, err := p.get(fmt.Sprintf("/load/%d", n)); err != nil && failed.Add(1) <= 5 {
						t.Errorf("under load: %v", err)
					}
					answered[i].Add(1)
				}
			})
		}
	}
	defer func() { stop.Store(true); wg.Wait() }()
	sent := func() int64 { return answered[0].Load() + answered[1].Load() }
	testutil.Eventually(t, hangGuard, "load under way", func() bool { return sent() >= 50 })
	var fellBack [2]float64
	for i, p := range survivors {
		fellBack[i] = p.fallbacks(t)
	}
	killed, atKill := time.Now(), sent()
	victim.kill()
	loadGoes := func() {
		if next.Load() > maxLoad || loadCtx.Err() != nil {
			t.Fatalf("the load stopped (%d requests) before the survivors were done with %s", sent(), victim.name)
		}
	}
	// Detection: both survivors' views, as their status reports show
	// them, without the victim; then their tiers quiet.
	var detection, lastFallback [2]time.Duration
	testutil.Eventually(t, hangGuard, "the survivors seeing "+victim.name+" gone", func() bool {
		loadGoes()
		for i, p := range survivors {
			if detection[i] == 0 && !slices.Contains(f.view(p), victim.name) {
				detection[i] = time.Since(killed)
			}
		}
		return detection[0] != 0 && detection[1] != 0
	})
	atDetection := sent()
	var quietFrom [2]int64
	testutil.Eventually(t, hangGuard, "the survivors' tiers no longer asking "+victim.name, func() bool {
		loadGoes()
		done := true
		for i, p := range survivors {
			fb, n := p.fallbacks(t), answered[i].Load()
			if fb != fellBack[i] {
				fellBack[i], quietFrom[i], lastFallback[i] = fb, n, time.Since(killed)
			}
			done = done && n-quietFrom[i] >= quiet
		}
		return done
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("%s killed under load; out of the views %s and %s report (every %v) after %v and %v; "+
		"their tiers' last fallback to the origin %v and %v after the kill; "+
		"%d requests at the survivors, %d between the kill and detection, %d after; %d failed",
		victim.name, survivors[0].name, survivors[1].name, tierReport,
		detection[0].Round(time.Millisecond), detection[1].Round(time.Millisecond),
		lastFallback[0].Round(time.Millisecond), lastFallback[1].Round(time.Millisecond),
		sent(), atDetection-atKill, sent()-atDetection, failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed at the survivors", failed.Load())
	}

	// The victim's keys, asked for at both survivors: its share moved to
	// one of them, which fetches each once.
	for _, path := range owned {
		for _, p := range survivors {
			if _, err := p.get(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	var again []string
	for _, path := range owned {
		if n := f.origin.fetches(path); n != 2 {
			again = append(again, fmt.Sprintf("%s %d times", path, n))
		}
	}
	if len(again) > 0 {
		t.Fatalf("%d of %d keys %s owned, fetched once by it, then asked for at both survivors, were fetched other than twice in all: %s",
			len(again), len(owned), victim.name, strings.Join(again[:min(len(again), 5)], "; "))
	}
	t.Logf("%d keys %s owned, asked for at both survivors after detection: fetched once each", len(owned), victim.name)
}

// tierAnswer sorts a response by its Cache-Status: which cache answered.
func tierAnswer(cs string) string {
	switch {
	case strings.HasPrefix(cs, "wedge; hit"):
		return "hit"
	case strings.HasPrefix(cs, "wedge-tier; hit"):
		return "tier-hit"
	case strings.HasPrefix(cs, "wedge-tier;"):
		return "tier-miss"
	default:
		return "origin"
	}
}

// tierHost is the Host of the tier tests' requests, so that every POP
// keys an object alike.
const tierHost = "tier.test"

// tierFleet is a region of three POPs with the cache plugin in front of
// one counting origin, sharing one tier key.
type tierFleet struct {
	pops   []*tierPOP
	origin *countingOrigin
	stores *controlplane.Stores
}

// startTierFleet starts a control plane, a counting origin and three POPs
// of eu-west whose route has tier (region or off), and waits until each
// POP sees all three with their tier addresses.
func startTierFleet(t testing.TB, ctx context.Context, tier string) *tierFleet {
	t.Helper()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	_, trust := signer(t)
	f := &tierFleet{origin: startCountingOrigin(t), stores: stores}
	cacheWasm := edgetest.ModuleFile(t, "../plugins/cache")
	// A tier key as `wedgectl origin keygen` makes one: every POP of the
	// fleet signs and checks the asks with it.
	key := wire.Key{ID: 1, Secret: make([]byte, 32)}
	rand.Read(key.Secret)
	for n := range 3 {
		f.pops = append(f.pops, startTierPOP(t, ctx, cp.URL(), trust, fmt.Sprintf("eu-west-%d", n+1),
			f.origin.addr, cacheWasm, key.Text(), tier))
	}
	names := make([]string, len(f.pops))
	for i, p := range f.pops {
		names[i] = p.name
	}
	for _, p := range f.pops {
		testutil.Eventually(t, hangGuard, p.name+" seeing the region", func() bool {
			return slices.Equal(f.view(p), names)
		})
	}
	return f
}

// tierPOP is a POP of a tier fleet that the test can kill.
type tierPOP struct {
	name string
	node *edge.Node
	hc   *fasthttp.HostClient
	kill context.CancelFunc
}

func startTierPOP(t testing.TB, ctx context.Context, natsURL, trust, name, originAddr, cacheWasm, key, tier string) *tierPOP {
	t.Helper()
	cfg, err := edge.ParseConfig(fmt.Appendf(nil, `
listen: 127.0.0.1:0
pop: %s
region: eu-west
tier: {listen: 127.0.0.1:0, key: %q}
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: all, path: /, origin: app, tier: %s, chain: [{name: cache, file: %q}]}
fleet: {nats: %q, trust: [%q], control_keys: [%q], state_dir: state}
`, name, key, originAddr, origintest.Key.Text(), tier, cacheWasm, natsURL, trust, controlPub(t)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(ctx)
	p, _ := servePOP(t, ctx, name, cfg, tierReport)
	return &tierPOP{name: name, node: p.Node(), hc: &fasthttp.HostClient{Addr: p.Addr().String()}, kill: kill}
}

// get GETs path and returns the Cache-Status field lines, joined; an
// answer other than a 200 with the origin's body for path is an error.
func (p *tierPOP) get(path string) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + tierHost + path)
	if err := p.hc.DoTimeout(req, resp, hangGuard); err != nil {
		return "", fmt.Errorf("%s: GET %s: %w", p.name, path, err)
	}
	if resp.StatusCode() != 200 || string(resp.Body()) != tierBody(path) {
		return "", fmt.Errorf("%s: GET %s: %d %q", p.name, path, resp.StatusCode(), resp.Body())
	}
	var lines []string
	for _, v := range resp.Header.PeekAll("Cache-Status") {
		lines = append(lines, string(v))
	}
	return strings.Join(lines, ", "), nil
}

// view is the POPs of its region p sees, by name, as its last status
// report says, once that report has p's tier address in it too.
func (f *tierFleet) view(p *tierPOP) []string {
	e, err := f.stores.Status.Get(context.Background(), manifest.StatusKey("eu-west", p.name))
	if err != nil {
		return nil
	}
	var st manifest.Status
	if json.Unmarshal(e.Value(), &st) != nil || st.Peer == "" {
		return nil
	}
	return st.Members
}

// fallbacks is how many of p's tiered misses fell back to the origin
// because asking the owner failed.
func (p *tierPOP) fallbacks(t testing.TB) float64 {
	return testutil.MetricSum(t, p.node.Registry(), "wedge_tier_requests_total", map[string]string{"result": "fallback"})
}

func tierBody(path string) string { return "body of " + path }

// countingOrigin answers every request with a small body cacheable for
// 10 minutes, and counts the fetches of each path.
type countingOrigin struct {
	addr  string
	total atomic.Int64
	mu    sync.Mutex
	paths map[string]int
}

func startCountingOrigin(t testing.TB) *countingOrigin {
	o := &countingOrigin{paths: map[string]int{}}
	o.addr = origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		path := string(req.Path)
		o.total.Add(1)
		o.mu.Lock()
		o.paths[path]++
		o.mu.Unlock()
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("max-age=600"))
		resp.Body = []byte(tierBody(path))
	})).Addr
	return o
}

// count is how many requests the origin answered.
func (o *countingOrigin) count() int64 { return o.total.Load() }

// fetches is how many times the origin answered path.
func (o *countingOrigin) fetches(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.paths[path]
}
