package edge_test

// Slow readers (issue item 3): a client that requests a large body and
// reads none of it holds that body until the write times out. A cached
// body must be written from the cache's bytes, not a copy per connection,
// and the bodies only writes hold are bounded node-wide, with a clear 503
// past the bound.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// appOrigin runs h as the application behind an origin service and its
// proxy, on 127.0.0.1, and returns the origin service's address.
func appOrigin(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveApp(t, ln, h)
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	return origintest.Start(t, proxy).Addr
}

// bigApp serves 8 MiB bodies: /big/cached for the cache, /big/nostore
// never cached; and a short cacheable text on any other path.
func bigApp(t *testing.T) string {
	t.Helper()
	big := bytes.Repeat([]byte("wedge slow reader"), (8<<20)/17+1)[:8<<20]
	return appOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big/cached":
			w.Header().Set("Cache-Control", "public, max-age=600")
			w.Write(big)
		case "/big/nostore":
			w.Header().Set("Cache-Control", "no-store")
			w.Write(big)
		default:
			w.Header().Set("Cache-Control", "public, max-age=600")
			fmt.Fprintf(w, "%s for %s\n", r.URL.Path, r.Header.Get("Wedge-Value-Identity-Sub"))
		}
	}))
}

// startBig runs a node with /big/ behind the cache plugin alone and every
// other path behind auth, ratelimit and cache, with limits. Its write
// timeout is long enough that no slow reader is cut off while a test on a
// busy machine still counts on it.
//
// Its connections have a 64 KiB send buffer (the kernel doubles it). Left
// to itself the kernel grows the send buffer of a stalled write to
// tcp_wmem's maximum, 4 MiB: TestSlowReadersOfCachedBody's readers then held
// 1160 MiB of kernel memory (40 MiB now). On a 24 GiB machine that is three
// quarters of what TCP may use before the kernel puts every socket on it
// under memory pressure (tcp_mem), and two runs at once (another package's
// tests, another checkout) would pass its hard limit, past which the kernel
// drops data arriving for any socket with some queued: every test and
// benchmark beside would stall on retransmissions. The test is about the
// node's memory, which the buffer does not change: a write of 8 MiB stalls
// either way.
func startBig(t *testing.T, limits string) *testNode {
	t.Helper()
	if limits != "" {
		limits = ", " + limits
	}
	lc := net.ListenConfig{Control: sockopt(syscall.SO_SNDBUF, 64<<10)}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := plugins(t)
	return startNodeWith(t, fmt.Sprintf(`
admin: {token: s3cret}
limits: {write_timeout: 10m%s}
origins:
  app: {addr: %q, key: %q}
routes:
  - name: big
    path: /big/
    origin: app
    chain:
      - {file: %q}
  - name: chain
    path: /
    origin: app
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}
      - {file: %q, config: {policies: [{name: per_user, key: "value:identity-sub", limit: 5, period: 1m, burst: 5}]}}
      - {file: %q}
`, limits, bigApp(t), origintest.Key.Text(), p["cache"], p["auth"], base64.RawURLEncoding.EncodeToString(jwtSecret), p["ratelimit"], p["cache"]),
		edge.Options{}, ln)
}

// sockopt sets the socket option opt (SOL_SOCKET) to v on a socket about to
// listen or connect; an accepted connection takes its listener's.
func sockopt(opt, v int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, v) }); err != nil {
			return err
		}
		return serr
	}
}

// slowReader opens a connection that asks for target and reads nothing.
// Its receive buffer is 4 KiB, so the node's write of a large body stalls
// once the kernel's send buffer is full.
func slowReader(t *testing.T, addr, target string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: sockopt(syscall.SO_RCVBUF, 4<<10)}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// The host getBody's requests name, as the cache's keys include it.
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// metric is the value of the node's series name with the labels given as
// name=value pairs, summed over the series that have them.
func metric(t *testing.T, n *testNode, name string, labels ...string) float64 {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[labels[i]] = labels[i+1]
	}
	return testutil.MetricSum(t, n.Registry(), name, m)
}

