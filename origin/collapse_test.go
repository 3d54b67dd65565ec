package origin

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
)

// gatedUpstream holds its first request until open is called and answers
// every request with header fields from hdr.
func gatedUpstream(t *testing.T, hdr map[string]string) (*testUpstream, func(), *atomic.Int32) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	var n atomic.Int32
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if n.Add(1) == 1 {
			<-gate
		}
		for k, v := range hdr {
			ctx.Response.Header.Add(k, v)
		}
		ctx.SetBodyString("body of " + string(ctx.Path()))
	})
	t.Cleanup(open)
	return u, open, &n
}

// waiting returns how many followers wait on the flight for req.
func waiting(p *Proxy, req *wire.Request) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flights {
		if bytes.Equal(f.key, appendKey(nil, req)) {
			return f.waiting
		}
	}
	return -1
}

func runConcurrently(p *Proxy, n int, mk func() *wire.Request, d time.Duration) []*wire.Response {
	out := make([]*wire.Response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = serve(p, mk(), d)
		}()
	}
	wg.Wait()
	return out
}

func TestCollapse(t *testing.T) {
	u, open, _ := gatedUpstream(t, map[string]string{"Cache-Control": "public, max-age=60"})
	reg := newRegistry()
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1, Metrics: NewMetrics(reg)})
	const n = 10
	mk := func() *wire.Request {
		r := getReq("/page")
		r.AddHeader([]byte("Accept-Encoding"), []byte("gzip"))
		return r
	}
	var resps []*wire.Response
	done := make(chan struct{})
	go func() { resps = runConcurrently(p, n, mk, 10*time.Second); close(done) }()
	testutil.Eventually(t, 10*time.Second, "all followers to wait", func() bool { return waiting(p, mk()) == n-1 })
	open()
	<-done

	if got := u.count(); got != 1 {
		t.Errorf("upstream saw %d requests, want 1", got)
	}
	var shared uint64
	for i, r := range resps {
		if r.Status != 200 || string(r.Body) != "body of /page" {
			t.Errorf("response %d: %d %q %q", i, r.Status, r.Body, r.Error)
		}
		if cc, _ := wire.Get(r.Header, "cache-control"); string(cc) != "public, max-age=60" {
			t.Errorf("response %d: Cache-Control %q", i, cc)
		}
		shared += r.Cache.Shared
	}
	if shared != n-1 {
		t.Errorf("Shared adds up to %d, want %d", shared, n-1)
	}
	if got := metric(t, reg, "wedge_origin_collapsed_total"); got != n-1 {
		t.Errorf("collapsed_total %v", got)
	}
	p.mu.Lock()
	if len(p.flights) != 0 {
		t.Errorf("%d flights left", len(p.flights))
	}
	p.mu.Unlock()
}

func TestCollapseNotShareable(t *testing.T) {
	for _, hdr := range []map[string]string{
		// No lifetime of its own: an API's answer per X-Api-Key or per
		// address, which the key does not hold, must reach only its own
		// client.
		{"Content-Type": "application/json"},
		{"Cache-Control": "public"},
		{"Cache-Control": "max-age=0"},
		{"Last-Modified": "Sun, 01 Nov 2026 10:00:00 GMT"},
		{"Set-Cookie": "session=abc"},
		{"Cache-Control": "private, max-age=60"},
		{"Cache-Control": "no-store"},
		{"Vary": "Accept, *"},
	} {
		u, open, _ := gatedUpstream(t, hdr)
		reg := newRegistry()
		p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1, Metrics: NewMetrics(reg)})
		const n = 5
		mk := func() *wire.Request { return getReq("/me") }
		var resps []*wire.Response
		done := make(chan struct{})
		go func() { resps = runConcurrently(p, n, mk, 10*time.Second); close(done) }()
		testutil.Eventually(t, 10*time.Second, "all followers to wait", func() bool { return waiting(p, mk()) == n-1 })
		open()
		<-done
		if got := u.count(); got != n {
			t.Errorf("%v: upstream saw %d requests, want each of %d", hdr, got, n)
		}
		for i, r := range resps {
			if r.Status != 200 || string(r.Body) != "body of /me" || r.Cache.Shared != 0 {
				t.Errorf("%v: response %d: %d %q shared %d", hdr, i, r.Status, r.Body, r.Cache.Shared)
			}
		}
		if got := metric(t, reg, "wedge_origin_collapsed_total"); got != 0 {
			t.Errorf("%v: collapsed_total %v", hdr, got)
		}
	}
}

