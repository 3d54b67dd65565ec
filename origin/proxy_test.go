package origin

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
)

// serve runs req through p with a deadline of d.
func serve(p *Proxy, req *wire.Request, d time.Duration) *wire.Response {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp := new(wire.Response)
	p.ServeOrigin(ctx, req, resp)
	return resp
}

// deadPort returns an address on 127.0.0.1 that refuses connections.
func deadPort(t *testing.T) string {
	t.Helper()
	return "http://" + testutil.RefusedAddr(t)
}

// rawUpstream reads one request head per connection, counts it and answers
// with reply's bytes (nil: close the connection unanswered).
type rawUpstream struct {
	url  string
	hits atomic.Int32
}

func startRaw(t *testing.T, reply func() []byte) *rawUpstream {
	t.Helper()
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	r := &rawUpstream{url: "http://" + ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				r.hits.Add(1)
				if b := reply(); b != nil {
					c.Write(b)
				}
			}()
		}
	}()
	return r
}

func TestProxyRequest(t *testing.T) {
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetBody(ctx.PostBody())
	})
	reg := newRegistry()
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, Metrics: NewMetrics(reg)})
	o := startOrigin(t, p, nil)

	body := []byte{0, 1, 2, 0xff, '\r', '\n', 0xfe}
	req := &wire.Request{Method: wire.Bytes("PATCH"), Scheme: wire.Bytes("https"), Host: wire.Bytes("app.example:8443"),
		Path: wire.Bytes("/a%2Fb/../c//d"), Query: wire.Bytes("x=1&y=%20"), Client: wire.Bytes("2001:db8::7"),
		Body: body, Timeout: 5_000_000, ID: wire.Bytes("edge-42")}
	for _, f := range [][2]string{
		{"accept", "text/html"},
		{"X-Request-ID", "chosen-by-the-client"},
		{"X-Dup", "1"},
		{"Connection", "keep-alive, X-Hop"},
		{"X-Hop", "this hop only"},
		{"Keep-Alive", "timeout=5"},
		{"TE", "trailers"},
		{"Upgrade", "websocket"},
		{"Proxy-Authorization", "Basic x"},
		{"Transfer-Encoding", "chunked"},
		{"Content-Length", "999"},
		{"Host", "spoofed.example"},
		{"wedge-value-user", "mallory"},
		// Spellings a CGI-style gateway reads as Wedge-Value-User too.
		{"Wedge_Value_User", "mallory"},
		{"WEDGE_VALUE_USER", "mallory"},
		{"wedge-value_user", "mallory"},
		{"Proxy", "http://evil.example"}, // HTTP_PROXY (httpoxy)
		{"X_Custom", "kept"},             // '_' in a name is fine otherwise
		{"X-Forwarded-For", "198.51.100.1"},
		{"Forwarded", "for=198.51.100.1"},
		// The scheme, host and address the client claims: the edge's
		// are the application's to trust.
		{"X-Forwarded-Proto", "http"},
		{"x-forwarded-host", "evil.example"},
		{"X-Real-IP", "6.6.6.6"},
		{"X-Dup", "2"},
		{"Bad Name", "x"},
		{"X-Bad-Value", "a\r\nInjected: 1"},
		{"cOOkie", "a=1"},
	} {
		req.AddHeader([]byte(f[0]), []byte(f[1]))
	}
	req.AddValue([]byte("User"), []byte("alice"))
	req.AddValue([]byte("Tenant"), []byte("t-1"))
	req.AddValue([]byte("Bad\nName"), []byte("x"))

	resp := exchange(t, o.addr, o.codec, req)
	if resp.Status != 200 || !bytes.Equal(resp.Body, body) {
		t.Fatalf("got %d %q", resp.Status, resp.Body)
	}
	want := []string{
		"Host: app.example:8443",
		"accept: text/html",
		"X-Dup: 1",
		"X_Custom: kept",
		"X-Dup: 2",
		"cOOkie: a=1",
		"X-Real-Ip: 2001:db8::7",
		"X-Forwarded-Proto: https",
		"X-Forwarded-Host: app.example:8443",
		"X-Forwarded-For: 198.51.100.1, 2001:db8::7",
		`Forwarded: for=198.51.100.1, for="[2001:db8::7]";proto=https;host="app.example:8443"`,
		"X-Request-Id: edge-42",
		"Wedge-Value-User: alice",
		"Wedge-Value-Tenant: t-1",
		"Content-Length: 7",
	}
	if got := headerLines(u.lastRaw()); !slices.Equal(got, want) {
		t.Errorf("upstream saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	u.mu.Lock()
	if gotBody := u.body[len(u.body)-1]; !bytes.Equal(gotBody, body) {
		t.Errorf("upstream body %q", gotBody)
	}
	u.mu.Unlock()
	if got := metric(t, reg, "wedge_origin_upstream_requests_total", "upstream", u.addr, "outcome", "ok"); got != 1 {
		t.Errorf("upstream requests ok = %v, want 1", got)
	}
}

func TestProxyRequestTarget(t *testing.T) {
	var uri atomic.Value
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		uri.Store(string(ctx.Request.Header.RequestURI()))
		if string(ctx.Request.Header.Method()) == "HEAD" {
			ctx.Response.Header.Set("Content-Length", "5")
			ctx.Response.SkipBody = true
		}
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}})
	for _, c := range []struct{ path, query, want string }{
		{"/a%2Fb/../c//d", "x=1&y=%20", "/a%2Fb/../c//d?x=1&y=%20"},
		{"", "", "/"},
		{"/p", "", "/p"},
	} {
		req := getReq(c.path)
		req.Query = wire.Bytes(c.query)
		if resp := serve(p, req, 5*time.Second); resp.Status != 200 || uri.Load() != c.want {
			t.Errorf("%q?%q: %d, upstream saw %q, want %q", c.path, c.query, resp.Status, uri.Load(), c.want)
		}
	}
	// A Host-less request names the upstream.
	var host atomic.Value
	u2 := startUpstream(t, func(ctx *fasthttp.RequestCtx) { host.Store(string(ctx.Host())) })
	p2 := newProxy(t, ProxyConfig{Upstreams: []string{u2.url}})
	req := getReq("/")
	req.Host = nil
	if resp := serve(p2, req, 5*time.Second); resp.Status != 200 || host.Load() != u2.addr {
		t.Errorf("host-less: %d, upstream saw Host %q", resp.Status, host.Load())
	}
}

