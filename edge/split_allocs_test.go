//go:build !race

package edge_test

import (
	"context"
	"testing"

	"github.com/talowa/wedge/edge"
)

// TestServeSplitAllocs holds a full-chain cache hit whose auth step runs a
// canary split by a header, or by a cookie, to zero host allocations once
// warm, as TestServeHitAllocs does without a split: finding the split's
// value reads the header section in place.
func TestServeSplitAllocs(t *testing.T) {
	for _, split := range []string{"header:X-User", "cookie:uid"} {
		t.Run(split, func(t *testing.T) {
			n, req := startHitNode(t)
			// The whole share, so every request takes the same side and
			// still looks its key up.
			rel := map[string]*edge.Release{"auth": {Canary: &edge.Release{Version: "c1"}, Share: 100, Split: split}}
			if err := n.SetReleases(context.Background(), rel); err != nil {
				t.Fatal(err)
			}
			req = append(req[:len(req)-2:len(req)-2], "X-User: u-42\r\nCookie: theme=dark; uid=u-42\r\n\r\n"...)
			h := n.Handler()
			ctx, r := handlerCtx(t, req)
			fill(h, ctx, r)
			for range 10 {
				serveHit(t, h, ctx, r)
			}
			if a := leastAllocs(func() { serveHit(t, h, ctx, r) }); a != 0 {
				t.Fatalf("%v allocations per hit, want 0", a)
			}
			for _, h := range n.Health() {
				if h.Plugin == "auth" && h.Version == "c1" && h.Requests > 0 {
					return
				}
			}
			t.Fatalf("health %+v: the auth canary c1 served nothing", n.Health())
		})
	}
}
