//go:build !race

package edge_test

import (
	"bytes"
	"testing"
)

// TestServeHitAllocs holds the edge's own share of a full-chain cache hit
// (request copy, checks, routing, three plugin calls, the write, metrics)
// to zero host allocations once the node is warm.
func TestServeHitAllocs(t *testing.T) {
	n, req := startHitNode(t)
	h := n.Handler()
	ctx, r := handlerCtx(t, req)
	fill(h, ctx, r)
	for range 10 {
		serveHit(t, h, ctx, r)
	}
	if a := leastAllocs(func() { serveHit(t, h, ctx, r) }); a != 0 {
		t.Fatalf("%v allocations per hit, want 0", a)
	}
}

// TestServeConnHitAllocs holds a full-chain cache hit through the whole
// server (Serve on an in-memory listener: fasthttp's connection loop, the
// bare-LF guard, the handler, the write, and the client's side of the
// keep-alive connection) to one allocation once warm. That one is
// fasthttp's, not ours: with ReduceMemoryUsage, which keeps an idle
// connection down to its goroutine (see the package doc), fasthttp waits
// for each next request with a 1-byte read whose array escapes through the
// net.Conn interface (acquireByteReader), so each request on a kept-alive
// connection costs a tiny allocation; a bare fasthttp server with the same
// setting measures the same. Everything the edge adds stays at zero
// (TestServeHitAllocs).
func TestServeConnHitAllocs(t *testing.T) {
	const budget = 1 // fasthttp's idle 1-byte read, above
	n, req := startHitNode(t)
	get := hitOver(t, dialMem(t, n), req)
	for range 10 {
		get()
	}
	if a := leastAllocs(get); a > budget {
		t.Fatalf("%v allocations per hit, want at most %d", a, budget)
	}
}

// TestServeAnswerAllocs holds a request a plugin answers with a body of
// its own (auth's 401 and its challenge text) to zero host allocations
// once warm: the body goes to fasthttp in a pooled buffer, not a copy.
func TestServeAnswerAllocs(t *testing.T) {
	n, _ := startHitNode(t)
	h := n.Handler()
	ctx, r := handlerCtx(t, []byte("GET /bench HTTP/1.1\r\nHost: full\r\n\r\n"))
	reject := func() {
		r.CopyTo(&ctx.Request)
		h(ctx)
		if ctx.Response.StatusCode() != 401 || len(ctx.Response.Body()) == 0 {
			t.Fatalf("not a 401 with a body: %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		ctx.Response.Reset()
	}
	for range 10 {
		reject()
	}
	if a := leastAllocs(reject); a != 0 {
		t.Fatalf("%v allocations per answer, want 0", a)
	}
}

// leastAllocs is testing.AllocsPerRun's figure for 1000 runs of f, the
// least of three trials. AllocsPerRun counts every goroutine's
// allocations, and a node's background work (pool refills, cache
// maintenance, an earlier test's connections winding down) can land in one
// trial; an allocation on the measured path shows in all three.
func leastAllocs(f func()) float64 {
	least := testing.AllocsPerRun(1000, f)
	for range 2 {
		least = min(least, testing.AllocsPerRun(1000, f))
	}
	return least
}

// TestServeProxiedHitAllocs holds a cache hit on a kept-alive connection
// that opened with a PROXY protocol header to TestServeConnHitAllocs's
// budget: once the header is read, the library's connection and the
// node's around it add nothing per request.
func TestServeProxiedHitAllocs(t *testing.T) {
	const budget = 1 // fasthttp's idle 1-byte read (TestServeConnHitAllocs)
	n, req := startHitNodeWith(t, `proxy_protocol: {trusted: ["127.0.0.1/32"]}`)
	c := dialTCP(t, n)
	if _, err := c.Write(v1("203.0.113.7")); err != nil {
		t.Fatal(err)
	}
	get := hitOver(t, c, req)
	for range 10 {
		get()
	}
	if a := leastAllocs(get); a > budget {
		t.Fatalf("%v allocations per hit, want at most %d", a, budget)
	}
}

// TestServeTrustedProxyHitAllocs holds a cache hit from a trusted L7
// proxy (trusted_proxies) to zero host allocations once warm, with an
// X-Forwarded-For that names a client (set on the request from a pool:
// realip.go) and without one.
func TestServeTrustedProxyHitAllocs(t *testing.T) {
	n, req := startHitNodeWith(t, `trusted_proxies: ["127.0.0.1/32", "10.0.0.0/8"]`)
	h := n.Handler()
	for _, tc := range []struct{ name, xff string }{
		{"with", "X-Forwarded-For: 198.51.100.1, 2001:db8::7\r\nX-Forwarded-For: 10.0.0.1\r\n"},
		{"without", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, r := handlerCtx(t, bytes.Replace(req, []byte("\r\n\r\n"), []byte("\r\n"+tc.xff+"\r\n"), 1))
			fill(h, ctx, r)
			for range 10 {
				serveHit(t, h, ctx, r)
			}
			if a := leastAllocs(func() { serveHit(t, h, ctx, r) }); a != 0 {
				t.Fatalf("%v allocations per hit, want 0", a)
			}
		})
	}
}
