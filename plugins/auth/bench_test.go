package main

import (
	"testing"

	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// BenchmarkRequest measures one request as Wasm: admitted ones, and Reject,
// one without credentials (401 and a challenge). The Wasm figures are the
// ones that matter at the edge; asymmetric tokens hit the host's
// verification cache after the first iteration, as a client's repeated
// token does in production.
func BenchmarkRequest(b *testing.B) {
	k := mustKeys(b)
	cfg := baseConfig(b, nil)
	// Far-future times: the Wasm build runs on the real clock.
	c := claims(map[string]any{"iat": 1_700_000_000, "nbf": 1_700_000_000, "exp": 4_102_444_800})
	reqs := []struct {
		name   string
		req    host.Request
		status int
	}{
		{"HS256", bearerReq(sign(b, "HS256", k.hmac, "hs256", c)), 200},
		{"ES256", bearerReq(sign(b, "ES256", k.p256, "es256", c)), 200},
		{"RS256", bearerReq(sign(b, "RS256", k.rsa, "rs256", c)), 200},
		{"APIKey", get("/orders", "X-Api-Key", ciKey), 200},
		{"Public", get("/health"), 200},
		{"Reject", get("/orders"), 401},
	}
	p := wasmtest.Load(b, ".", cfg)
	for _, r := range reqs {
		b.Run("wasm/"+r.name, func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if res := p.Do(r.req); res.Resp.Status != r.status {
					b.Fatal(res.Resp.Status, string(res.Resp.Body))
				}
			}
		})
	}
}
