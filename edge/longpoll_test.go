package edge_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// pollApp is an application of long polls: /poll waits until the test
// releases it or its client (the origin service) hangs up; anything else
// is answered at once.
type pollApp struct {
	parked    atomic.Int32 // polls waiting now
	cancelled atomic.Int32 // polls whose request's context ended first
	release   chan struct{}
}

func (a *pollApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/poll" {
		io.WriteString(w, "other")
		return
	}
	a.parked.Add(1)
	defer a.parked.Add(-1)
	select {
	case <-a.release:
		io.WriteString(w, "2")
	case <-r.Context().Done():
		a.cancelled.Add(1)
	}
}

// startPollStack starts the application, an origin service proxying to it
// and an edge whose origin entry ends with originExtra (YAML).
func startPollStack(t *testing.T, originExtra string) (*pollApp, *testNode) {
	t.Helper()
	app := &pollApp{release: make(chan struct{})}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(func() { close(app.release) }) // first: the polls end
	m := origin.NewMetrics(prometheus.NewRegistry())
	p, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: p, Metrics: m, MaxTimeout: time.Minute}, nil)
	n := startNode(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q%s}
routes:
  - {path: /, origin: app}
`, o.Addr, origintest.Key.Text(), originExtra))
	return app, n
}

// openPoll sends long poll sid to the edge on a connection of its own
// (polls of different sids are not collapsed into one at the origin).
func openPoll(t *testing.T, addr, sid string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /poll?sid="+sid+" HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLongPollClientGone: a client that hangs up on a long poll cancels
// the application's request (its context ends), not at the timeout a
// minute away, and the edge's connection to the origin goes with it: with
// max_conns 1, the next request gets that connection's place.
func TestLongPollClientGone(t *testing.T) {
	app, n := startPollStack(t, ", max_conns: 1, timeout: 60s")
	c := openPoll(t, n.Addr, "a")
	testutil.Eventually(t, 10*time.Second, "poll parked at the application", func() bool { return app.parked.Load() == 1 })
	c.Close()
	testutil.Eventually(t, 20*time.Second, "application's request cancelled", func() bool { return app.cancelled.Load() == 1 })
	testutil.Eventually(t, 10*time.Second, "client cancel counted", func() bool {
		return testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_exchanges_total", map[string]string{"outcome": "cancelled"}) == 1
	})
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_errors_total", map[string]string{"kind": "transport"}); got != 0 {
		t.Errorf("errors_total{kind=transport} %v, want 0: a client's hang-up is no origin failure", got)
	}
	resp, err := http.Get("http://" + n.Addr + "/other")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "other" {
		t.Fatalf("after the hang-up: %d %q, want 200 \"other\" (the pooled connection free)", resp.StatusCode, body)
	}
}

// TestOriginPoolFull: with an origin's max_conns all held by long polls, a
// request to another of its routes is shed at once with 503 and
// Retry-After, counted as such, rather than waiting for its deadline to
// end in a 504 as though the origin had failed.
func TestOriginPoolFull(t *testing.T) {
	app, n := startPollStack(t, ", max_conns: 2, timeout: 60s")
	openPoll(t, n.Addr, "a")
	openPoll(t, n.Addr, "b")
	testutil.Eventually(t, 10*time.Second, "polls parked at the application", func() bool { return app.parked.Load() == 2 })
	resp, err := http.Get("http://" + n.Addr + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third request: %d, Retry-After %q; want 503 with Retry-After: 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_shed_total", map[string]string{"reason": "origin_pool"}); got != 1 {
		t.Errorf("shed_total{reason=origin_pool} %v, want 1", got)
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_exchanges_total", map[string]string{"outcome": "pool_full"}); got != 1 {
		t.Errorf("exchanges_total{outcome=pool_full} %v, want 1", got)
	}
}
