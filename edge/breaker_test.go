package edge_test

// The origin circuit breaker through the whole stack (issue item 2): an
// edge node, an origin service (origin.NewServer in front of
// origin.NewProxy) and an HTTP application, all on 127.0.0.1. A failure
// confined to one URL must never refuse other requests or make the node
// unready; an origin service that cannot serve anything must open the
// breaker, and probes must close it once it serves again.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// troubledApp answers 200 on every path but two kinds: /slow/* never
// answers (it holds the request until the test ends), /drop/* closes the
// connection without a byte of answer. While sick it does that to every
// request, health checks included.
type troubledApp struct {
	slowIn   atomic.Int64 // /slow requests that reached the application
	sick     atomic.Bool
	stop     chan struct{}
	stopOnce sync.Once
}

func (a *troubledApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/slow/") && !a.sick.Load():
		a.slowIn.Add(1)
		select {
		case <-r.Context().Done():
		case <-a.stop:
		}
	case strings.HasPrefix(r.URL.Path, "/drop/") || a.sick.Load():
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	default:
		fmt.Fprintf(w, "ok %s\n", r.URL.Path)
	}
}

// serveApp runs h on ln until the test ends.
func serveApp(t *testing.T, ln net.Listener, h http.Handler) *http.Server {
	t.Helper()
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return hs
}

// troubled is a node in front of an origin service in front of a
// troubledApp.
type troubled struct {
	*testNode
	app *troubledApp
}

// startTroubled runs the application, an origin service proxying to it
// with active health checks every 200 ms, and a node whose one route goes
// there with a 3 s budget: ample for the normal requests on a busy machine,
// so that only the breaker can fail them.
func startTroubled(t *testing.T) *troubled {
	t.Helper()
	return startTroubledWith(t, "")
}

// startTroubledWith is startTroubled with extra fields (YAML) in the
// origin's block.
func startTroubledWith(t *testing.T, extra string) *troubled {
	t.Helper()
	a := &troubledApp{stop: make(chan struct{})}
	t.Cleanup(func() { a.stopOnce.Do(func() { close(a.stop) }) })
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveApp(t, ln, a)
	appAddr := ln.Addr().String()
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + appAddr}, HealthInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	n := startNode(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q, timeout: 3s%s}
routes:
  - path: /
    origin: app