// waitMetric polls the series until ok holds for its value, failing past
// a deadline.
func waitMetric(t *testing.T, n *testNode, ok func(float64) bool, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := metric(t, n, name, labels...)
		if ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%q still %v after 20 s", name, labels, v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

func zero(v float64) bool { return v == 0 }

// rss is the process's resident set once the heap's garbage is collected
// and its free pages returned, so that it is what the process holds.
func rss(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm (not Linux?): %v", err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(statm))[1], 10, 64)
	if err != nil {
		t.Fatalf("statm %q: %v", statm, err)
	}
	return pages * int64(os.Getpagesize())
}

// getBody fetches target through the node and reads the whole body.
func getBody(addr, target string, hdr ...string) (status int, cacheStatus string, n int, err error) {
	req, err := http.NewRequest("GET", "http://"+addr+target, nil)
	if err != nil {
		return 0, "", 0, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	m, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Cache-Status"), int(m), err
}

// TestSlowReadersOfCachedBody: 300 connections that request a cached 8 MiB
// object and read nothing add at most 100 MiB to the process's resident
// memory (each used to hold a copy: 2.4 GB), and meanwhile requests through
// the full chain (auth, ratelimit, cache) are all served. With the copies,
// a node under a memory limit (GOMEMLIMIT) spent itself collecting
// garbage, cache plugin calls ran past their deadline and failed closed.
func TestSlowReadersOfCachedBody(t *testing.T) {
	const (
		readers = 300
		batch   = 25
		bound   = 100 << 20
	)
	n := startBig(t, "")
	for i, want := range []string{"fwd=uri-miss", "hit"} {
		st, cs, size, err := getBody(n.Addr, "/big/cached")
		if err != nil || st != 200 || size != 8<<20 || !strings.Contains(cs, want) {
			t.Fatalf("warming, request %d: %d, %d bytes, Cache-Status %q, %v; want %s", i+1, st, size, cs, err, want)
		}
	}
	served := metric(t, n, "wedge_edge_requests_total", "route", "big") // both 200s
	before := rss(t)
	// In batches, so that a node that copies bodies is caught after a few
	// hundred MiB rather than left to grow by gigabytes.
	for opened := 0; opened < readers; {
		for range batch {
			slowReader(t, n.Addr, "/big/cached")
			opened++
		}
		// Counted once the response is handed to the server, which then
		// holds it until the client has read it all. Waited for whatever
		// its status, so that a failure says which it was.
		waitMetric(t, n, atLeast(served+float64(opened)), "wedge_edge_requests_total", "route", "big")
		if ok := metric(t, n, "wedge_edge_requests_total", "route", "big", "code", "2xx"); ok != served+float64(opened) {
			t.Fatalf("%v of %d slow readers answered 2xx; plugin errors: %v, of which no free instance in time (busy) %v",
				ok-served, opened, metric(t, n, "wedge_plugin_errors_total"), metric(t, n, "wedge_plugin_errors_total", "kind", "busy"))
		}
		if grown := rss(t) - before; grown > bound {
			t.Fatalf("%d slow readers of a cached 8 MiB body: RSS grew by %d MiB, bound %d MiB",
				opened, grown>>20, bound>>20)
		} else if opened == readers {
			t.Logf("%d slow readers of a cached 8 MiB body: RSS grew by %.1f MiB", readers, float64(grown)/(1<<20))
		}
	}
	// The readers still hold their responses: none has been written out.
	if w := metric(t, n, "wedge_edge_writes"); w < readers {
		t.Fatalf("%v responses being written, want the %d slow readers'", w, readers)
	}
	if b := metric(t, n, "wedge_edge_write_bytes"); b != 0 {
		t.Errorf("write_bytes %v with only cached bodies being written", b)
	}

	// Other clients meanwhile: 200 requests through the full chain, 4 at a
	// time, from 50 users (the rate limit allows 5 a minute each) on 20
	// URLs, so both misses and hits.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < 200; i += 4 {
				user := fmt.Sprint("u", i%50)
				st, _, _, err := getBody(n.Addr, fmt.Sprintf("/n/%d", i%20), "Authorization", "Bearer "+jwstest.UserToken(jwtSecret, user))
				if err != nil || st != 200 {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("request %d: %d %v", i, st, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of 200 requests alongside the slow readers failed, e.g. %s", len(errs), errs[0])
	}
	if e := metric(t, n, "wedge_plugin_errors_total"); e != 0 {
		t.Errorf("%v plugin errors alongside the slow readers", e)
	}
}

// TestSlowReadersBound: bodies that only their write holds (not cached)
// count against limits.max_write_bytes; past it a response is refused with
// 503, Retry-After and a closed connection, and counted. A cached body is
// still served, and once the slow readers are gone the bytes are free again.
func TestSlowReadersBound(t *testing.T) {
	n := startBig(t, "max_write_bytes: 20971520") // room for two 8 MiB bodies
	if st, _, size, err := getBody(n.Addr, "/big/cached"); err != nil || st != 200 || size != 8<<20 {
		t.Fatalf("warming: %d, %d bytes, %v", st, size, err)
	}
	waitMetric(t, n, zero, "wedge_edge_writes") // the fast reader's write is done
	var held []net.Conn
	for i := range 2 {
		held = append(held, slowReader(t, n.Addr, "/big/nostore"))
		waitMetric(t, n, atLeast(float64(i+1)*(8<<20)), "wedge_edge_write_bytes")
	}

	resp, body, _, closed := exchange(t, n.Addr, "GET /big/nostore HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "slow clients") || !closed {
		t.Fatalf("past max_write_bytes: %d Retry-After %q body %q (%d bytes), connection closed %t; want 503, Retry-After, closed",
			resp.StatusCode, resp.Header.Get("Retry-After"), body[:min(len(body), 80)], len(body), closed)
	}
	if r := metric(t, n, "wedge_edge_write_refused_total"); r != 1 {
		t.Errorf("write_refused_total %v, want 1", r)
	}
	if b := metric(t, n, "wedge_edge_write_bytes"); b > 20971520 {
		t.Errorf("write_bytes %v past max_write_bytes", b)
	}
	// A cached body costs nothing more, so it is served all the same.
	if st, cs, size, err := getBody(n.Addr, "/big/cached"); err != nil || st != 200 || size != 8<<20 || !strings.Contains(cs, "hit") {
		t.Fatalf("cached body at the bound: %d, %d bytes, Cache-Status %q, %v", st, size, cs, err)
	}

	for _, c := range held {
		c.Close()
	}
	waitMetric(t, n, zero, "wedge_edge_write_bytes")
	if st, _, size, err := getBody(n.Addr, "/big/nostore"); err != nil || st != 200 || size != 8<<20 {
		t.Fatalf("after the slow readers left: %d, %d bytes, %v", st, size, err)
	}
}
