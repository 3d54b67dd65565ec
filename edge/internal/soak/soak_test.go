package soak

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm"
)

// soakDuration is WEDGE_SOAK, default 45 s: long enough for a warm-up and
// a run in which a leak of one object or goroutine per request shows (a
// leak of 4 KiB per origin request failed the heap bound within 15 s), and
// short enough for every run of the whole suite. Slower leaks need a
// longer soak: WEDGE_SOAK=10m.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("WEDGE_SOAK")
	if s == "" {
		return 45 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 3*time.Second {
		t.Fatalf("WEDGE_SOAK=%q: want a Go duration of at least 3s", s)
	}
	return d
}

// Soak load: closed loop, each client waits clientPause between requests,
// so the offered load is a steady share of what the node can do whatever
// the machine (or -race) makes of it.
const (
	soakClients = 8
	clientPause = 5 * time.Millisecond
	soakCache   = 8 << 20 // cache_bytes: far above the working set below
	hotKeys     = 16      // /c/hot/N, fresh for an hour: hits after the first
	coldKeys    = 16      // /c/cold/N, fresh for a second: misses again and again
	limitedRate = 5       // /c/limited allows 5/s for everyone together: 429s
)

// soakOrigin is the application: bodies of about 1 KiB, cacheable as the
// path says.
func soakOrigin(hits *atomic.Int64) func(context.Context, *wire.Request, *wire.Response) {
	filler := strings.Repeat("x", 1000)
	return func(_ context.Context, req *wire.Request, resp *wire.Response) {
		hits.Add(1)
		resp.Status = 200
		path := string(req.Path)
		switch {
		case strings.HasPrefix(path, "/c/hot/"):
			resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=3600"))
		case strings.HasPrefix(path, "/c/cold/"):
			resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=1"))
		default:
			resp.AddHeader([]byte("Cache-Control"), []byte("no-store"))
		}
		resp.Body = fmt.Appendf(resp.Body, "%s for %d values %s\n", path, len(req.Values), filler)
	}
}

// sample is one row of the soak table.
type sample struct {
	at         time.Duration
	proc       proc
	instances  map[string]float64 // by plugin
	wasmBytes  map[string]float64 // linear memory of the live instances, by plugin
	cacheBytes float64
	requests   int64
}

// hostRSS is the RSS less the plugins' linear memory: what the host holds.
func (s sample) hostRSS() float64 {
	r := float64(s.proc.rss)
	for _, v := range s.wasmBytes {
		r -= v
	}
	return r
}

// tally counts what clients got back.
type tally struct {
	ok, hits, misses, uncached, unauth, limited atomic.Int64
	mu                                          sync.Mutex
	unexpected                                  []string // the first few
	unexpectedN                                 int
}

func (ty *tally) bad(format string, args ...any) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.unexpectedN++
	if len(ty.unexpected) < 10 {
		ty.unexpected = append(ty.unexpected, fmt.Sprintf(format, args...))
	}
}

