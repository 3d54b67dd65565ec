package edge_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// BenchmarkLimitScope is the request-path cost of a rate limit a region
// shares against one a POP keeps alone: a whole request through the node's
// handler, the ratelimit plugin taking from a policy keyed by X-Id and the
// cache answering, with the policy's scope pop or region. The node keeps
// the usage of region-scoped keys for the exchange, as a POP on the
// control plane does; the exchange itself runs in the background, off the
// request path, and is not measured. cpu-ns/op is the process's CPU per
// request, which a busy machine does not inflate as it does ns/op.
//
//	flock /tmp/wedge-bench.lock go test -run '^$' -bench LimitScope -count 5 ./edge/
func BenchmarkLimitScope(b *testing.B) {
	addr := origintest.Start(b, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=3600"))
		resp.Body = append(resp.Body, "limited"...)
	})).Addr
	p := plugins(b)
	for _, scope := range []string{"pop", "region"} {
		b.Run(scope, func(b *testing.B) {
			n := startNode(b, fmt.Sprintf(`
pop: bench-1
region: eu-bench
origins:
  app: {addr: %q, key: %q}
routes:
  - name: limited
    origin: app
    chain:
      - {file: %q, config: {policies: [{name: per_id, key: "header:X-Id", limit: 2000000000, period: 1s, scope: %s}]}}
      - {file: %q}
`, addr, origintest.Key.Text(), p["ratelimit"], scope, p["cache"]))
			n.Limits().SetSyncing(true)
			h := n.Handler()
			ctx, r := handlerCtx(b, []byte("GET /limited HTTP/1.1\r\nHost: limited\r\nX-Id: alice\r\n\r\n"))
			fill(h, ctx, r)
			b.ReportAllocs()
			cpu := wasmtest.ReportCPU(b)
			for b.Loop() {
				serveHit(b, h, ctx, r)
			}
			cpu()
			// The takes were of the scope named: a region's are kept for
			// the exchange, a POP's are not.
			kept := 0
			n.Limits().Drain(func(host.Scope, string, host.Usage) { kept++ })
			if want := map[string]int{"pop": 0, "region": 1}[scope]; kept != want {
				b.Fatalf("scope %s: %d keys kept for the exchange, want %d", scope, kept, want)
			}
		})
	}
}