func TestCollapseFollowerDeadline(t *testing.T) {
	u, open, _ := gatedUpstream(t, nil)
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1})
	leader := make(chan *wire.Response)
	// The leader's deadline is far past anything the follower's run can
	// take: it must still be held when the follower answers.
	go func() { leader <- serve(p, getReq("/x"), 10*time.Minute) }()
	testutil.Eventually(t, 10*time.Second, "the leader to reach the upstream", func() bool { return u.count() == 1 })

	const d = 50 * time.Millisecond
	start := time.Now()
	r := serve(p, getReq("/x"), d)
	took := time.Since(start)
	if r.Status != 504 || string(r.Error) != "upstream timeout" {
		t.Fatalf("follower: %d %q", r.Status, r.Error)
	}
	if took < d {
		t.Errorf("follower answered after %v with a deadline of %v", took, d)
	}
	// It answered while the leader was still held (its upstream is opened
	// only below): it left at its own deadline, not with the leader. No
	// upper bound on took: a busy machine can take any time to run it.
	select {
	case <-leader:
		t.Fatal("the leader answered before its upstream was let go")
	default:
	}
	if w := waiting(p, getReq("/x")); w != 0 {
		t.Errorf("%d followers still counted", w)
	}
	open()
	lr := <-leader
	if lr.Status != 200 || lr.Cache.Shared != 0 {
		t.Errorf("leader: %d shared %d", lr.Status, lr.Cache.Shared)
	}
	if u.count() != 1 {
		t.Errorf("upstream saw %d requests", u.count())
	}
}

func TestCollapseKey(t *testing.T) {
	base := func() *wire.Request {
		r := getReq("/k")
		r.Query = wire.Bytes("a=1")
		r.AddHeader([]byte("Accept"), []byte("text/html"))
		r.AddValue([]byte("User"), []byte("alice"))
		return r
	}
	key := func(r *wire.Request) string { return string(appendKey(nil, r)) }
	k0 := key(base())
	same := map[string]func(*wire.Request){
		"user agent": func(r *wire.Request) { r.AddHeader([]byte("User-Agent"), []byte("x")) },
		"client":     func(r *wire.Request) { r.Client = wire.Bytes("203.0.113.9") },
		"header case": func(r *wire.Request) {
			r.Header[0].Name = wire.Bytes("ACCEPT")
		},
		"request id": func(r *wire.Request) { r.ID = wire.Bytes("other") },
	}
	for name, mod := range same {
		r := base()
		mod(r)
		if key(r) != k0 {
			t.Errorf("%s changed the key", name)
		}
	}
	differ := map[string]func(*wire.Request){
		"method":        func(r *wire.Request) { r.Method = wire.Bytes("HEAD") },
		"host":          func(r *wire.Request) { r.Host = wire.Bytes("other.example") },
		"scheme":        func(r *wire.Request) { r.Scheme = wire.Bytes("http") },
		"path":          func(r *wire.Request) { r.Path = wire.Bytes("/k2") },
		"query":         func(r *wire.Request) { r.Query = wire.Bytes("a=2") },
		"accept":        func(r *wire.Request) { r.Header[0].Value = wire.Bytes("text/plain") },
		"cookie":        func(r *wire.Request) { r.AddHeader([]byte("Cookie"), []byte("s=1")) },
		"authorization": func(r *wire.Request) { r.AddHeader([]byte("Authorization"), []byte("Bearer x")) },
		"language":      func(r *wire.Request) { r.AddHeader([]byte("Accept-Language"), []byte("fr")) },
		"range":         func(r *wire.Request) { r.AddHeader([]byte("Range"), []byte("bytes=0-1")) },
		"conditional":   func(r *wire.Request) { r.AddHeader([]byte("If-None-Match"), []byte(`"e"`)) },
		"value":         func(r *wire.Request) { r.Values[0].Value = wire.Bytes("bob") },
		"no value":      func(r *wire.Request) { r.Values = nil },
		"value as path": func(r *wire.Request) { r.Values = nil; r.Path = wire.Bytes("/k\x04User\x05alice") },
	}
	for name, mod := range differ {
		r := base()
		mod(r)
		if key(r) == k0 {
			t.Errorf("%s left the key unchanged", name)
		}
	}

	for _, c := range []struct {
		name string
		mod  func(*wire.Request)
		want bool
	}{
		{"plain GET", func(*wire.Request) {}, true},
		{"HEAD", func(r *wire.Request) { r.Method = wire.Bytes("HEAD") }, true},
		{"max-age=0", func(r *wire.Request) { r.AddHeader([]byte("Cache-Control"), []byte("max-age=0")) }, true},
		{"POST", func(r *wire.Request) { r.Method = wire.Bytes("POST") }, false},
		{"GET with body", func(r *wire.Request) { r.Body = wire.Bytes("x") }, false},
		{"no-cache", func(r *wire.Request) { r.AddHeader([]byte("cache-control"), []byte("max-age=0, No-Cache")) }, false},
		{"no-store", func(r *wire.Request) { r.AddHeader([]byte("Cache-Control"), []byte("no-store")) }, false},
		{"pragma", func(r *wire.Request) { r.AddHeader([]byte("Pragma"), []byte("no-cache")) }, false},
	} {
		r := base()
		c.mod(r)
		if got := collapsible(r); got != c.want {
			t.Errorf("%s: collapsible %v, want %v", c.name, got, c.want)
		}
	}
}

