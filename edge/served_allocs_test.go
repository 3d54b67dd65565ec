//go:build !race

package edge_test

import (
	"bytes"
	"fmt"
	"regexp"
	"testing"

	"github.com/talowa/wedge/edge"
)

// TestServeHitServedAllocs is TestServeHitAllocs with served_header on:
// naming the three versions on each hit stays at zero allocations.
func TestServeHitServedAllocs(t *testing.T) {
	n, req := startHitNodeWith(t, "served_header: true")
	h := n.Handler()
	ctx, r := handlerCtx(t, req)
	fill(h, ctx, r)
	var want []byte
	hit := func() {
		r.CopyTo(&ctx.Request)
		h(ctx)
		if !bytes.Contains(ctx.Response.Header.Peek("Cache-Status"), []byte("hit")) ||
			!bytes.Equal(ctx.Response.Header.Peek(edge.ServedHeader), want) {
			t.Fatalf("not a hit served by %q: %d %q", want, ctx.Response.StatusCode(), ctx.Response.Header.Peek(edge.ServedHeader))
		}
		ctx.Response.Reset()
	}
	r.CopyTo(&ctx.Request)
	h(ctx)
	want = bytes.Clone(ctx.Response.Header.Peek(edge.ServedHeader))
	ctx.Response.Reset()
	if !regexp.MustCompile(`^auth@\w+, ratelimit@\w+, cache@\w+$`).Match(want) {
		t.Fatalf("%s %q, want the chain's three versions", edge.ServedHeader, want)
	}
	for range 10 {
		hit()
	}
	if a := leastAllocs(hit); a != 0 {
		t.Fatalf("%v allocations per hit, want 0", a)
	}
}

// BenchmarkServeHitServed is BenchmarkServeHit's handler case with
// served_header off and on, in one run: what naming the versions costs.
func BenchmarkServeHitServed(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("served_header=%t", on), func(b *testing.B) {
			n, req := startHitNodeWith(b, fmt.Sprintf("served_header: %t", on))
			benchHandlerHit(b, n, req)
		})
	}
}
