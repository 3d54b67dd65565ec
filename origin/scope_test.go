package origin

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
)

// TestFailureScope: every failure the origin makes says how far it
// reaches. Only an origin that cannot reach any application (none in
// rotation, every one refusing connections) is wire.ScopeOrigin; what goes
// wrong with one request after it reached an application is that
// request's own.
func TestFailureScope(t *testing.T) {
	garbage := startRaw(t, func() []byte { return []byte("HTTP/1.1 abc\r\n\r\n") })
	closer := startRaw(t, func() []byte { return nil })
	huge := startRaw(t, func() []byte { return []byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n") })
	hang := make(chan struct{})
	slow := startUpstream(t, func(ctx *fasthttp.RequestCtx) { <-hang })
	t.Cleanup(func() { close(hang) })
	dead, dead2 := deadPort(t), deadPort(t)

	for _, c := range []struct {
		name      string
		upstreams []string
		method    string
		status    uint64
		scope     uint64
	}{
		{"refused", []string{dead}, "GET", 502, wire.ScopeOrigin},
		{"every upstream refused", []string{dead, dead2}, "GET", 502, wire.ScopeOrigin},
		{"closed, then refused", []string{closer.url, dead}, "GET", 502, wire.ScopeRequest},
		{"garbage", []string{garbage.url}, "GET", 502, wire.ScopeRequest},
		{"closed", []string{closer.url}, "POST", 502, wire.ScopeRequest},
		{"too large", []string{huge.url}, "GET", 502, wire.ScopeRequest},
		{"timeout", []string{slow.url}, "GET", 504, wire.ScopeRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newProxy(t, ProxyConfig{Upstreams: c.upstreams, HealthInterval: -1, MaxResponseBody: 1000})
			req := getReq("/")
			req.Method = wire.Bytes(c.method)
			resp := serve(p, req, 300*time.Millisecond)
			if resp.Status != c.status || resp.Scope != c.scope || len(resp.Error) == 0 {
				t.Fatalf("%d %q scope %d, want %d scope %d", resp.Status, resp.Error, resp.Scope, c.status, c.scope)
			}
		})
	}

	t.Run("no healthy upstream", func(t *testing.T) {
		p := newProxy(t, ProxyConfig{Upstreams: []string{dead}, HealthInterval: time.Hour, Fall: 1})
		serve(p, getReq("/"), 5*time.Second) // refused: out of rotation
		resp := serve(p, getReq("/"), 5*time.Second)
		if resp.Status != 503 || string(resp.Error) != "no healthy upstream" || resp.Scope != wire.ScopeOrigin || !resp.OriginDown() {
			t.Fatalf("%d %q scope %d", resp.Status, resp.Error, resp.Scope)
		}
	})

	// Failures the server makes for the handler are the request's too.
	t.Run("server", func(t *testing.T) {
		o := startOrigin(t, HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
			switch string(req.Path) {
			case "/panic":
				panic("boom")
			case "/late":
				<-ctx.Done()
				<-hang
			}
		}), func(cfg *ServerConfig) { cfg.MaxTimeout = 200 * time.Millisecond })
		for path, status := range map[string]uint64{"/panic": 502, "/late": 504} {
			resp := exchange(t, o.addr, o.codec, getReq(path))
			if resp.Status != status || resp.Scope != wire.ScopeRequest || resp.OriginDown() {
				t.Errorf("%s: %d %q scope %d", path, resp.Status, resp.Error, resp.Scope)
			}
		}
	})
}

// TestProxyPassiveHealthOneURL: an application that closes the connection
// on one URL is not taken out of rotation for it; only connections it
// refuses (and failed checks) say it is down.
func TestProxyPassiveHealthOneURL(t *testing.T) {
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/drop" {
			ctx.HijackSetNoResponse(true)
			ctx.Hijack(func(net.Conn) {})
			return
		}
		ctx.SetBodyString("ok")
	})
	// Checks are too rare to matter here.
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: time.Hour, Fall: 2})
	for i := range 5 {
		resp := serve(p, getReq("/drop"), 5*time.Second)
		if resp.Status != 502 || string(resp.Error) != "upstream closed the connection" || resp.Scope != wire.ScopeRequest {
			t.Fatalf("/drop %d: %d %q scope %d", i, resp.Status, resp.Error, resp.Scope)
		}
	}
	if p.Healthy() != 1 {
		t.Fatalf("healthy upstreams %d after one URL's failures, want 1", p.Healthy())
	}
	if resp := serve(p, getReq("/"), 5*time.Second); resp.Status != 200 {
		t.Fatalf("another URL: %d %q", resp.Status, resp.Error)
	}
}