func TestProxyRefusesBrokenRequestLine(t *testing.T) {
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {})
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1})
	for _, mod := range []func(*wire.Request){
		func(r *wire.Request) { r.Method = wire.Bytes("GET /x HTTP/1.1\r\nX:") },
		func(r *wire.Request) { r.Path = wire.Bytes("/a b") },
		func(r *wire.Request) { r.Query = wire.Bytes("a=1\r\nHost: evil") },
		func(r *wire.Request) { r.Path = wire.Bytes("https://evil.example/x") },
		func(r *wire.Request) { r.Path = wire.Bytes("x") },
	} {
		r := getReq("/")
		mod(r)
		if resp := serve(p, r, 5*time.Second); resp.Status != 400 {
			t.Errorf("%q %q %q: %d", r.Method, r.Path, r.Query, resp.Status)
		}
	}
	if u.count() != 0 {
		t.Errorf("upstream saw %d requests", u.count())
	}
}

func TestProxyResponse(t *testing.T) {
	body := []byte{0xff, 0, 'x', '\r', '\n'}
	u := startRaw(t, func() []byte {
		h := "HTTP/1.1 203 Fine\r\n" +
			"Content-Type: application/octet-stream\r\n" +
			"Set-Cookie: a=1\r\n" +
			"x-lower: 1\r\n" +
			"Connection: X-Hop\r\n" +
			"X-Hop: gone\r\n" +
			"Keep-Alive: timeout=5\r\n" +
			"Set-Cookie: b=2\r\n" +
			"X-Dup: 1\r\n" +
			"Surrogate-Key: k1  k2\r\n" +
			"Cache-Tag: t1, t2,\r\n" +
			"Proxy-Authenticate: Basic\r\n" +
			"Bad Name: dropped\r\n" +
			"X-Dup: 2\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		return append([]byte(h), body...)
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}})
	resp := serve(p, getReq("/"), 5*time.Second)
	if resp.Status != 203 || !bytes.Equal(resp.Body, body) {
		t.Fatalf("got %d %q %q", resp.Status, resp.Body, resp.Error)
	}
	var got []string
	for _, f := range resp.Header {
		got = append(got, string(f.Name)+": "+string(f.Value))
	}
	want := []string{
		"Content-Type: application/octet-stream",
		"Set-Cookie: a=1",
		"Set-Cookie: b=2",
		"x-lower: 1",
		"X-Dup: 1",
		"Surrogate-Key: k1  k2",
		"Cache-Tag: t1, t2,",
		"X-Dup: 2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("header\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var tags []string
	for _, tg := range resp.Cache.Tags {
		tags = append(tags, string(tg))
	}
	if !slices.Equal(tags, []string{"k1", "k2", "t1", "t2"}) {
		t.Errorf("tags %q", tags)
	}
}

