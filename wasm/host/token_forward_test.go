package host

import (
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// forwardPolicy maps claims as the auth plugin does: sub, iss, scope or
// else scp, and a literal method.
func forwardPolicy() abi.TokenPolicy {
	p := strictPolicy()
	p.Claims = nil
	p.Forwards = []abi.TokenForward{
		{Name: []byte("identity-sub"), Claims: [][]byte{[]byte("sub")}},
		{Name: []byte("identity-iss"), Claims: [][]byte{[]byte("iss")}},
		{Name: []byte("identity-scope"), Claims: [][]byte{[]byte("scope"), []byte("scp")}},
		{Name: []byte("identity-method"), Value: []byte("jwt")},
	}
	return p
}

// forwardedValues returns the forwarded request values of x, in order.
func forwardedValues(x *MemExchange) (map[string]string, []string) {
	out := map[string]string{}
	var order []string
	for i := range x.Vals.Len() {
		k, v, f := x.Vals.At(i)
		if f&abi.ValueForward != 0 {
			out[string(k)] = string(v)
			order = append(order, string(k))
		}
	}
	return out, order
}

// TestTokenForwards: a valid token under a policy with forwards sets them
// through the Call, from a fresh verification and from the cache alike;
// claims of the wrong type or with control characters make the token
// invalid, the wrong type first; a forward cannot be set outside a request.
func TestTokenForwards(t *testing.T) {
	id := func(scope string) map[string]string {
		m := map[string]string{"identity-sub": "alice", "identity-iss": "https://iss", "identity-method": "jwt"}
		if scope != "" {
			m["identity-scope"] = scope
		}
		return m
	}
	for _, c := range []struct {
		name    string
		claims  map[string]any
		verdict abi.TokenVerdict
		values  map[string]string
	}{
		{"no scope", nil, abi.TokenValid, id("")},
		{"scope", map[string]any{"scope": "a b"}, abi.TokenValid, id("a b")},
		{"scope wins over scp", map[string]any{"scope": "a", "scp": "b"}, abi.TokenValid, id("a")},
		{"scp string", map[string]any{"scp": "x"}, abi.TokenValid, id("x")},
		{"scp array", map[string]any{"scp": []string{"a", "b"}}, abi.TokenValid, id("a b")},
		{"array with empty items", map[string]any{"scp": []string{"", "a", "", "b"}}, abi.TokenValid, id("a  b")},
		{"empty array", map[string]any{"scp": []string{}}, abi.TokenValid, id("")},
		{"escaped", map[string]any{"sub": "al\"ice\u00e9"}, abi.TokenValid,
			map[string]string{"identity-sub": "al\"ice\u00e9", "identity-iss": "https://iss", "identity-method": "jwt"}},
		{"empty sub", map[string]any{"sub": ""}, abi.TokenValid,
			map[string]string{"identity-iss": "https://iss", "identity-method": "jwt"}},
		{"scope a number", map[string]any{"scope": 7}, abi.TokenClaimNotText, nil},
		{"scope null", map[string]any{"scope": json.RawMessage("null"), "scp": "a"}, abi.TokenClaimNotText, nil},
		{"scp array with a number", map[string]any{"scp": []any{"a", 1}}, abi.TokenClaimNotText, nil},
		{"nested array", map[string]any{"scp": []any{[]string{"a"}}}, abi.TokenClaimNotText, nil},
		{"control character", map[string]any{"sub": "a\nb"}, abi.TokenClaimNotValue, nil},
		{"del in scope", map[string]any{"scope": "a\x7f"}, abi.TokenClaimNotValue, nil},
		{"wrong type checked first", map[string]any{"sub": "a\x00", "scope": true}, abi.TokenClaimNotText, nil},
		{"issuer checked first", map[string]any{"iss": "x", "scope": 7}, abi.TokenWrongIssuer, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, abi.PhaseConfigure)
			ring, ph := tokenRing(t, forwardPolicy(), false, abi.AlgHS256)
			f.env.Keys = ring
			f.now = time.Unix(tokenNow, 0)
			tok := jws(t, abi.AlgHS256, "HS256", goodClaims(c.claims))
			for _, round := range []string{"fresh", "cached"} {
				f.ex.Vals.Reset()
				f.call.Reset(f.env, abi.PhaseRequest, f.ex)
				buf := make([]byte, 16)
				if n := f.call.TokenVerify(ph, tok, buf); n != 1 || buf[0] != c.verdict {
					t.Fatalf("%s: TokenVerify = %d, verdict %s, want %s", round, n, abi.TokenVerdictName(buf[0]), abi.TokenVerdictName(c.verdict))
				}
				got, order := forwardedValues(f.ex)
				if c.values == nil {
					c.values = map[string]string{}
				}
				if !maps.Equal(got, c.values) {
					t.Fatalf("%s: forwarded %q, want %q", round, got, c.values)
				}
				if len(order) > 0 && order[len(order)-1] != "identity-method" {
					t.Fatalf("%s: forwarded in the order %q", round, order)
				}
			}
			f.call.Reset(f.env, abi.PhaseConfigure, nil)
			if n := f.call.TokenVerify(ph, tok, make([]byte, 16)); n != abi.ErrPhase {
				t.Fatalf("configure phase: TokenVerify = %d, want ErrPhase", n)
			}
		})
	}
}

