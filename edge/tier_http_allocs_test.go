//go:build !race

package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestServeHitTargetedAllocs: a hit on an entry that kept its targeted
// fields (every entry does, for the regional cache tier) strips them on
// the way to the client with no host allocation, as any hit.
func TestServeHitTargetedAllocs(t *testing.T) {
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("no-store"))
		resp.AddHeader([]byte("Wedge-Cache-Control"), []byte("max-age=3600"))
		resp.AddHeader([]byte("CDN-Cache-Control"), []byte("max-age=3600"))
		resp.Body = append(resp.Body, "object"...)
	})).Addr
	n := startNode(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - origin: app
    chain:
      - {file: %q, config: {strip_cdn_cache_control: true}}
`, addr, origintest.Key.Text(), plugins(t)["cache"]))
	h := n.Handler()
	ctx, r := handlerCtx(t, []byte("GET /targeted HTTP/1.1\r\nHost: any\r\n\r\n"))
	fill(h, ctx, r)
	hit := func() {
		r.CopyTo(&ctx.Request)
		h(ctx)
		hdr := &ctx.Response.Header
		if !bytes.HasPrefix(hdr.Peek("Cache-Status"), []byte("wedge; hit")) || hdr.Peek("Wedge-Cache-Control") != nil || hdr.Peek("CDN-Cache-Control") != nil {
			t.Fatalf("%d, header:\n%s", ctx.Response.StatusCode(), ctx.Response.Header.String())
		}
		ctx.Response.Reset()
	}
	for range 10 {
		hit()
	}
	if a := leastAllocs(hit); a != 0 {
		t.Fatalf("%v allocations per hit, want 0", a)
	}
}
