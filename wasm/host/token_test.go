package host

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// tokenNow is the clock of the token tests, in Unix seconds.
const tokenNow = 1_800_000_000

// jws builds a compact JWS signed for alg with the test key of sign.
func jws(t testing.TB, alg abi.Alg, kid string, claims map[string]any) []byte {
	t.Helper()
	hdr := map[string]any{"alg": abi.AlgName(alg), "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	return jwsRaw(t, alg, mustMarshal(t, hdr), mustMarshal(t, claims))
}

func jwsRaw(t testing.TB, alg abi.Alg, hdr, payload []byte) []byte {
	t.Helper()
	in := b64(hdr) + "." + b64(payload)
	return []byte(in + "." + b64(sign(t, alg, []byte(in))))
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goodClaims are valid at tokenNow, with overrides (nil deletes).
func goodClaims(over map[string]any) map[string]any {
	c := map[string]any{"sub": "alice", "iss": "https://iss", "aud": "api",
		"iat": tokenNow - 60, "nbf": tokenNow - 60, "exp": tokenNow + 600}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// tokenRing registers one key per algorithm of algs (kid = its name, or
// no kid when noKid) and a policy over them with the given rules.
func tokenRing(t testing.TB, p abi.TokenPolicy, noKid bool, algs ...abi.Alg) (*Keyring, int32) {
	t.Helper()
	ring := NewKeyring(NewVerifyCache(64))
	for _, alg := range algs {
		kf := keyForms(alg)[0]
		h := ring.Register(alg, kf.format, kf.data)
		if h < 0 {
			t.Fatalf("Register %s = %d", abi.AlgName(alg), h)
		}
		kid := []byte(abi.AlgName(alg))
		if noKid {
			kid = nil
		}
		p.Keys = append(p.Keys, abi.TokenKey{Key: h, Kid: kid})
	}
	ph := ring.RegisterPolicy(p.Append(nil))
	if ph < 0 {
		t.Fatalf("RegisterPolicy = %d", ph)
	}
	return ring, ph
}

func strictPolicy() abi.TokenPolicy {
	return abi.TokenPolicy{
		Issuer: []byte("https://iss"), Audiences: [][]byte{[]byte("web"), []byte("api")},
		RequireExpiry: true, Leeway: 30,
		Claims: [][]byte{[]byte("sub"), []byte("scope"), []byte("aud")},
	}
}

// verifyToken runs token_verify and splits its answer.
func verifyToken(t testing.TB, ring *Keyring, ph int32, tok []byte, now int64, s *tokenScratch) (abi.TokenVerdict, []string) {
	t.Helper()
	buf := make([]byte, 512)
	n := ring.VerifyToken(ph, tok, buf, now, s)
	if n <= 0 || int(n) > len(buf) {
		t.Fatalf("VerifyToken = %d", n)
	}
	var items []string
	for rest := buf[1:n]; ; {
		item, r, ok := abi.NextItem(rest)
		if !ok {
			break
		}
		items, rest = append(items, string(item)), r
	}
	return buf[0], items
}

// TestTokenVerdicts covers every verdict, the claims written for a valid
// token, and the same answers again from the cache.
func TestTokenVerdicts(t *testing.T) {
	all := []abi.Alg{abi.AlgHS256, abi.AlgRS256, abi.AlgES256, abi.AlgEdDSA}
	ring, ph := tokenRing(t, strictPolicy(), false, all...)
	good := jws(t, abi.AlgES256, "ES256", goodClaims(nil))
	parts := bytes.Split(good, []byte("."))
	hdr := func(m map[string]any) []byte { return mustMarshal(t, m) }
	for _, c := range []struct {
		name   string
		tok    []byte
		now    int64
		want   abi.TokenVerdict
		claims []string
	}{
		{"ES256", good, tokenNow, abi.TokenValid, []string{`"alice"`, "", `"api"`}},
		{"HS256 with scope", jws(t, abi.AlgHS256, "HS256", goodClaims(map[string]any{"scope": "a b"})), tokenNow, abi.TokenValid, []string{`"alice"`, `"a b"`, `"api"`}},
		{"RS256 without kid", jws(t, abi.AlgRS256, "", goodClaims(nil)), tokenNow, abi.TokenValid, []string{`"alice"`, "", `"api"`}},
		{"EdDSA, repeated sub: the last wins", jwsRaw(t, abi.AlgEdDSA, hdr(map[string]any{"alg": "EdDSA"}),
			[]byte(`{"sub":"mallory","sub":"bob","iss":"https://iss","aud":["x","web"],"exp":1800000600}`)), tokenNow, abi.TokenValid, []string{`"bob"`, "", `["x","web"]`}},
		{"not three parts", parts[0], tokenNow, abi.TokenMalformed, nil},
		{"bad base64", []byte(string(parts[0]) + ".!!." + string(parts[2])), tokenNow, abi.TokenMalformed, nil},
		{"too long", bytes.Repeat([]byte("a"), abi.MaxTokenLen+1), tokenNow, abi.TokenMalformed, nil},
		{"crit", jwsRaw(t, abi.AlgHS256, hdr(map[string]any{"alg": "HS256", "crit": []string{"x"}}), mustMarshal(t, goodClaims(nil))), tokenNow, abi.TokenMalformed, nil},
		{"unknown kid", jws(t, abi.AlgES256, "rotated", goodClaims(nil)), tokenNow, abi.TokenUnknownKid, nil},
		{"alg none", jwsRaw(t, abi.AlgHS256, hdr(map[string]any{"alg": "none"}), mustMarshal(t, goodClaims(nil))), tokenNow, abi.TokenAlgNotAccepted, nil},
		{"alg of another kid", jws(t, abi.AlgHS256, "ES256", goodClaims(nil)), tokenNow, abi.TokenAlgNotAccepted, nil},
		{"ES384: no key", jws(t, abi.AlgES384, "", goodClaims(nil)), tokenNow, abi.TokenAlgNotAccepted, nil},
		{"bad signature", append(bytes.Clone(good[:len(good)-2]), "AA"...), tokenNow, abi.TokenBadSignature, nil},
		{"claims not JSON", jwsRaw(t, abi.AlgHS256, hdr(map[string]any{"alg": "HS256"}), []byte(`{"sub":`)), tokenNow, abi.TokenMalformedClaims, nil},
		{"iss not a string", jws(t, abi.AlgHS256, "", goodClaims(map[string]any{"iss": 7})), tokenNow, abi.TokenMalformedClaims, nil},
		{"no exp", jws(t, abi.AlgHS256, "", goodClaims(map[string]any{"exp": nil})), tokenNow, abi.TokenNoExpiry, nil},
		{"expired within leeway", good, tokenNow + 629, abi.TokenValid, []string{`"alice"`, "", `"api"`}},
		{"expired", good, tokenNow + 630, abi.TokenExpired, nil},
		{"not yet valid", good, tokenNow - 91, abi.TokenNotYetValid, nil},
		{"issued later", jws(t, abi.AlgHS256, "", goodClaims(map[string]any{"nbf": nil, "iat": tokenNow + 31})), tokenNow, abi.TokenIssuedLater, nil},
		{"wrong issuer", jws(t, abi.AlgHS256, "", goodClaims(map[string]any{"iss": "https://evil"})), tokenNow, abi.TokenWrongIssuer, nil},
		{"no issuer", jws(t, abi.AlgHS256, "", goodClaims(map[string]any{"iss": nil})), tokenNow, abi.TokenWrongIssuer, nil},
		{"wrong audience", jws(t, abi.AlgHS256, "", goodClaims(map[string]any{"aud": []string{"x"}})), tokenNow, abi.TokenWrongAudience, nil},
		// Times are checked before the issuer, as the spec orders them.
		{"expired and wrong issuer", jws(t, abi.AlgHS256, "", goodClaims(map[string]any{"iss": "x", "exp": tokenNow - 40})), tokenNow, abi.TokenExpired, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s tokenScratch
			for round := range 2 { // the second answer comes from the cache when there is one
				v, claims := verifyToken(t, ring, ph, c.tok, c.now, &s)
				if v != c.want || fmt.Sprint(claims) != fmt.Sprint(c.claims) {
					t.Fatalf("round %d: %s %q, want %s %q", round, abi.TokenVerdictName(v), claims, abi.TokenVerdictName(c.want), c.claims)
				}
			}
		})
	}
}

// TestTokenCacheRechecksTimes: a cached token is checked against the clock
// of each call, not the one it was verified at.
func TestTokenCacheRechecksTimes(t *testing.T) {
	ring, ph := tokenRing(t, strictPolicy(), false, abi.AlgRS256)
	tok := jws(t, abi.AlgRS256, "RS256", goodClaims(nil))
	var s tokenScratch
	for _, c := range []struct {
		now  int64
		want abi.TokenVerdict
	}{{tokenNow, abi.TokenValid}, {tokenNow + 700, abi.TokenExpired}, {tokenNow - 100, abi.TokenNotYetValid}, {tokenNow, abi.TokenValid}} {
		if v, _ := verifyToken(t, ring, ph, tok, c.now, &s); v != c.want {
			t.Fatalf("at %d: %s, want %s", c.now, abi.TokenVerdictName(v), abi.TokenVerdictName(c.want))
		}
	}
	if n := cachedTokens(ring); n != 1 {
		t.Fatalf("%d cached tokens, want 1", n)
	}
}

func cachedTokens(ring *Keyring) int {
	if ring.tokens == nil {
		return 0
	}
	ring.tokens.good.CleanUp()
	return ring.tokens.good.EstimatedSize()
}

// TestTokenCacheComparesTokens: an entry found under a token's hash admits
// nothing unless it holds that very token, so a hash collision (or a
// poisoned entry) cannot pass an unverified token.
func TestTokenCacheComparesTokens(t *testing.T) {
	ring, ph := tokenRing(t, strictPolicy(), false, abi.AlgES256)
	good := jws(t, abi.AlgES256, "ES256", goodClaims(nil))
	forged := jws(t, abi.AlgES256, "ES256", goodClaims(map[string]any{"sub": "admin"}))
	forged = append(forged[:bytes.LastIndexByte(forged, '.')+1], good[bytes.LastIndexByte(good, '.')+1:]...)
	var s tokenScratch
	if v, _ := verifyToken(t, ring, ph, good, tokenNow, &s); v != abi.TokenValid {
		t.Fatalf("good token: %s", abi.TokenVerdictName(v))
	}
	p := ring.policies.all()[ph]
	e, ok := p.cache.good.GetIfPresent(p.key(good))
	if !ok {
		t.Fatal("good token not cached")
	}
	// Store the good token's entry under the forged token's hash.
	p.cache.good.Set(p.key(forged), e)
	if v, _ := verifyToken(t, ring, ph, forged, tokenNow, &s); v != abi.TokenBadSignature {
		t.Fatalf("forged token under a colliding entry: %s, want TokenBadSignature", abi.TokenVerdictName(v))
	}
}

// TestTokenCacheForgeryFlood: distinct forged tokens, far more than either
// cache holds, leave the verified tokens cached; they land in the cache of
// bad signatures, which stays within its bound.
func TestTokenCacheForgeryFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("signs thousands of tokens")
	}
	ring, ph := tokenRing(t, strictPolicy(), false, abi.AlgHS256)
	var s tokenScratch
	var good [][]byte
	for i := range 100 {
		tok := jws(t, abi.AlgHS256, "HS256", goodClaims(map[string]any{"jti": fmt.Sprint(i)}))
		if v, _ := verifyToken(t, ring, ph, tok, tokenNow, &s); v != abi.TokenValid {
			t.Fatalf("good token %d: %s", i, abi.TokenVerdictName(v))
		}
		good = append(good, tok)
	}
	// Each forgery is a real token of the right size with a wrong
	// signature, and together they weigh twice what both caches hold.
	forgery := jws(t, abi.AlgHS256, "HS256", goodClaims(map[string]any{"sub": strings.Repeat("x", 400)}))
	dot := bytes.LastIndexByte(forgery, '.')
	n := 2 * (TokenCacheBytes + BadTokenCacheBytes) / (len(forgery) + tokenEntryOverhead)
	for i := range n {
		f := fmt.Appendf(bytes.Clone(forgery[:dot+1]), "%040d", i)
		if v, _ := verifyToken(t, ring, ph, f, tokenNow, &s); v != abi.TokenBadSignature {
			t.Fatalf("forgery %d: %s", i, abi.TokenVerdictName(v))
		}
	}
	p := ring.policies.all()[ph]
	for i, tok := range good {
		if _, ok := p.cache.good.GetIfPresent(p.key(tok)); !ok {
			t.Fatalf("good token %d was evicted by forgeries", i)
		}
	}
	p.cache.bad.CleanUp()
	if w := p.cache.bad.WeightedSize(); w > BadTokenCacheBytes {
		t.Fatalf("bad-signature cache weighs %d, bound %d", w, BadTokenCacheBytes)
	}
}