// TestTokenForwardsRegister: a policy whose forwards value_set would
// refuse is refused at registration.
func TestTokenForwardsRegister(t *testing.T) {
	ring := NewKeyring(NewVerifyCache(64))
	for name, fw := range map[string]abi.TokenForward{
		"name not a token":  {Name: []byte("a b"), Value: []byte("x")},
		"value with a CR":   {Name: []byte("a"), Value: []byte("x\r")},
		"nothing forwarded": {Name: []byte("a")},
	} {
		p := abi.TokenPolicy{Forwards: []abi.TokenForward{fw}}
		if h := ring.RegisterPolicy(p.Append(nil)); h != abi.ErrInvalid {
			t.Errorf("%s: RegisterPolicy = %d, want ErrInvalid", name, h)
		}
	}
	p := abi.TokenPolicy{Forwards: []abi.TokenForward{{Name: []byte("a"), Value: []byte("x")}}}
	if h := ring.RegisterPolicy(p.Append(nil)); h < 0 {
		t.Fatalf("RegisterPolicy = %d", h)
	}
}

// BenchmarkTokenVerifyForwards is a token seen before under a policy that
// forwards four values: the verification and the values set.
func BenchmarkTokenVerifyForwards(b *testing.B) {
	f := newFixture(b, abi.PhaseConfigure)
	ring, ph := tokenRing(b, forwardPolicy(), false, abi.AlgHS256)
	f.env.Keys = ring
	f.now = time.Unix(tokenNow, 0)
	tok := jws(b, abi.AlgHS256, "HS256", goodClaims(map[string]any{"scope": "orders:read"}))
	buf := make([]byte, 16)
	b.ReportAllocs()
	for b.Loop() {
		f.ex.Vals.Reset()
		f.call.Reset(f.env, abi.PhaseRequest, f.ex)
		if n := f.call.TokenVerify(ph, tok, buf); n != 1 || buf[0] != abi.TokenValid {
			b.Fatal(fmt.Sprint(n, buf[0]))
		}
	}
}

// FuzzTokenForwards signs any payload with the policy's key, so the claim
// texts are worked out from whatever JSON the fuzzer makes: a valid token
// forwards only header values, and the cache answers as the first check did.
func FuzzTokenForwards(f *testing.F) {
	f.Add([]byte(`{"sub":"alice","iss":"https://iss","aud":"api","exp":1900000000,"scp":["a","b"]}`))
	f.Add([]byte(`{"sub":"a\u0000","iss":"https://iss","aud":"api","exp":1900000000,"scope":7}`))
	f.Add([]byte(`{"sub":"x","iss":"https://iss","aud":"api","exp":1900000000,"scope":["a",["b"]]}`))
	f.Add([]byte(`{"iss":"https://iss","aud":"api","exp":1900000000,"scope":"\ud800"}`))
	fx := newFixture(f, abi.PhaseConfigure)
	ring, ph := tokenRing(f, forwardPolicy(), false, abi.AlgHS256)
	fx.env.Keys = ring
	fx.now = time.Unix(tokenNow, 0)
	f.Fuzz(func(t *testing.T, payload []byte) {
		tok := jwsRaw(t, abi.AlgHS256, []byte(`{"alg":"HS256","kid":"HS256"}`), payload)
		var first abi.TokenVerdict
		var firstVals map[string]string
		for round := range 2 {
			fx.ex.Vals.Reset()
			fx.call.Reset(fx.env, abi.PhaseRequest, fx.ex)
			buf := make([]byte, 16)
			if n := fx.call.TokenVerify(ph, tok, buf); n != 1 {
				t.Fatalf("TokenVerify = %d", n)
			}
			vals, _ := forwardedValues(fx.ex)
			for k, v := range vals {
				if !abi.ValidHeaderValue(v) || v == "" {
					t.Fatalf("forwarded %s=%q", k, v)
				}
			}
			if buf[0] != abi.TokenValid && len(vals) > 0 {
				t.Fatalf("%s forwarded %q", abi.TokenVerdictName(buf[0]), vals)
			}
			if round == 0 {
				first, firstVals = buf[0], vals
			} else if buf[0] != first || !maps.Equal(vals, firstVals) {
				t.Fatalf("first %s %q, then %s %q", abi.TokenVerdictName(first), firstVals, abi.TokenVerdictName(buf[0]), vals)
			}
		}
	})
}
