package host

import (
	"fmt"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
)

// BenchmarkTokenVerify is token_verify on the host side: a token seen
// before (hit) costs the same for every algorithm; a new token (miss) pays
// for the parse and the signature check once.
func BenchmarkTokenVerify(b *testing.B) {
	for _, alg := range []abi.Alg{abi.AlgHS256, abi.AlgRS256, abi.AlgES256, abi.AlgEdDSA} {
		for _, hit := range []bool{true, false} {
			name := abi.AlgName(alg) + "/hit"
			if !hit {
				name = abi.AlgName(alg) + "/miss"
			}
			b.Run(name, func(b *testing.B) {
				ring, ph := tokenRing(b, strictPolicy(), false, alg)
				tok := jws(b, alg, abi.AlgName(alg), goodClaims(map[string]any{"scope": "orders:read"}))
				p := ring.policies.all()[ph]
				var s tokenScratch
				buf := make([]byte, 128)
				b.ReportAllocs()
				for b.Loop() {
					if !hit {
						// Forget the token: the next call verifies it afresh.
						p.cache.good.Invalidate(p.key(tok))
					}
					if n := ring.VerifyToken(ph, tok, buf, tokenNow, &s); n < 1 || buf[0] != abi.TokenValid {
						b.Fatal(fmt.Sprint(n, buf[0]))
					}
				}
			})
		}
	}
}
