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
