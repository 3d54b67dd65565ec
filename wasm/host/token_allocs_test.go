//go:build !race

package host

import (
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// TestTokenVerifyHitDoesNotAllocate: a token seen before costs no
// allocation, whatever its algorithm, through the Call a guest reaches.
func TestTokenVerifyHitDoesNotAllocate(t *testing.T) {
	for _, alg := range []abi.Alg{abi.AlgHS256, abi.AlgRS256, abi.AlgES256, abi.AlgEdDSA} {
		t.Run(abi.AlgName(alg), func(t *testing.T) {
			f := newFixture(t, abi.PhaseConfigure)
			ring, ph := tokenRing(t, strictPolicy(), false, alg)
			f.env.Keys = ring
			f.now = time.Unix(tokenNow, 0)
			f.call.Reset(f.env, abi.PhaseRequest, f.ex)
			tok := jws(t, alg, abi.AlgName(alg), goodClaims(map[string]any{"scope": "a b"}))
			buf := make([]byte, 128)
			if n := f.call.TokenVerify(ph, tok, buf); n < 1 || buf[0] != abi.TokenValid {
				t.Fatalf("TokenVerify = %d, verdict %d", n, buf[0])
			}
			if a := testing.AllocsPerRun(200, func() { f.call.TokenVerify(ph, tok, buf) }); a != 0 {
				t.Errorf("%.1f allocations per call", a)
			}
		})
	}
}

// TestTokenForwardsHitDoesNotAllocate: a token seen before under a policy
// with forwards sets them without allocating, on an exchange reused as the
// edge reuses its own.
func TestTokenForwardsHitDoesNotAllocate(t *testing.T) {
	f := newFixture(t, abi.PhaseConfigure)
	ring, ph := tokenRing(t, forwardPolicy(), false, abi.AlgHS256)
	f.env.Keys = ring
	f.now = time.Unix(tokenNow, 0)
	tok := jws(t, abi.AlgHS256, "HS256", goodClaims(map[string]any{"scp": []string{"a", "b"}}))
	buf := make([]byte, 16)
	request := func() {
		f.ex.Vals.Reset()
		f.call.Reset(f.env, abi.PhaseRequest, f.ex)
		if n := f.call.TokenVerify(ph, tok, buf); n != 1 || buf[0] != abi.TokenValid {
			t.Fatalf("TokenVerify = %d, verdict %d", n, buf[0])
		}
	}
	request()
	if a := testing.AllocsPerRun(200, request); a != 0 {
		t.Errorf("%.1f allocations per call", a)
	}
	if v, ok := f.ex.Vals.Get([]byte("identity-scope")); !ok || string(v) != "a b" {
		t.Errorf("identity-scope = %q, %v", v, ok)
	}
}