func (ty *tally) total() int64 {
	return ty.ok.Load() + ty.unauth.Load() + ty.limited.Load()
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped under -short")
	}
	d := soakDuration(t)
	auth, ratelimit, cache := edgetest.ModuleFile(t, root+"plugins/auth"), edgetest.ModuleFile(t, root+"plugins/ratelimit"), edgetest.ModuleFile(t, root+"plugins/cache")
	var originHits atomic.Int64
	originAddr := origintest.Start(t, origin.HandlerFunc(soakOrigin(&originHits))).Addr
	k := base64.RawURLEncoding.EncodeToString(jwtSecret)
	authStep := fmt.Sprintf(`{file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}`, auth, k)
	n := edgetest.Start(t, fmt.Sprintf(`
pop: soak1
region: eu-test
cache_bytes: %d
origins:
  app: {addr: %q, key: %q}
routes:
  - name: full
    path: /c/
    origin: app
    chain:
      - %s
      - {file: %q, config: {policies: [
          {name: per_user, key: "value:identity-sub", limit: 1000000, period: 1s},
          {name: limited, key: "path:/c/limited", limit: %d, period: 1s}]}}
      - {file: %q}
  - name: uncached
    path: /u/
    origin: app
    chain:
      - %s
`, soakCache, originAddr, origintest.Key.Text(), authStep, ratelimit, limitedRate, cache, authStep))

	var ty tally
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range soakClients {
		wg.Go(func() { soakClient(n, c, &ty, stop) })
	}

	// Sample every few seconds: about 30 samples whatever the length.
	every := min(max(d/30, time.Second), 10*time.Second)
	start := time.Now()
	var samples []sample
	take := func() {
		s := sample{at: time.Since(start).Round(time.Second), proc: measure(t, false), instances: map[string]float64{},
			wasmBytes:  map[string]float64{},
			cacheBytes: testutil.MetricSum(t, n.Registry(), "wedge_edge_cache_bytes", nil), requests: ty.total()}
		for _, p := range []string{"auth", "ratelimit", "cache"} {
			s.instances[p] = testutil.MetricSum(t, n.Registry(), "wedge_plugin_instances", map[string]string{"plugin": p})
			s.wasmBytes[p] = testutil.MetricSum(t, n.Registry(), "wedge_plugin_memory_bytes", map[string]string{"plugin": p})
		}
		samples = append(samples, s)
	}
	tick := time.NewTicker(every)
	for end := time.After(d); ; {
		select {
		case <-tick.C:
			take()
			continue
		case <-end:
		}
		break
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	t.Logf("%d clients, %v pause, %v: %d requests (%.0f/s): %d ok (%d cache hits, %d misses, %d uncached), %d 401, %d 429; origin saw %d",
		soakClients, clientPause, elapsed.Round(time.Second), ty.total(), float64(ty.total())/elapsed.Seconds(),
		ty.ok.Load(), ty.hits.Load(), ty.misses.Load(), ty.uncached.Load(), ty.unauth.Load(), ty.limited.Load(), originHits.Load())
	var tab strings.Builder
	fmt.Fprintf(&tab, "\n%6s %8s %8s %8s %6s %4s %14s %20s %9s %9s", "t", "heap MiB", "rss MiB", "host MiB", "gorout", "fds",
		"instances a/r/c", "wasm MiB a/r/c", "cache KiB", "requests")
	for _, s := range samples {
		fmt.Fprintf(&tab, "\n%6v %8.1f %8.1f %8.1f %6d %4d %6.0f/%3.0f/%3.0f %6.1f/%6.1f/%6.1f %9.1f %9d", s.at, mib(s.proc.heap), mib(s.proc.rss), s.hostRSS()/(1<<20),
			s.proc.goroutines, s.proc.fds, s.instances["auth"], s.instances["ratelimit"], s.instances["cache"],
			s.wasmBytes["auth"]/(1<<20), s.wasmBytes["ratelimit"]/(1<<20), s.wasmBytes["cache"]/(1<<20), s.cacheBytes/1024, s.requests)
	}
	t.Log(tab.String())

	// Only the answers the mix asks for: no 5xx, no transport errors.
	if ty.unexpectedN > 0 {
		t.Errorf("%d unexpected answers, first: %q", ty.unexpectedN, ty.unexpected)
	}
	for _, c := range []struct {
		what string
		n    int64
	}{{"cache hits", ty.hits.Load()}, {"cache misses", ty.misses.Load()}, {"uncached answers", ty.uncached.Load()},
		{"401s", ty.unauth.Load()}, {"429s", ty.limited.Load()}} {
		if c.n == 0 {
			t.Errorf("the load produced no %s: the mix is not what the test claims", c.what)
		}
	}

	// Flatness, after a warm-up third in which pools, caches, connections
	// and the Go heap reach their working size.
	var post []sample
	for _, s := range samples {
		if s.at >= d/3 {
			post = append(post, s)
		}
	}
	if len(post) < 3 {
		t.Fatalf("only %d samples after the warm-up", len(post))
	}
	series := func(f func(sample) float64) []float64 {
		v := make([]float64, len(post))
		for i, s := range post {
			v[i] = f(s)
		}
		return v
	}
	// Goroutines and fds are counts of things held per connection and per
	// pool: steady load holds a steady number. 20 leaves room for the
	// server's per-connection goroutines coming and going and the origin
	// client's pool adjusting, and none for one per request.
	for _, c := range []struct {
		what string
		v    []float64
	}{
		{"goroutines", series(func(s sample) float64 { return float64(s.proc.goroutines) })},
		{"open fds", series(func(s sample) float64 { return float64(s.proc.fds) })},
	} {
		m := median(c.v)
		for i, v := range c.v {
			if v < m-20 || v > m+20 {
				t.Errorf("%s at %v: %.0f, more than 20 from the median %.0f", c.what, post[i].at, v, m)
			}
		}
	}
	// Instances: never above the pool, never all gone (a recycled
	// instance is refilled in the background, so one may be missing).
	for _, s := range post {
		for p, v := range s.instances {
			if v < 1 || v > float64(poolSize()) {
				t.Errorf("%s instances at %v: %.0f, want 1..%d", p, s.at, v, poolSize())
			}
		}
	}
	// The cache's working set is fixed (hotKeys + coldKeys + a few), so
	// once warm its bytes stay put, well under cache_bytes.
	cb := series(func(s sample) float64 { return s.cacheBytes })
	if m := median(cb); m == 0 || m > soakCache {
		t.Errorf("cache bytes median %.0f, want 0 < it <= %d", m, soakCache)
	}
	for i, v := range cb {
		if v > 1.5*median(cb) {
			t.Errorf("cache bytes at %v: %.0f, over 1.5x the median %.0f", post[i].at, v, median(cb))
		}
	}
	// Memory, split in two because the two halves behave differently.
	//
	// Plugin linear memory is not flat over the first minutes: each Go
	// guest's heap grows in small steps towards its plateau and linear
	// memory never shrinks. In a 4 min run the sum over 12 instances rose
	// from 38.7 to 53 MiB by 1m50s and then stayed there (~4.4 MiB an
	// instance; ARCHITECTURE.md saw ~9 MiB with other guests), with RSS
	// following it. So it is not checked as growth, which a short run
	// would catch mid-climb; what bounds it is the runtime recycling any
	// instance past 3/4 of its memory limit, and that is checked, per
	// sample.
	//
	// The host's share, RSS less that linear memory, and the live Go heap
	// are flat, and checked as growth: the median of the last three
	// samples against the median of the first three after warm-up, so that
	// one sample does not decide. Measured here (2 cores, 90 s and 4 min):
	// live heap within 1% (40.0-40.1 MiB; 42.2-42.7 with -race), host RSS
	// within 2% without -race (~92 MiB), while with -race single samples
	// swing by up to 25% (the race runtime's shadow memory is returned in
	// bursts) but the medians moved by under 5%. A leak of 4 KiB per
	// origin request (~150/s) made the heap fail the 10% bound within a
	// 15 s run; a goroutine per origin request failed the goroutine bound.
	// So: 10% for the heap, 15% for host RSS (the -race noise).
	recycleMark := float64(wasm.DefaultMemoryLimit) / 4 * 3 // the edge keeps the runtime's defaults
	for _, s := range post {
		for p, v := range s.wasmBytes {
			if v > s.instances[p]*recycleMark {
				t.Errorf("%s linear memory at %v: %.1f MiB over %0.f instances, past the recycle mark", p, s.at, v/(1<<20), s.instances[p])
			}
		}
	}
	for _, c := range []struct {
		what   string
		v      []float64
		growth float64
	}{
		{"live heap", series(func(s sample) float64 { return float64(s.proc.heap) }), 0.10},
		{"host RSS (RSS less plugin linear memory)", series(sample.hostRSS), 0.15},
	} {
		first, last := median(c.v[:3]), median(c.v[len(c.v)-3:])
		if last > first*(1+c.growth) {
			t.Errorf("%s grew from %.1f MiB to %.1f MiB after warm-up (over %.0f%%)", c.what, first/(1<<20), last/(1<<20), c.growth*100)
		}
	}

	// With the load gone every pool is whole again.
	for _, p := range []string{"auth", "ratelimit", "cache"} {
		testutil.Eventually(t, hangGuard, p+" pool whole after the load", func() bool {
			return testutil.MetricSum(t, n.Registry(), "wedge_plugin_instances", map[string]string{"plugin": p}) == float64(poolSize())
		})
	}
}

