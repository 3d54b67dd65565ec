package e2e

import (
	"fmt"
	"hash/fnv"
	"net"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/internal/mix"
	"github.com/valyala/fasthttp"
)

// mixUpstream is the application behind both the plain proxy and the origin
// service in the benchmarks: it answers every path with one of a fixed set
// of JSON bodies of 1-100 KB, picked by a hash of the path, with the headers
// an API server sends.
type mixUpstream struct {
	bodies [][]byte
	etags  []string
}

func newMixUpstream(seed uint64, n int) *mixUpstream {
	g := mix.New(seed)
	u := &mixUpstream{}
	for i := range n {
		u.bodies = append(u.bodies, g.JSON(mix.BodySize(g.Rand())))
		u.etags = append(u.etags, fmt.Sprintf(`W/"%x-%d"`, i*7919, len(u.bodies[i])))
	}
	return u
}

func (u *mixUpstream) handle(ctx *fasthttp.RequestCtx) {
	h := fnv.New32a()
	h.Write(ctx.Path())
	i := int(h.Sum32()) % len(u.bodies)
	ctx.Response.Header.Set("Content-Type", "application/json; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "public, max-age=60, stale-while-revalidate=30")
	ctx.Response.Header.Set("ETag", u.etags[i])
	ctx.Response.Header.Set("Vary", "Accept-Encoding, Authorization")
	ctx.Response.Header.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.Header.Set("X-Request-Id", string(ctx.Request.Header.Peek("X-Request-Id")))
	ctx.Response.Header.Set("Surrogate-Key", "products catalog-v2")
	if ctx.IsPost() {
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.Response.Header.Set("Location", "/api/v2/products/1")
	}
	ctx.SetBody(u.bodies[i])
}

// serve runs a fasthttp server on ln until the test ends.
func serve(tb testing.TB, ln net.Listener, h fasthttp.RequestHandler) {
	tb.Helper()
	s := &fasthttp.Server{Handler: h, NoDefaultServerHeader: true, IdleTimeout: 10 * time.Second}
	go s.Serve(ln)
	tb.Cleanup(func() { s.Shutdown() })
}

// plainProxy is the baseline: a bare fasthttp reverse proxy that sends the
// client's request to upstream over pooled keep-alive HTTP/1.1, as any
// reverse proxy without Wedge would.
func plainProxy(upstream string) fasthttp.RequestHandler {
	hc := &fasthttp.HostClient{Addr: upstream, MaxConns: 1024, ReadTimeout: 10 * time.Second}
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Header.Del("Connection")
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error("bad gateway: "+err.Error(), fasthttp.StatusBadGateway)
			return
		}
		ctx.Response.Header.Del("Connection")
	}
}
