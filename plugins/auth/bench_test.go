package main

import (
	"testing"

	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// BenchmarkRequest measures one admitted request, natively and as Wasm. The
// Wasm figures are the ones that matter at the edge; asymmetric tokens hit
// the host's verification cache after the first iteration, as a client's
// repeated token does in production.
func BenchmarkRequest(b *testing.B) {
	k := mustKeys(b)
	cfg := baseConfig(b, nil)
	// Far-future times: the Wasm build runs on the real clock.
	c := claims(map[string]any{"iat": 1_700_000_000, "nbf": 1_700_000_000, "exp": 4_102_444_800})
	reqs := []struct {
		name string
		req  host.Request
	}{
		{"HS256", bearerReq(sign(b, "HS256", k.hmac, "hs256", c))},
		{"ES256", bearerReq(sign(b, "ES256", k.p256, "es256", c))},
		{"RS256", bearerReq(sign(b, "RS256", k.rsa, "rs256", c))},
		{"APIKey", get("/orders", "X-Api-Key", ciKey)},
		{"Public", get("/health")},
	}
	p := wasmtest.Load(b, ".", cfg)
	for _, r := range reqs {
		b.Run("wasm/"+r.name, func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if res := p.Do(r.req); res.Resp.Status != 200 {
					b.Fatal(res.Resp.Status, string(res.Resp.Body))
				}
			}
		})
	}
}
