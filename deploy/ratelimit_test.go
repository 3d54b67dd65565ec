package deploy_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// limitCount per limitPeriod is the global limit of TestGlobalRateLimit:
// 100 per 10 s, the proportion of 600 per minute, in bursts of 10, or with
// WEDGE_LIMIT_MINUTE=1 in the environment 600 per minute over a whole
// minute (70 s more of load, so not in every run). (With a burst of 1 a
// GCRA loses the time between a unit coming back and the next request
// taking it: requests arriving every 33 ms would get ~14% less than the
// limit, at one POP as at three.)
var (
	limitCount  = 100
	limitPeriod = 10 * time.Second
	limitBurst  = 10
)

func init() {
	if os.Getenv("WEDGE_LIMIT_MINUTE") != "" {
		limitCount, limitPeriod = 600, time.Minute
	}
}

// TestGlobalRateLimit spreads one identity's requests over 3 POPs in 2
// regions, each sent 3 times the limit's rate, against a global limit;
// then stops the control plane and checks each POP keeps enforcing its
// third. Admissions are checked against what the limit allows over the
// time the load actually ran, so a slow machine changes the figures but
// not the verdict.
func TestGlobalRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s of paced load over 3 POPs")
	}
	ctx := context.Background()
	cp, _ := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	_, trust := signer(t)
	module := edgetest.ModuleFile(t, "../plugins/ratelimit")
	originAddr := origintest.Start(t, origintest.OK).Addr
	ps := []*pop{
		startLimitedPOP(t, ctx, cp.URL(), trust, "eu-west", "eu-west-1", originAddr, module),
		startLimitedPOP(t, ctx, cp.URL(), trust, "eu-west", "eu-west-2", originAddr, module),
		startLimitedPOP(t, ctx, cp.URL(), trust, "us-east", "us-east-1", originAddr, module),
	}
	for _, p := range ps {
		testutil.Eventually(t, 10*time.Second, p.name+" hears both peers", func() bool {
			return wasmtest.Metric(t, p.node.Registry(), "wedge_ratelimit_peers", map[string]string{"scope": "global"}) == 2
		})
	}

	// Convergence: what one POP spends, another knows of within this time
	// (a policy with a burst of 5 lets the first POP spend it at once).
	start := time.Now()
	for range 5 {
		if st := statusOf(t, ps[0], "X-Burst", "converge"); st != 200 {
			t.Fatalf("POP 1, first 5 requests: %d", st)
		}
	}
	spent := time.Now()
	// A request to POP 3 would spend its own burst and be refused with no
	// exchange at all: peek at its limiter instead (a take of cost 0, the
	// plugin's key for X-Burst: converge) until the 5 units are gone there.
	key := []byte("@global:ratelimit\x00burst\x00kconverge")
	testutil.Eventually(t, 5*time.Second, "POP 3 knows what POP 1 spent", func() bool {
		_, r := ps[2].node.Limits().Take(key, 5, time.Minute, 5, 0)
		return r.Remaining == 0
	})
	t.Logf("converged: POP 3's allowance spent %v after POP 1's last take (%v for the 5 takes)", time.Since(spent).Round(time.Millisecond), spent.Sub(start).Round(time.Millisecond))

	admitted, elapsed := load(t, ps, "alice", limitPeriod)
	want := float64(limitBurst) + float64(limitCount)*elapsed.Seconds()/limitPeriod.Seconds()
	total := admitted[0] + admitted[1] + admitted[2]
	t.Logf("shared: admitted %d (per POP %v) in %v; the limit allows %.1f (%+.1f%%)", total, admitted, elapsed.Round(time.Millisecond), want, 100*(float64(total)-want)/want)
	if d := float64(total) - want; d > 0.05*want || d < -0.05*want {
		t.Errorf("admitted %d, want %.1f +/- 5%%", total, want)
	}

	cut := time.Now()
	cp.Shutdown()
	for _, p := range ps {
		testutil.Eventually(t, 10*time.Second, p.name+" enforces its share", func() bool {
			return wasmtest.Metric(t, p.node.Registry(), "wedge_ratelimit_share", map[string]string{"scope": "global"}) == 3
		})
	}
	t.Logf("control plane stopped: every POP enforced its share within %v", time.Since(cut).Round(time.Millisecond))
	admitted, elapsed = load(t, ps, "alice", limitPeriod/2)
	share := float64(limitCount) / 3 * elapsed.Seconds() / limitPeriod.Seconds()
	t.Logf("cut off: per POP %v in %v; a third of the limit is %.1f", admitted, elapsed.Round(time.Millisecond), share)
	for i, n := range admitted {
		// Each POP's share, give or take the burst and what was still in
		// flight at the cut: far from the 3x it was sent.
		if d := float64(n) - share; d > 0.25*share+2 || d < -0.25*share-2 {
			t.Errorf("%s admitted %d cut off, want about %.1f", ps[i].name, n, share)
		}
	}
}

// load sends id's requests to every POP at 3 times the limit's rate
// together, for d, and returns how many each admitted and how long it ran.
func load(t *testing.T, ps []*pop, id string, d time.Duration) (admitted []int, elapsed time.Duration) {
	t.Helper()
	admitted = make([]int, len(ps))
	every := limitPeriod / time.Duration(limitCount) // each POP alone gets the whole rate
	n := int(d / every)
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for range n {
				<-tick.C
				switch st := statusOf(t, p, "X-Id", id); st {
				case 200:
					admitted[i]++
				case 429:
				default:
					t.Errorf("%s: status %d", p.name, st)
					return
				}
			}
		})
	}
	wg.Wait()
	return admitted, time.Since(start)
}

// statusOf sends one request with the field name: value to p and returns
// the status.
func statusOf(t *testing.T, p *pop, name, value string) int {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + p.addr + "/")
	req.Header.Set(name, value)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Errorf("%s: %v", p.name, err)
		return 0
	}
	return resp.StatusCode()
}

// startLimitedPOP starts a POP as startPOP does, running the ratelimit
// plugin with global policies on X-Id (the test's limit) and X-Burst
// (five at once, to measure convergence).
func startLimitedPOP(t *testing.T, ctx context.Context, url, trust, region, name, originAddr, module string) *pop {
	t.Helper()
	dir := t.TempDir()
	cfg, err := edge.ParseConfig([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
pop: %s
region: %s
origins:
  app: {addr: %q, key: %q}
routes:
  - name: all
    path: /
    origin: app
    chain:
      - {file: %q, config: {headers: false, policies: [{name: perid, key: "header:X-Id", limit: %d, period: %q, burst: %d, scope: global, missing: skip},
        {name: burst, key: "header:X-Burst", limit: 5, period: 1m, scope: global, missing: skip}]}}
fleet: {nats: %q, trust: [%q], control_keys: [%q], state_dir: state}
`, name, region, originAddr, origintest.Key.Text(), module, limitCount, limitPeriod, limitBurst, url, trust, controlPub(t))), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, lb := servePOP(t, ctx, name, cfg, 0)
	return &pop{region: region, name: name, addr: p.Addr().String(), node: p.Node(), log: lb}
}
