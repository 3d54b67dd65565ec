package main

import (
	"testing"

	"github.com/talowa/wedge/wasm/abi"
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
			defer wasmtest.ReportCPU(b)()
			for b.Loop() {
				if res := p.Do(r.req); res.Resp.Status != r.status {
					b.Fatal(res.Resp.Status, string(res.Resp.Body))
				}
			}
		})
	}
}

// BenchmarkAdmitReused is an admitted request (a token already seen) as the
// edge runs it: the request phase alone on an exchange reused from request
// to request, so the figures are the plugin's and the host's, not a fresh
// exchange's per request as through Do.
func BenchmarkAdmitReused(b *testing.B) {
	k := mustKeys(b)
	c := claims(map[string]any{"iat": 1_700_000_000, "nbf": 1_700_000_000, "exp": 4_102_444_800})
	p := wasmtest.Load(b, ".", baseConfig(b, nil))
	for _, r := range []struct{ name, tok string }{
		{"HS256", sign(b, "HS256", k.hmac, "hs256", c)},
		{"ES256", sign(b, "ES256", k.p256, "es256", c)},
		{"RS256", sign(b, "RS256", k.rsa, "rs256", c)},
	} {
		req := bearerReq(r.tok)
		x := &host.MemExchange{}
		var fields []host.HeaderField
		next := func() {
			x.Reset()
			x.Req = req
			// The plugin strips Authorization: it must not strip the template's.
			fields = append(fields[:0], req.Header.Fields...)
			x.Req.Header.Fields = fields
		}
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			defer wasmtest.ReportCPU(b)()
			for b.Loop() {
				next()
				if act, err := p.OnRequest(x); act != abi.ActionContinue || err != nil {
					b.Fatal(act, err, x.Resp.Status)
				}
			}
		})
	}
}