// TestProxyInventsNoContentType: an answer without Content-Type reaches
// the edge without one, a 304's included; with fasthttp's default it
// came as text/plain, and a cache updating a stored image from the 304
// served the image as text.
func TestProxyInventsNoContentType(t *testing.T) {
	for _, head := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
		"HTTP/1.1 304 Not Modified\r\nETag: \"e1\"\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
	} {
		u := startRaw(t, func() []byte { return []byte(head) })
		p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}})
		resp := serve(p, getReq("/"), 5*time.Second)
		if resp.Status/100 != 2 && resp.Status != 304 {
			t.Fatalf("%q: got %d %q", head, resp.Status, resp.Error)
		}
		for _, f := range resp.Header {
			if strings.EqualFold(string(f.Name), "Content-Type") {
				t.Errorf("%q: the envelope has Content-Type %q, which the upstream never sent", head, f.Value)
			}
		}
	}
}

func TestProxyErrors(t *testing.T) {
	garbage := startRaw(t, func() []byte { return []byte("HTTP/1.1 abc\r\n\r\n") })
	closer := startRaw(t, func() []byte { return nil })
	huge := startRaw(t, func() []byte { return []byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n") })
	hang := make(chan struct{})
	slow := startUpstream(t, func(ctx *fasthttp.RequestCtx) { <-hang })
	t.Cleanup(func() { close(hang) }) // before the upstream's own cleanup

	for _, c := range []struct {
		name, upstream, method string
		status                 uint64
		reason                 string
	}{
		{"refused", deadPort(t), "GET", 502, "upstream refused the connection"},
		{"garbage", garbage.url, "GET", 502, "upstream sent an invalid response: malformed status line"},
		{"closed", closer.url, "POST", 502, "upstream closed the connection"},
		{"too large", huge.url, "GET", 502, "upstream response too large"},
		{"timeout", slow.url, "GET", 504, "upstream timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newProxy(t, ProxyConfig{Upstreams: []string{c.upstream}, HealthInterval: -1, MaxResponseBody: 1000})
			req := getReq("/")
			req.Method = wire.Bytes(c.method)
			start := time.Now()
			resp := serve(p, req, 300*time.Millisecond)
			if resp.Status != c.status || string(resp.Error) != c.reason || string(resp.Body) != c.reason+"\n" {
				t.Fatalf("got %d %q %q, want %d %q", resp.Status, resp.Error, resp.Body, c.status, c.reason)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v with a 300ms deadline", took)
			}
			if ct, _ := wire.Get(resp.Header, "content-type"); !strings.HasPrefix(string(ct), "text/plain") {
				t.Errorf("content type %q", ct)
			}
		})
	}
}

func TestProxyFailover(t *testing.T) {
	good := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("good") })
	reg := newRegistry()
	m := NewMetrics(reg)
	dead := deadPort(t)
	// No health tracking, so the dead upstream stays in rotation and every
	// other request has to fail over.
	p := newProxy(t, ProxyConfig{Upstreams: []string{dead, good.url}, HealthInterval: -1, Metrics: m})
	for i := range 10 {
		req := getReq("/")
		req.Method = wire.Bytes("POST") // not idempotent: only a dial failure may move it
		req.Body = wire.Bytes("b" + strconv.Itoa(i))
		if resp := serve(p, req, 5*time.Second); resp.Status != 200 || string(resp.Body) != "good" {
			t.Fatalf("request %d: %d %q", i, resp.Status, resp.Error)
		}
	}
	if good.count() != 10 {
		t.Errorf("good upstream saw %d requests", good.count())
	}
	deadName := strings.TrimPrefix(dead, "http://")
	if got := metric(t, reg, "wedge_origin_upstream_requests_total", "upstream", deadName, "outcome", "dial_error"); got != 5 {
		t.Errorf("dial errors on the dead upstream: %v, want 5", got)
	}
}