`, origintest.Start(t, proxy).Addr, origintest.Key.Text(), extra))
	return &troubled{testNode: n, app: a}
}

// traffic is client traffic to a node, counted by how it ended.
type traffic struct {
	hc       *fasthttp.HostClient
	ok, fail atomic.Int64
	mu       sync.Mutex
	failures []string // the first few, for the report
}

func newTraffic(addr string) *traffic {
	return &traffic{hc: &fasthttp.HostClient{Addr: addr, MaxConns: 1024, ReadTimeout: 30 * time.Second}}
}

// get sends one request and reports its status (0 when it got none).
func (l *traffic) get(path string) int {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://x" + path)
	if err := l.hc.DoTimeout(req, resp, 30*time.Second); err != nil {
		return 0
	}
	return resp.StatusCode()
}

// expectOK sends one request that must get a 200, and counts it.
func (l *traffic) expectOK(path string) {
	st := l.get(path)
	if st == 200 {
		l.ok.Add(1)
		return
	}
	l.fail.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, fmt.Sprintf("%s: %d", path, st))
	}
	l.mu.Unlock()
}

// readiness polls the node's /ready until stop is closed and counts the
// answers that were not 200.
func readiness(t *testing.T, n *testNode, stop <-chan struct{}) (polls, unready *atomic.Int64, done <-chan struct{}) {
	t.Helper()
	polls, unready = new(atomic.Int64), new(atomic.Int64)
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Get(n.Admin.URL + "/ready")
			polls.Add(1)
			if err != nil {
				unready.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				unready.Add(1)
			}
			time.Sleep(10 * time.Millisecond) // pacing, not synchronisation
		}
	}()
	return polls, unready, ch
}

// underTrouble runs trouble (requests to the failing URLs, in workers of
// its own, until stop is closed) beside 100 req/s of normal requests to
// other URLs of the same origin, and fails the test if any normal request
// failed or /ready was ever not 200. The normal load runs until it has
// sent at least 300 requests and rounds says the trouble has been through
// enough rounds; a minute is the hang guard.
func underTrouble(t *testing.T, n *testNode, trouble func(stop <-chan struct{}), rounds func() bool) {
	t.Helper()
	stop := make(chan struct{})
	var troubled sync.WaitGroup
	troubled.Go(func() { trouble(stop) })
	polls, unready, readyDone := readiness(t, n, stop)

	l := newTraffic(n.Addr)
	var normal sync.WaitGroup
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	guard := time.Now().Add(time.Minute)
	sent := 0
	for ; sent < 300 || !rounds(); sent++ {
		if time.Now().After(guard) {
			t.Errorf("the trouble did not get through its rounds within a minute (%d normal requests sent)", sent)
			break
		}
		<-tick.C
		path := fmt.Sprintf("/item/%d", sent)
		normal.Go(func() { l.expectOK(path) })
	}
	normal.Wait()
	close(stop)
	troubled.Wait()
	<-readyDone

	if l.fail.Load() != 0 {
		t.Errorf("%d of %d normal requests failed; first: %v", l.fail.Load(), sent, l.failures)
	}
	if unready.Load() != 0 {
		t.Errorf("/ready was not ready in %d of %d polls", unready.Load(), polls.Load())
	}
	metrics := n.get(t, "/metrics", "")
	if got := grepLines(metrics, `wedge_edge_origin_breaker_state{origin="app"}`); got != `wedge_edge_origin_breaker_state{origin="app"} 0` {
		t.Errorf("breaker state after the load: %q", got)
	}
	t.Logf("%d normal requests, %d /ready polls", sent, polls.Load())
}

// paced waits for pace's next tick, and says false once stop is closed.
// The pace keeps a worker that gets fast refusals from busy-looping.
func paced(stop <-chan struct{}, pace *time.Ticker) bool {
	select {
	case <-stop:
		return false
	default:
	}
	select {
	case <-stop:
		return false
	case <-pace.C:
		return true
	}
}

// TestBreakerSlowURL: 50 concurrent requests to a URL that never answers
// in time, over and over, while 100 req/s go to other URLs of the same
// origin: none of those fails, and /ready stays ready. Each slow request
// ends in the origin service's own 504 for that request, which says
// nothing about the origin's health.
func TestBreakerSlowURL(t *testing.T) {
	tr := startTroubled(t)
	n, a := tr.testNode, tr.app
	var slowDone, slow504 atomic.Int64
	l := newTraffic(n.Addr)
	trouble := func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				pace := time.NewTicker(10 * time.Millisecond)
				defer pace.Stop()
				for paced(stop, pace) {
					if l.get("/slow/report") == 504 {
						slow504.Add(1)
					}
					slowDone.Add(1)
				}
			})
		}
		wg.Wait()
	}
	// Two full rounds of 50 slow requests end while the normal load runs.
	underTrouble(t, n, trouble, func() bool { return slowDone.Load() >= 100 })
	if slowDone.Load() < 100 || slow504.Load() == 0 || a.slowIn.Load() == 0 {
		t.Errorf("slow URL: %d requests ended, %d with 504, %d reached the application", slowDone.Load(), slow504.Load(), a.slowIn.Load())
	}
}

// TestBreakerUpstreamDisconnects: the application closes the connection
// on a handful of URLs; requests to them get the origin's 502, and every
// other request is served.
func TestBreakerUpstreamDisconnects(t *testing.T) {
	n := startTroubled(t).testNode
	var dropped, drop502 atomic.Int64
	l := newTraffic(n.Addr)
	trouble := func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				pace := time.NewTicker(20 * time.Millisecond)
				defer pace.Stop()
				for paced(stop, pace) {
					if l.get(fmt.Sprintf("/drop/%d", i)) == 502 {
						drop502.Add(1)
					}
					dropped.Add(1)
				}
			})
		}
		wg.Wait()
	}
	underTrouble(t, n, trouble, func() bool { return dropped.Load() >= 200 })
	if dropped.Load() < 200 || drop502.Load() != dropped.Load() {
		t.Errorf("dropping URLs: %d requests, %d answered 502", dropped.Load(), drop502.Load())
	}
}

// TestBreakerOriginUnavailable: the application fails every request and
// health check, so the origin service soon has no upstream in rotation and
// answers everything with its own 503 "no healthy upstream": the breaker
// opens, /ready says why, and once the application is back a half-open
// probe closes the breaker.
func TestBreakerOriginUnavailable(t *testing.T) {
	tr := startTroubled(t)
	l := newTraffic(tr.Addr)
	if st := l.get("/item/first"); st != 200 {
		t.Fatalf("before: %d", st)
	}
	ready := func() (int, string) {
		resp, err := http.Get(tr.Admin.URL + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Requests get the origin's 502 for each until its checks take the
	// application out of rotation, then its 503, until the breaker opens.
	tr.app.sick.Store(true)
	guard := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		if st, _ := ready(); st != 200 {
			break
		}
		if time.Now().After(guard) {
			t.Fatalf("%d requests in a minute to an origin that cannot serve, and the breaker is still closed", i)
		}
		if st := l.get(fmt.Sprintf("/item/%d", i)); st != 502 && st != 503 {
			t.Fatalf("application down: %d", st)
		}
		time.Sleep(20 * time.Millisecond) // pacing while the checks notice
	}
	if st, body := ready(); st != 503 || !strings.Contains(body, "origin app: circuit open (unavailable)") {
		t.Fatalf("/ready: %d %q", st, body)
	}
	if st := l.get("/item/open"); st != 503 {
		t.Fatalf("breaker open: %d", st)
	}
	if got := grepLines(tr.get(t, "/metrics", ""), `wedge_edge_origin_breaker_opens_total{origin="app",reason="unavailable"}`); got == "" || strings.HasSuffix(got, " 0") {
		t.Errorf("opens by reason: %q", got)
	}

	// The application recovers; the origin's checks bring it back into
	// rotation and the edge's probe finds the origin serving.
	tr.app.sick.Store(false)
	guard = time.Now().Add(time.Minute)
	for st := 0; st != 200; st = l.get("/item/probe") {
		if time.Now().After(guard) {
			t.Fatalf("the application is back and the edge still answers %d", st)
		}
		time.Sleep(50 * time.Millisecond) // pacing while the breaker waits out OpenFor
	}
	if st, body := ready(); st != 200 {
		t.Fatalf("/ready after recovery: %d %q", st, body)
	}
}

// TestBreakerConfigured: an origin's breaker block reaches its breaker.
// With failures: 1 the origin's first "cannot serve" opens it, where the
// default (5 in a row) leaves it closed.
func TestBreakerConfigured(t *testing.T) {
	for _, c := range []struct {
		extra string
		open  bool
	}{{"", false}, {", breaker: {failures: 1, open_for: 1h}", true}} {
		tr := startTroubledWith(t, c.extra)
		l := newTraffic(tr.Addr)
		tr.app.sick.Store(true)
		// 502s (this request's upstream failed) until the origin's checks
		// take the application out, then the origin's 503.
		testutil.Eventually(t, time.Minute, "the origin's 503", func() bool {
			st := l.get("/item/1")
			if st != 502 && st != 503 {
				t.Fatalf("%q: a request to a sick application: %d", c.extra, st)
			}
			return st == 503
		})
		resp, err := http.Get(tr.Admin.URL + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if open := strings.Contains(string(b), "circuit open"); open != c.open || (resp.StatusCode != 200) != c.open {
			t.Fatalf("%q: after one failure /ready says %d %q, want the breaker open: %v", c.extra, resp.StatusCode, b, c.open)
		}
	}
}