// soakClient is one user in a closed loop: its own keep-alive connection
// and token, cycling through a mix of cache hits and misses on the full
// chain, uncached requests through auth to the origin, requests without a
// valid token (401) and requests to the shared rate-limited path (429 when
// over its budget).
func soakClient(n *edgetest.Node, id int, ty *tally, stop <-chan struct{}) {
	c := client(n)
	defer c.CloseIdleConnections()
	rnd := rand.New(rand.NewPCG(uint64(id), 1))
	bearer := "Bearer " + jwstest.UserToken(jwtSecret, fmt.Sprint("user", id))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(clientPause):
		}
		var r reply
		kind := i % 10
		switch kind {
		case 0, 1, 2, 3:
			r = do(c, "soak", fmt.Sprintf("/c/hot/%d", rnd.IntN(hotKeys)), "Authorization", bearer)
		case 4, 5:
			r = do(c, "soak", fmt.Sprintf("/c/cold/%d", rnd.IntN(coldKeys)), "Authorization", bearer)
		case 6:
			r = do(c, "soak", "/u/item", "Authorization", bearer)
		case 7:
			r = do(c, "soak", "/c/hot/0")
		case 8:
			r = do(c, "soak", "/u/item", "Authorization", "Bearer x.y.z")
		case 9:
			r = do(c, "soak", "/c/limited", "Authorization", bearer)
		}
		switch {
		case r.err != nil:
			ty.bad("kind %d: %v", kind, r.err)
		case r.status == 401 && (kind == 7 || kind == 8):
			ty.unauth.Add(1)
		case r.status == 429 && kind == 9:
			ty.limited.Add(1)
		case r.status == 200 && kind != 7 && kind != 8:
			ty.ok.Add(1)
			switch {
			case kind == 6:
				ty.uncached.Add(1)
			case strings.Contains(r.cacheStatus, "hit"):
				ty.hits.Add(1)
			case strings.Contains(r.cacheStatus, "fwd="):
				ty.misses.Add(1)
			}
		default:
			ty.bad("kind %d: %d %.100q", kind, r.status, r.body)
		}
	}
}
