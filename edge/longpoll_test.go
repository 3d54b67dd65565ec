package edge_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"

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
	return startPollNode(t, originExtra, "")
}

// startPollNode is startPollStack with nodeExtra (YAML) added to the
// node's config.
func startPollNode(t *testing.T, originExtra, nodeExtra string) (*pollApp, *testNode) {
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
%s`, o.Addr, origintest.Key.Text(), originExtra, nodeExtra))
	return app, n
}

// pollTLS is a poll stack whose node serves TLS too (HTTP/1.1, HTTP/2
// and HTTP/3 on addr), and writes its access log to logFile.
type pollTLS struct {
	app           *pollApp
	n             *testNode
	addr, logFile string
	roots         *x509.CertPool
}

func startPollTLS(t *testing.T) *pollTLS {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, "edge.test", 1)
	s := &pollTLS{logFile: filepath.Join(dir, "access.log"), roots: x509.NewCertPool()}
	s.roots.AddCert(cert)
	s.app, s.n = startPollNode(t, ", timeout: 60s", fmt.Sprintf(`access_log: {path: %q}
tls:
  certs:
    - {cert: %s, key: %s}
  http3: {enabled: true}
`, s.logFile, certFile, keyFile))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go s.n.ServeTLS(ln)
	return s
}

func (s *pollTLS) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{ServerName: "edge.test", RootCAs: s.roots, NextProtos: protos}
}

// cancelOneOfTwo sends two long polls on rt, one client connection's
// streams, and cancels the first: the node abandons its exchange as it
// does an HTTP/1.1 client's that hangs up (the application's request
// cancelled, counted as cancelled and logged 499), and the connection's
// other streams go on: one sent after it, and the second poll, answered
// when the application releases it.
func (s *pollTLS) cancelOneOfTwo(t *testing.T, ctx context.Context, rt http.RoundTripper, proto int) {
	t.Helper()
	get := func(ctx context.Context, path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", "https://"+s.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rt.RoundTrip(req)
	}
	type result struct {
		status int
		body   string
		err    error
	}
	roundTrip := func(ctx context.Context, path string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			resp, err := get(ctx, path)
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			ch <- result{resp.StatusCode, string(b), err}
		}()
		return ch
	}
	given, giveUp := context.WithCancel(ctx)
	defer giveUp()
	gone := roundTrip(given, "/poll?sid=a")
	kept := roundTrip(ctx, "/poll?sid=b")
	testutil.Eventually(t, 10*time.Second, "polls parked at the application", func() bool { return s.app.parked.Load() == 2 })
	giveUp()
	if r := <-gone; r.err == nil {
		t.Fatalf("the given-up poll answered %d %q", r.status, r.body)
	}
	testutil.Eventually(t, 20*time.Second, "application's request cancelled", func() bool { return s.app.cancelled.Load() == 1 })
	testutil.Eventually(t, 10*time.Second, "client cancel counted", func() bool {
		return testutil.MetricSum(t, s.n.Registry(), "wedge_edge_origin_exchanges_total", map[string]string{"outcome": "cancelled"}) == 1
	})
	if got := testutil.MetricSum(t, s.n.Registry(), "wedge_edge_origin_errors_total", map[string]string{"kind": "transport"}); got != 0 {
		t.Errorf("errors_total{kind=transport} %v, want 0: a client's cancel is no origin failure", got)
	}
	resp, err := get(ctx, "/other")
	if err != nil {
		t.Fatalf("a request after the cancel: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != proto || resp.StatusCode != 200 || string(body) != "other" {
		t.Fatalf("a request after the cancel: %s %d %q, want HTTP/%d 200 \"other\"", resp.Proto, resp.StatusCode, body, proto)
	}
	if n := s.app.parked.Load(); n != 1 {
		t.Fatalf("%d polls parked, want the other one", n)
	}
	s.app.release <- struct{}{}
	if r := <-kept; r.err != nil || r.status != 200 || r.body != "2" {
		t.Fatalf("the other poll: %d %q, %v; want 200 \"2\"", r.status, r.body, r.err)
	}
	statuses := map[string]int{}
	for _, l := range waitAccessLog(t, s.logFile, 3) {
		statuses[l.Path] += l.Status
	}
	if statuses["/poll"] != 499+200 || statuses["/other"] != 200 {
		t.Fatalf("the access log's statuses by path: %v, want 499 and 200 for /poll", statuses)
	}
}

// TestLongPollCancelledHTTP2: a client that resets an HTTP/2 stream its
// long poll waits on cancels the poll all the way, as one that closes its
// HTTP/1.1 connection does, and the connection's other streams go on.
func TestLongPollCancelledHTTP2(t *testing.T) {
	s := startPollTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	c, err := (&tls.Dialer{Config: s.tlsConfig("h2")}).DialContext(ctx, "tcp4", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, err := (&http2.Transport{}).NewClientConn(c)
	if err != nil {
		t.Fatal(err)
	}
	s.cancelOneOfTwo(t, ctx, cc, 2)
}

// TestLongPollCancelledHTTP3 is TestLongPollCancelledHTTP2 over HTTP/3.
func TestLongPollCancelledHTTP3(t *testing.T) {
	s := startPollTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	conn, err := quic.DialAddr(ctx, s.addr, s.tlsConfig(http3.NextProtoH3), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	s.cancelOneOfTwo(t, ctx, (&http3.Transport{}).NewClientConn(conn), 3)
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

// TestLongPollClientGoneTLS: a client that hangs up on a long poll over
// HTTP/1.1 and TLS sends a close_notify alert before it closes (Go's
// tls.Conn.Close, OpenSSL's SSL_shutdown): bytes on the socket, which
// ended the watch, and the close behind them was not seen. It is now: the
// application's request is cancelled, counted as cancelled and logged 499.
func TestLongPollClientGoneTLS(t *testing.T) {
	s := startPollTLS(t)
	c, err := tls.Dial("tcp4", s.addr, s.tlsConfig("http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /poll?sid=a HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "poll parked at the application", func() bool { return s.app.parked.Load() == 1 })
	c.Close()
	testutil.Eventually(t, 20*time.Second, "application's request cancelled", func() bool { return s.app.cancelled.Load() == 1 })
	testutil.Eventually(t, 10*time.Second, "client hang-up counted", func() bool {
		return testutil.MetricSum(t, s.n.Registry(), "wedge_edge_origin_exchanges_total", map[string]string{"outcome": "cancelled"}) == 1
	})
	if l := waitAccessLog(t, s.logFile, 1); l[0].Path != "/poll" || l[0].Status != 499 {
		t.Fatalf("logged %s %d, want /poll 499", l[0].Path, l[0].Status)
	}
}
