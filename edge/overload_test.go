package edge_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// heldOrigin is an origin service that holds every request until release
// is called (or the test ends), counting those that reached it.
func heldOrigin(t *testing.T) (addr string, reached *atomic.Int64, release func()) {
	t.Helper()
	reached, held := new(atomic.Int64), make(chan struct{})
	release = sync.OnceFunc(func() { close(held) })
	t.Cleanup(release)
	o := origintest.Start(t, origin.HandlerFunc(func(ctx context.Context, _ *wire.Request, resp *wire.Response) {
		reached.Add(1)
		select {
		case <-held:
		case <-ctx.Done():
		}
		resp.Status = 200
		resp.Body = append(resp.Body, "done\n"...)
	}))
	return o.Addr, reached, release
}

// overloadNode is a node with one route, no plugins, to addr, and the
// overload block given.
func overloadNode(t *testing.T, addr, overload string) *edgetest.Node {
	t.Helper()
	return edgetest.Start(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
overload: %s
`, addr, origintest.Key.Text(), overload))
}

// get sends a GET on c and reads its response.
func get(t *testing.T, c net.Conn, r *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, body, err := send(c, r)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// send is get for another goroutine than the test's.
func send(c net.Conn, r *bufio.Reader) (*http.Response, string, error) { return sendPath(c, r, "/x") }

// sendPath is send for a GET of path.
func sendPath(c net.Conn, r *bufio.Reader, path string) (*http.Response, string, error) {
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

// admin GETs path on the node's admin listener.
func admin(t *testing.T, n *edgetest.Node, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(n.Admin.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOverloadShedsPastTheLimit: with the limit held at 4 (min = max) and
// an origin that holds every request, four requests are in flight; the
// ones past them get 503 with Retry-After at once, on a connection kept
// open, while the four are still pending, and the origin never sees them.
// /ready says the node is overloaded while /health stays 200, the series
// an autoscaler reads move, and /ready recovers once the load is gone.
func TestOverloadShedsPastTheLimit(t *testing.T) {
	addr, reached, release := heldOrigin(t)
	// Delays so long that only the in-flight count sheds here: the
	// machine's own business cannot make this test shed the first four.
	n := overloadNode(t, addr, "{min_limit: 4, initial_limit: 4, max_limit: 4, target_delay: 1h, queue_delay: 1h, ready_hold: 1ms}")
	metric := func(name string, labels map[string]string) float64 {
		return testutil.MetricSum(t, n.Registry(), name, labels)
	}

	const admitted = 4
	results := make(chan string, admitted)
	for range admitted {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			resp, body, err := send(c, bufio.NewReader(c))
			if err != nil {
				results <- err.Error()
				return
			}
			results <- fmt.Sprint(resp.StatusCode, " ", body)
		}()
	}
	testutil.Eventually(t, 10*time.Second, "four requests at the origin", func() bool { return reached.Load() == admitted })

	c, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	const shed = 10
	for i := range shed {
		// One connection: each answer on it also shows it was kept open.
		resp, body := get(t, c, r)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "overloaded") || resp.Close {
			t.Fatalf("request %d past the limit: %d, Retry-After %q, close %v, %q: want 503, Retry-After 1, kept open",
				i, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, body)
		}
	}
	if got := reached.Load(); got != admitted {
		t.Fatalf("the origin saw %d requests, want only the %d admitted", got, admitted)
	}
	// ready_hold is 1 ms, so that /ready recovers at once below, and a
	// busy machine can take longer than that between a shed and the poll:
	// each try sheds one more request just before it.
	extra := 0
	testutil.Eventually(t, 10*time.Second, "/ready answering 503, overloaded, just after a shed", func() bool {
		if resp, _ := get(t, c, r); resp.StatusCode != 503 {
			t.Fatalf("a request past the limit: %d, want 503", resp.StatusCode)
		}
		extra++
		st, body := admin(t, n, "/ready")
		return st == 503 && strings.Contains(body, "overloaded")
	})
	if st, _ := admin(t, n, "/health"); st != 200 {
		t.Fatalf("/health while shedding: %d, want 200", st)
	}
	for name, want := range map[string]float64{
		"wedge_edge_shed_total":          float64(shed + extra),
		"wedge_edge_in_flight":           admitted,
		"wedge_edge_concurrency_limit":   admitted,
		"wedge_edge_utilization":         1,
		"wedge_edge_requests_total":      0, // the shed ones are no route's
		"wedge_edge_unrouted_total":      0,
		"wedge_edge_write_refused_total": 0,
	} {
		if got := metric(name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metric("wedge_edge_shed_total", map[string]string{"reason": "in_flight"}); got != float64(shed+extra) {
		t.Errorf("shed for in_flight: %v, want %d", got, shed+extra)
	}

	release()
	for range admitted {
		if got := <-results; got != "200 done\n" {
			t.Errorf("an admitted request got %q, want 200", got)
		}
	}
	testutil.Eventually(t, 10*time.Second, "/ready after the load is gone", func() bool {
		st, _ := admin(t, n, "/ready")
		return st == 200
	})
	if got := metric("wedge_edge_in_flight", nil); got != 0 {
		t.Errorf("in flight after the load: %v, want 0", got)
	}
	if resp, body := get(t, c, r); resp.StatusCode != 200 {
		t.Fatalf("a request after the load: %d %q, want 200", resp.StatusCode, body)
	}
}

// TestOverloadShedsForCPU: goroutines that keep every CPU of the process
// busy make a real node shed requests for the CPU (reason cpu), with the
// same 503 as for the limit, after the onset window; once they stop, it
// admits requests again.
func TestOverloadShedsForCPU(t *testing.T) {
	addr, _, release := heldOrigin(t)
	release() // answers at once
	n := overloadNode(t, addr, "{target_delay: 1ms, ready_hold: 1ms}")
	c, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if resp, body := get(t, c, r); resp.StatusCode != 200 {
		t.Fatalf("at no load: %d %q, want 200", resp.StatusCode, body)
	}

	stop := testutil.SpinCPUs(t)
	// Load from several connections at once, as an overload is: the node
	// samples only as requests come, and one connection alone, its
	// requests half a second each on a machine busy with other tests,
	// left gaps of a second, which end an overload (cpuShed.idle).
	var (
		done   = make(chan struct{})
		loads  sync.WaitGroup
		shedMu sync.Mutex
		shed   *http.Response
		body   string
	)
	for range 8 {
		lc, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer lc.Close()
		lr := bufio.NewReader(lc)
		loads.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, b, err := send(lc, lr)
				if err != nil {
					return
				}
				if resp.StatusCode == 503 {
					shedMu.Lock()
					shed, body = resp, b
					shedMu.Unlock()
				}
			}
		})
	}
	// The ratio is the last sample's, which a starved node's spread-out
	// samples bring down fast: it is looked for while the load goes on.
	testutil.Eventually(t, time.Minute, "a request shed for the CPU, and a shed ratio above 0", func() bool {
		shedMu.Lock()
		defer shedMu.Unlock()
		return shed != nil && testutil.MetricSum(t, n.Registry(), "wedge_edge_shed_ratio", nil) > 0
	})
	close(done)
	loads.Wait()
	if shed.Header.Get("Retry-After") != "1" || !strings.Contains(body, "overloaded") {
		t.Fatalf("shed: Retry-After %q, %q: want 1, overloaded", shed.Header.Get("Retry-After"), body)
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_shed_total", map[string]string{"reason": "cpu"}); got == 0 {
		t.Error("a shed not counted for the cpu")
	}
	stop()
	// Some are admitted even at the most it sheds; how soon it stops
	// shedding depends on the machine's other load (TestOverloadSeesCPU
	// and TestCPUShed check that it does).
	testutil.Eventually(t, time.Minute, "a request admitted after the load", func() bool {
		resp, _ := get(t, c, r)
		return resp.StatusCode == 200
	})
}

// TestOverloadOff: overload: {off: true} admits past any count, and says
// so in its limit series (0).
func TestOverloadOff(t *testing.T) {
	addr, reached, release := heldOrigin(t)
	n := overloadNode(t, addr, "{off: true, min_limit: 1, initial_limit: 1, max_limit: 1}")
	const sent = 6
	done := make(chan int, sent)
	for range sent {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			resp, _, err := send(c, bufio.NewReader(c))
			if err != nil {
				done <- 0
				return
			}
			done <- resp.StatusCode
		}()
	}
	testutil.Eventually(t, 10*time.Second, "every request at the origin", func() bool { return reached.Load() == sent })
	release()
	for range sent {
		if st := <-done; st != 200 {
			t.Errorf("status %d, want 200", st)
		}
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_concurrency_limit", nil); got != 0 {
		t.Errorf("limit series %v while off, want 0", got)
	}
}