func TestShareable(t *testing.T) {
	for _, c := range []struct {
		status uint64
		hdr    [][2]string
		errMsg string
		want   bool
	}{
		{200, [][2]string{{"Cache-Control", "max-age=60"}}, "", true},
		{200, nil, "", false}, // no lifetime of its own
		{200, [][2]string{{"Cache-Control", "public"}}, "", false},
		{200, [][2]string{{"Cache-Control", "public, max-age=0"}}, "", false},
		{200, [][2]string{{"Expires", time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)}}, "", true},
		{301, [][2]string{{"Cache-Control", "max-age=60"}}, "", true},
		{404, [][2]string{{"Cache-Control", "max-age=60"}}, "", true},
		{410, [][2]string{{"Vary", "Accept-Encoding"}, {"Cache-Control", "max-age=60"}}, "", true},
		{400, nil, "", false},
		{500, nil, "", false},
		{503, nil, "", false},
		{502, nil, "upstream timeout", false},
		{200, [][2]string{{"set-cookie", "a=1"}}, "", false},
		{200, [][2]string{{"Cache-Control", "public"}, {"Cache-Control", "private"}}, "", false},
		{200, [][2]string{{"Cache-Control", `no-cache="Set-Cookie"`}}, "", false},
		{200, [][2]string{{"Cache-Control", "NO-STORE"}}, "", false},
		{200, [][2]string{{"Vary", "*"}}, "", false},
		{200, [][2]string{{"Vary", "accept-encoding, Origin"}, {"Vary", "Accept-Language"}, {"Cache-Control", "max-age=60"}}, "", true},
		{200, [][2]string{{"Vary", "Accept-Encoding, User-Agent"}}, "", false},
		{200, [][2]string{{"Cache-Control", "s-maxage=10, must-revalidate"}}, "", true},
	} {
		r := &wire.Response{Status: c.status, Error: wire.Bytes(c.errMsg)}
		for _, h := range c.hdr {
			r.AddHeader([]byte(h[0]), []byte(h[1]))
		}
		if got := shareable(r); got != c.want {
			t.Errorf("%d %q %q: shareable %v, want %v", c.status, c.hdr, c.errMsg, got, c.want)
		}
	}
}

// TestCollapseFollowerHangup: a follower whose edge hangs up (its context
// cancelled before its deadline) leaves with the 499 nobody reads, not a
// 504 counted as an upstream timeout; the leader goes on.
func TestCollapseFollowerHangup(t *testing.T) {
	u, open, _ := gatedUpstream(t, nil)
	reg := newRegistry()
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1, Metrics: NewMetrics(reg)})
	leader := make(chan *wire.Response)
	go func() { leader <- serve(p, getReq("/x"), 10*time.Second) }()
	testutil.Eventually(t, 10*time.Second, "the leader to reach the upstream", func() bool { return u.count() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follower := make(chan *wire.Response)
	go func() {
		r := new(wire.Response)
		p.ServeOrigin(ctx, getReq("/x"), r)
		follower <- r
	}()
	testutil.Eventually(t, 10*time.Second, "the follower to wait", func() bool { return waiting(p, getReq("/x")) == 1 })
	cancel()
	r := <-follower
	if r.Status != connwatch.StatusClientClosed {
		t.Errorf("follower after its edge hung up: %d %q, want %d", r.Status, r.Error, connwatch.StatusClientClosed)
	}
	if got := metric(t, reg, "wedge_origin_errors_total", "kind", "timeout"); got != 0 {
		t.Errorf("errors_total{kind=timeout} %v, want 0: nothing timed out", got)
	}
	open()
	if lr := <-leader; lr.Status != 200 {
		t.Errorf("leader: %d %q", lr.Status, lr.Error)
	}
}
