//go:build !race

package edge_test

import "testing"

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
	if a := testing.AllocsPerRun(1000, func() { serveHit(t, h, ctx, r) }); a != 0 {
		t.Fatalf("%v allocations per hit, want 0", a)
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
	if a := testing.AllocsPerRun(1000, reject); a != 0 {
		t.Fatalf("%v allocations per answer, want 0", a)
	}
}
