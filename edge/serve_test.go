package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// startHitNode runs a node whose one route is the full chain of
// deploy/bench/edge-hit.sh (auth with an HS256 key, ratelimit by the
// verified subject with room for any benchmark, cache) in front of an
// origin that answers a cacheable 1 KiB body, and returns it with a raw
// request the chain serves from the cache once it has been made once.
func startHitNode(tb testing.TB) (*testNode, []byte) {
	tb.Helper()
	return startHitNodeWith(tb, "")
}

// startHitNodeWith is startHitNode with top-level config lines added.
func startHitNodeWith(tb testing.TB, extra string) (*testNode, []byte) {
	tb.Helper()
	body := bytes.Repeat([]byte("x"), 1024)
	addr := origintest.Start(tb, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Content-Type"), []byte("text/plain"))
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=3600"))
		resp.Body = append(resp.Body, body...)
	})).Addr
	p := plugins(tb)
	n := startNode(tb, fmt.Sprintf(`%s
origins:
  app: {addr: %q, key: %q}
routes:
  - name: full
    origin: app
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}
      - {file: %q, config: {policies: [{name: per_user, key: "value:identity-sub", limit: 2000000000, period: 1s}]}}
      - {file: %q}
`, extra, addr, origintest.Key.Text(), p["auth"], base64.RawURLEncoding.EncodeToString(jwtSecret), p["ratelimit"], p["cache"]))
	req := []byte("GET /bench HTTP/1.1\r\nHost: full\r\nUser-Agent: wrk\r\nAccept: */*\r\n" +
		"Authorization: Bearer " + jwstest.UserToken(jwtSecret, "bench") + "\r\n\r\n")
	return n, req
}

// handlerCtx is a RequestCtx holding req as if the server had read it from
// a client at 127.0.0.1, for running the node's handler without a
// connection.
func handlerCtx(tb testing.TB, req []byte) (*fasthttp.RequestCtx, *fasthttp.Request) {
	tb.Helper()
	var r fasthttp.Request
	if err := r.Read(bufio.NewReader(bytes.NewReader(req))); err != nil {
		tb.Fatal(err)
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&r, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return ctx, &r
}

// fill runs req through h once, the miss that puts its response in the
// cache.
func fill(h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx, req *fasthttp.Request) {
	req.CopyTo(&ctx.Request)
	h(ctx)
	ctx.Response.Reset()
}

// serveHit runs one request through h and checks it was a cache hit; the
// response is reset after, as the server does, which gives the body back.
func serveHit(tb testing.TB, h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx, req *fasthttp.Request) {
	req.CopyTo(&ctx.Request)
	h(ctx)
	if ctx.Response.StatusCode() != 200 || !bytes.Contains(ctx.Response.Header.Peek("Cache-Status"), []byte("hit")) {
		tb.Fatalf("not a hit: %d %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Cache-Status"))
	}
	ctx.Response.Reset()
}

// BenchmarkServeHit is a full-chain cache hit at the edge: through the
// node's handler alone (what the edge adds to the plugins: request copy,
// checks, routing, the write, metrics); through the server on one
// keep-alive in-memory connection (fasthttp's connection loop and the
// bare-LF guard as well, no kernel); and on one keep-alive TCP connection
// on 127.0.0.1 (the socket too). The client's share is in the last two.
func BenchmarkServeHit(b *testing.B) {
	n, req := startHitNode(b)
	b.Run("handler", func(b *testing.B) { benchHandlerHit(b, n, req) })
	for _, tc := range []struct {
		name string
		dial func(testing.TB, *testNode) net.Conn
	}{{"memconn", dialMem}, {"conn", dialTCP}} {
		b.Run(tc.name, func(b *testing.B) {
			get := hitOver(b, tc.dial(b, n), req)
			get()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				get()
			}
		})
	}
}

// benchHandlerHit measures a hit of req through n's handler alone, as
// BenchmarkServeHit's handler case does; the other hit benchmarks compare
// a feature off and on with it.
func benchHandlerHit(b *testing.B, n *testNode, req []byte) {
	h := n.Handler()
	ctx, r := handlerCtx(b, req)
	fill(h, ctx, r)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serveHit(b, h, ctx, r)
	}
}

// dialMem serves n on an in-memory listener and returns a client
// connection to it: the node's whole server path (Serve, the bare-LF
// guard, fasthttp's connection loop, the handler) without a socket, so an
// allocation count holds only what the process does.
func dialMem(tb testing.TB, n *testNode) net.Conn {
	tb.Helper()
	ln := fasthttputil.NewInmemoryListener()
	go n.Serve(ln)
	c, err := ln.Dial()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// dialTCP opens a client connection to n's TCP listener on 127.0.0.1.
func dialTCP(tb testing.TB, n *testNode) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// hitOver sends req once over c, the miss that fills the cache, and
// returns a function that sends it again on the same keep-alive
// connection and checks the answer is a cache hit. It reuses one response
// and one reader, so the client allocates nothing per request.
func hitOver(tb testing.TB, c net.Conn, req []byte) func() {
	tb.Helper()
	br := bufio.NewReader(c)
	var resp fasthttp.Response
	send := func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		resp.Reset()
		if err := resp.Read(br); err != nil {
			tb.Fatal(err)
		}
	}
	send()
	return func() {
		send()
		if resp.StatusCode() != 200 || !bytes.Contains(resp.Header.Peek("Cache-Status"), []byte("hit")) {
			tb.Fatalf("not a hit: %d %q", resp.StatusCode(), resp.Header.Peek("Cache-Status"))
		}
	}
}