// TestProxyFailoverHungConnect: an upstream whose connections hang (here
// an https one that accepts and never answers the TLS handshake, as a
// host behind a firewall that drops packets never answers a SYN) costs a
// request ConnectTimeout, counts as a dial error, and the request moves
// on. It cost the whole budget: a 504, no failover, not counted.
func TestProxyFailoverHungConnect(t *testing.T) {
	good := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("good") })
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hung.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	reg := newRegistry()
	p := newProxy(t, ProxyConfig{Upstreams: []string{"https://" + hung.Addr().String(), good.url}, HealthInterval: -1,
		ConnectTimeout: 100 * time.Millisecond, Metrics: NewMetrics(reg)})
	for i := range 4 {
		req := getReq("/")
		req.Method = wire.Bytes("POST") // not idempotent: only a connect that failed may move it
		if resp := serve(p, req, time.Minute); resp.Status != 200 || string(resp.Body) != "good" {
			t.Fatalf("request %d: %d %q", i, resp.Status, resp.Error)
		}
	}
	if got := metric(t, reg, "wedge_origin_upstream_requests_total", "upstream", hung.Addr().String(), "outcome", "dial_error"); got < 1 {
		t.Errorf("dial errors on the hung upstream: %v, want its connects counted", got)
	}
}

// TestProxyFailoverAcrossSchemes fails over from an https upstream to an
// http one: the request must go out with the second upstream's scheme.
func TestProxyFailoverAcrossSchemes(t *testing.T) {
	good := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("good") })
	dead := "https://" + strings.TrimPrefix(deadPort(t), "http://")
	p := newProxy(t, ProxyConfig{Upstreams: []string{dead, good.url}, HealthInterval: -1})
	for i := range 6 {
		if resp := serve(p, getReq("/"), 5*time.Second); resp.Status != 200 || string(resp.Body) != "good" {
			t.Fatalf("request %d: %d %q", i, resp.Status, resp.Error)
		}
	}
}

func TestProxyRetriesOnlyIdempotent(t *testing.T) {
	closer := startRaw(t, func() []byte { return nil })
	good := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("good") })
	p := newProxy(t, ProxyConfig{Upstreams: []string{closer.url, good.url}, HealthInterval: -1})
	failed := 0
	for i := range 10 {
		req := getReq("/")
		req.Method = wire.Bytes("POST")
		resp := serve(p, req, 5*time.Second)
		switch {
		case resp.Status == 200:
		case resp.Status == 502 && string(resp.Error) == "upstream closed the connection":
			failed++
		default:
			t.Fatalf("POST %d: %d %q", i, resp.Status, resp.Error)
		}
	}
	// A POST that reached the closing upstream must not be sent again.
	if failed == 0 || int(closer.hits.Load()) != failed || good.count() != 10-failed {
		t.Errorf("POSTs: %d failed, closer saw %d, good saw %d", failed, closer.hits.Load(), good.count())
	}
	for i := range 10 {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			req := getReq("/")
			req.Method = wire.Bytes(m)
			if resp := serve(p, req, 5*time.Second); resp.Status != 200 || string(resp.Body) != "good" {
				t.Fatalf("%s %d: %d %q", m, i, resp.Status, resp.Error)
			}
		}
	}
}

func TestProxyHealthChecks(t *testing.T) {
	var sick atomic.Bool
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/_health" && sick.Load() {
			ctx.SetStatusCode(503)
			return
		}
		ctx.SetBodyString("ok")
	})
	reg := newRegistry()
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthPath: "/_health", HealthInterval: 10 * time.Millisecond,
		Metrics: NewMetrics(reg)})
	name := u.addr
	if resp := serve(p, getReq("/"), 5*time.Second); resp.Status != 200 {
		t.Fatalf("healthy: %d %q", resp.Status, resp.Error)
	}
	sick.Store(true)
	testutil.Eventually(t, 10*time.Second, "upstream out of rotation", func() bool { return p.Healthy() == 0 })
	if g := metric(t, reg, "wedge_origin_upstream_healthy", "upstream", name); g != 0 {
		t.Errorf("healthy gauge %v", g)
	}
	resp := serve(p, getReq("/"), 5*time.Second)
	if resp.Status != 503 || string(resp.Error) != "no healthy upstream" {
		t.Fatalf("while down: %d %q", resp.Status, resp.Error)
	}
	sick.Store(false)
	testutil.Eventually(t, 10*time.Second, "upstream back in rotation", func() bool { return p.Healthy() == 1 })
	if g := metric(t, reg, "wedge_origin_upstream_healthy", "upstream", name); g != 1 {
		t.Errorf("healthy gauge %v", g)
	}
	if resp := serve(p, getReq("/"), 5*time.Second); resp.Status != 200 {
		t.Fatalf("after recovery: %d %q", resp.Status, resp.Error)
	}
}