// TestTokenPolicyRegister: registration is deduplicated, checked, bounded,
// and configure-only.
func TestTokenPolicyRegister(t *testing.T) {
	ring := NewKeyring(nil)
	kf := keyForms(abi.AlgHS256)[0]
	k := ring.Register(abi.AlgHS256, kf.format, kf.data)
	p := abi.TokenPolicy{Keys: []abi.TokenKey{{Key: k, Kid: []byte("a")}}}
	spec := p.Append(nil)
	if h1, h2 := ring.RegisterPolicy(spec), ring.RegisterPolicy(bytes.Clone(spec)); h1 != 0 || h2 != 0 {
		t.Fatalf("handles %d, %d, want 0, 0", h1, h2)
	}
	unknown := abi.TokenPolicy{Keys: []abi.TokenKey{{Key: 9}}}
	for _, c := range []struct {
		name string
		spec []byte
		want int32
	}{
		{"truncated", spec[:len(spec)-1], abi.ErrInvalid},
		{"trailing", append(bytes.Clone(spec), 0), abi.ErrInvalid},
		{"unknown key", unknown.Append(nil), abi.ErrNotFound},
	} {
		if got := ring.RegisterPolicy(c.spec); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	for i := 1; i < abi.MaxTokenPolicies; i++ {
		p.Leeway = uint32(i)
		if h := ring.RegisterPolicy(p.Append(nil)); h != int32(i) {
			t.Fatalf("policy %d: handle %d", i, h)
		}
	}
	p.Leeway = abi.MaxTokenPolicies
	if h := ring.RegisterPolicy(p.Append(nil)); h != abi.ErrTooLarge {
		t.Fatalf("past MaxTokenPolicies: %d", h)
	}
	if got := ring.VerifyToken(abi.MaxTokenPolicies, []byte("a.b.c"), nil, 0, new(tokenScratch)); got != abi.ErrNotFound {
		t.Fatalf("VerifyToken with an unknown policy: %d", got)
	}
	var nilRing *Keyring
	if nilRing.RegisterPolicy(spec) != abi.ErrUnavailable || nilRing.VerifyToken(0, nil, nil, 0, nil) != abi.ErrUnavailable {
		t.Fatal("a nil key ring must answer ErrUnavailable")
	}

	f := newFixture(t, abi.PhaseRequest)
	if got := f.call.TokenPolicy(spec); got != abi.ErrPhase {
		t.Fatalf("token_policy in the request phase: %d", got)
	}
}

// TestTokenVerifyCall runs token_verify through a Call: the host clock, and
// the buffer + limit convention.
func TestTokenVerifyCall(t *testing.T) {
	f := newFixture(t, abi.PhaseConfigure)
	p := abi.TokenPolicy{Keys: []abi.TokenKey{{Key: 0}}, Claims: [][]byte{[]byte("sub")}}
	ph := f.call.TokenPolicy(p.Append(nil))
	if ph != 0 {
		t.Fatalf("TokenPolicy = %d", ph)
	}
	f.call.Reset(f.env, abi.PhaseRequest, f.ex)
	in := b64([]byte(`{"alg":"HS256"}`)) + "." + b64(fmt.Appendf(nil, `{"sub":"bob","exp":%d}`, f.now.Unix()+1))
	tok := []byte(in + "." + b64(fixtureMAC([]byte(in))))
	want := "\x00\"bob\"\x00"
	if n := f.call.TokenVerify(ph, tok, nil); n != int32(len(want)) {
		t.Fatalf("probe = %d, want %d", n, len(want))
	}
	buf := make([]byte, 3)
	if n := f.call.TokenVerify(ph, tok, buf); n != int32(len(want)) || string(buf) != want[:3] {
		t.Fatalf("short buffer: %d %q", n, buf)
	}
	f.now = f.now.Add(time.Second)
	buf = make([]byte, 16)
	if n := f.call.TokenVerify(ph, tok, buf); n != 1 || buf[0] != abi.TokenExpired {
		t.Fatalf("after exp: %d %q", n, buf[:1])
	}
}

// TestTokenVerifyConcurrent hammers one policy from several goroutines,
// as a version's instances do, with hits, misses and forgeries.
func TestTokenVerifyConcurrent(t *testing.T) {
	ring, ph := tokenRing(t, strictPolicy(), true, abi.AlgHS256, abi.AlgES256)
	toks := [][]byte{
		jws(t, abi.AlgHS256, "", goodClaims(nil)),
		jws(t, abi.AlgES256, "", goodClaims(nil)),
	}
	bad := append(bytes.Clone(toks[1][:len(toks[1])-2]), "AA"...)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var s tokenScratch
			buf := make([]byte, 64)
			for i := range 300 {
				tok, want := toks[(g+i)%2], abi.TokenValid
				if i%7 == 0 {
					tok, want = bad, abi.TokenBadSignature
				}
				if n := ring.VerifyToken(ph, tok, buf, tokenNow, &s); n < 1 || buf[0] != want {
					t.Errorf("goroutine %d, call %d: %d %d", g, i, n, buf[0])
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzTokenVerify: any token bytes get one verdict, the same from the
// cache as without it, and only tokens signed by the test keys are valid.
func FuzzTokenVerify(f *testing.F) {
	good := jws(f, abi.AlgHS256, "HS256", goodClaims(nil))
	f.Add(good)
	f.Add(jws(f, abi.AlgES256, "", goodClaims(map[string]any{"scope": "a"})))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(".."))
	f.Add(good[:len(good)-3])
	ring, ph := tokenRing(f, strictPolicy(), false, abi.AlgHS256, abi.AlgES256)
	f.Fuzz(func(t *testing.T, tok []byte) {
		var s tokenScratch
		v1, c1 := verifyToken(t, ring, ph, tok, tokenNow, &s)
		v2, c2 := verifyToken(t, ring, ph, tok, tokenNow, &s)
		if v1 != v2 || fmt.Sprint(c1) != fmt.Sprint(c2) {
			t.Fatalf("first %s %q, then %s %q", abi.TokenVerdictName(v1), c1, abi.TokenVerdictName(v2), c2)
		}
		if strings.HasPrefix(abi.TokenVerdictName(v1), "TokenVerdict(") {
			t.Fatalf("unknown verdict %d", v1)
		}
		if v1 == abi.TokenValid && !bytes.Equal(tok, good) && !isSigned(tok) {
			t.Fatalf("admitted %q", tok)
		}
	})
}

// isSigned reports whether tok's signature is the test keys' over its
// signing input (only the fuzzer's seeds and their re-encodings are).
func isSigned(tok []byte) bool {
	i := bytes.LastIndexByte(tok, '.')
	if i < 0 {
		return false
	}
	ring := NewKeyring(nil)
	for _, alg := range []abi.Alg{abi.AlgHS256, abi.AlgES256} {
		kf := keyForms(alg)[0]
		h := ring.Register(alg, kf.format, kf.data)
		sig, err := base64.RawURLEncoding.Strict().DecodeString(string(tok[i+1:]))
		if err == nil {
			if r, _ := ring.Verify(h, tok[:i], sig, nil); r == 1 {
				return true
			}
		}
	}
	return false
}
