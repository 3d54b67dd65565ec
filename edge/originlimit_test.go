package edge_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestOriginLimit: an origin that serves one request at a time, 2 ms
// each, behind 32 clients in a closed loop answers each after some 64 ms,
// past its 10 ms latency_target. The node lowers the origin's limit and
// answers what is past it 503 with Retry-After, naming the origin, without
// sending it; a route with its own timeout (a long poll's) to the same
// origin is never refused; and once the load is gone requests go through
// again. The node's own overload terms are held off (delays of an hour),
// so every 503 here is the origin limit's.
func TestOriginLimit(t *testing.T) {
	var mu sync.Mutex
	var reached atomic.Int64
	o := origintest.Start(t, origin.HandlerFunc(func(ctx context.Context, _ *wire.Request, resp *wire.Response) {
		mu.Lock()
		reached.Add(1)
		time.Sleep(2 * time.Millisecond) // the origin's work: one at a time
		mu.Unlock()
		resp.Status = 200
		resp.Body = append(resp.Body, "done\n"...)
	}))
	doc := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q, latency_target: 10ms}
routes:
  - {path: /poll, origin: app, timeout: 30s}
  - {path: /, origin: app}
overload: {min_limit: 2, initial_limit: 64, max_limit: 64, queue_delay: 1h, target_delay: 1h}
`, o.Addr, origintest.Key.Text())
	n := edgetest.Start(t, doc)

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}

	// Bounded: 32 clients, at most 20 s and 5,000 requests each.
	const clients = 32
	var refused, ok atomic.Int64
	var bad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	deadline := time.Now().Add(20 * time.Second)
	for range clients {
		c, r := dial()
		wg.Go(func() {
			for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, body, err := send(c, r)
				switch {
				case err != nil:
					bad.Store(err.Error())
					return
				case resp.StatusCode == 503:
					if resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "origin at its concurrency limit") {
						bad.Store(fmt.Sprintf("503 with Retry-After %q, %q", resp.Header.Get("Retry-After"), body))
					}
					refused.Add(1)
				case resp.StatusCode != 200:
					bad.Store(fmt.Sprintf("%d %q", resp.StatusCode, body))
				default:
					ok.Add(1)
				}
			}
		})
	}
	testutil.Eventually(t, 20*time.Second, "a request refused for the origin's limit", func() bool { return refused.Load() > 0 })
	// Under the same load, the long-poll route is not limited.
	pc, pr := dial()
	for range 3 {
		if resp, body, err := sendPath(pc, pr, "/poll"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("a long poll while the origin is limited: %v %v %q, want 200", err, resp, body)
		}
	}
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("a client got %v", v)
	}
	limit := testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_concurrency_limit", map[string]string{"origin": "app"})
	if limit >= clients {
		t.Errorf("origin limit %v after refusing, want it under the %d clients", limit, clients)
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_shed_total", map[string]string{"reason": "origin"}); got != float64(refused.Load()) {
		t.Errorf("shed for the origin: %v, want the %d refused", got, refused.Load())
	}
	if lat := testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_latency_seconds", map[string]string{"origin": "app"}); lat <= 0 {
		t.Errorf("origin latency %v, want it measured", lat)
	}
	// A reload keeps what the limit learnt: back at initial_limit, it would
	// let a flood through to an origin already behind.
	cfg, err := edge.ParseConfig([]byte(doc), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_concurrency_limit", map[string]string{"origin": "app"}); got != limit {
		t.Errorf("origin limit %v after a reload, want the %v it had", got, limit)
	}
	// The refused were never sent: the origin saw the answered and the polls.
	if got, want := reached.Load(), ok.Load()+3; got != want {
		t.Errorf("the origin saw %d requests, want the %d answered", got, want)
	}
	c, r := dial()
	if resp, body, err := send(c, r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a request after the load: %v %v %q, want 200", err, resp, body)
	}
	// Another address under the same name is another origin: it starts
	// from initial_limit, not from what the last one could take.
	o2 := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) { resp.Status = 200 }))
	if cfg, err = edge.ParseConfig([]byte(strings.Replace(doc, o.Addr, o2.Addr, 1)), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_concurrency_limit", map[string]string{"origin": "app"}); got != 64 {
		t.Errorf("origin limit %v after a reload to another address, want initial_limit 64", got)
	}
}