func TestProxyPassiveHealth(t *testing.T) {
	good := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("good") })
	reg := newRegistry()
	dead := deadPort(t)
	// Checks are too rare to matter here: failing requests take it out.
	p := newProxy(t, ProxyConfig{Upstreams: []string{dead, good.url}, HealthInterval: time.Hour, Fall: 2,
		Metrics: NewMetrics(reg)})
	for i := range 20 {
		if resp := serve(p, getReq("/"), 5*time.Second); resp.Status != 200 {
			t.Fatalf("request %d: %d %q", i, resp.Status, resp.Error)
		}
	}
	if p.Healthy() != 1 {
		t.Errorf("healthy upstreams %d, want 1", p.Healthy())
	}
	deadName := strings.TrimPrefix(dead, "http://")
	if got := metric(t, reg, "wedge_origin_upstream_requests_total", "upstream", deadName, "outcome", "dial_error"); got != 2 {
		t.Errorf("dial errors %v, want exactly Fall = 2 before it left rotation", got)
	}
}

func TestProxyBalancing(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	h := func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/slow" {
			<-gate
		}
	}
	a, b := startUpstream(t, h), startUpstream(t, h)
	t.Cleanup(open)
	p := newProxy(t, ProxyConfig{Upstreams: []string{a.url, b.url}, HealthInterval: -1})

	// Idle upstreams tie, and ties go round robin.
	for range 20 {
		if resp := serve(p, getReq("/"), 5*time.Second); resp.Status != 200 {
			t.Fatalf("%d %q", resp.Status, resp.Error)
		}
	}
	if a.count() != 10 || b.count() != 10 {
		t.Fatalf("spread %d/%d, want 10/10", a.count(), b.count())
	}

	// A busy upstream gets nothing while the other is idle.
	done := make(chan *wire.Response)
	go func() { done <- serve(p, getReq("/slow"), 10*time.Second) }()
	testutil.Eventually(t, 5*time.Second, "the slow request to arrive", func() bool { return a.count()+b.count() == 21 })
	busy, idle := a, b
	if b.count() == 11 {
		busy, idle = b, a
	}
	for range 6 {
		if resp := serve(p, getReq("/"), 5*time.Second); resp.Status != 200 {
			t.Fatalf("%d %q", resp.Status, resp.Error)
		}
	}
	if busy.count() != 11 || idle.count() != 16 {
		t.Errorf("busy upstream saw %d (want 11), idle %d (want 16)", busy.count(), idle.count())
	}
	open()
	if resp := <-done; resp.Status != 200 {
		t.Errorf("slow: %d %q", resp.Status, resp.Error)
	}
}

func TestProxyConfig(t *testing.T) {
	for _, ups := range [][]string{
		nil,
		{"ftp://x:1"},
		{"http://"},
		{"http://h:1/app"},
		{"http://h:1?x"},
		{"http://u:p@h:1"},
		{"http://h:1", "http://h:1/"},
		{"%%"},
	} {
		if _, err := NewProxy(ProxyConfig{Upstreams: ups}); err == nil {
			t.Errorf("upstreams %q accepted", ups)
		}
	}
	many := make([]string, 65)
	for i := range many {
		many[i] = "http://127.0.0.1:" + strconv.Itoa(1000+i)
	}
	if _, err := NewProxy(ProxyConfig{Upstreams: many}); err == nil {
		t.Error("65 upstreams accepted")
	}
	p, err := NewProxy(ProxyConfig{Upstreams: []string{"http://127.0.0.1", "https://[::1]"}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.ups[0].name != "127.0.0.1:80" || p.ups[1].name != "[::1]:443" || !p.ups[1].tls {
		t.Errorf("upstreams %s %s", p.ups[0].name, p.ups[1].name)
	}
}

// TestProxyNeverHangs sends requests at an upstream that accepts and then
// says nothing, with deadlines from 1 ms up: each answer comes by its
// deadline plus scheduling slack.
func TestProxyNeverHangs(t *testing.T) {
	p := newProxy(t, ProxyConfig{Upstreams: []string{"http://" + testutil.Silent(t)}, HealthInterval: -1})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := time.Duration(i+1) * 5 * time.Millisecond
			start := time.Now()
			resp := serve(p, getReq("/"), d)
			if resp.Status != 504 {
				t.Errorf("deadline %v: %d %q", d, resp.Status, resp.Error)
			}
			if took := time.Since(start); took > d+time.Second {
				t.Errorf("deadline %v: answered after %v", d, took)
			}
		}()
	}
	wg.Wait()
}
