package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

const (
	realm     = `Bearer realm="api"`
	testIss   = "https://issuer.example"
	testAud   = "api"
	ciKey     = "ci-key-0123456789"
	deployKey = "deploy-key-9876543210"
)

// now is the native tests' host clock: token times are relative to it.
var now = time.Unix(1_800_000_000, 0)

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// baseConfig is a config with every kind of key the tests sign with, each
// with a kid and alg, plus two API keys; extra overrides members.
func baseConfig(t testing.TB, extra map[string]any) []byte {
	k := mustKeys(t)
	cfg := map[string]any{
		"realm": "api",
		"jwks": jwks(
			jwstest.JWK(k.hmac, "hs256", "HS256"), jwstest.JWK(k.hmac, "hs384", "HS384"), jwstest.JWK(k.hmac, "hs512", "HS512"),
			jwstest.JWK(k.rsa, "rs256", "RS256"), jwstest.JWK(k.rsa, "rs384", "RS384"), jwstest.JWK(k.rsa, "rs512", "RS512"),
			jwstest.JWK(k.rsa, "ps256", "PS256"), jwstest.JWK(k.rsa, "ps384", "PS384"), jwstest.JWK(k.rsa, "ps512", "PS512"),
			jwstest.JWK(k.p256, "es256", "ES256"), jwstest.JWK(k.p384, "es384", "ES384"), jwstest.JWK(k.ed, "ed", "EdDSA"),
		),
		"issuer":   testIss,
		"audience": []string{testAud},
		"public":   []string{"/health", "/public/"},
		"api_keys": []map[string]string{{"name": "ci", "sha256": hexSum(ciKey)}, {"name": "deploy", "sha256": hexSum(deployKey)}},
	}
	for key, v := range extra {
		if v == nil {
			delete(cfg, key)
		} else {
			cfg[key] = v
		}
	}
	return mustJSON(t, cfg)
}

// claims are valid claims at now, with overrides (nil deletes).
func claims(over map[string]any) map[string]any {
	c := map[string]any{
		"sub": "user-42", "iss": testIss, "aud": testAud,
		"iat": now.Unix() - 60, "nbf": now.Unix() - 60, "exp": now.Unix() + 600,
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// newHost configures the plugin natively with the host clock at now; the
// origin records the request it receives.
func newHost(t *testing.T, cfg []byte) *sdktest.Host {
	t.Helper()
	h := sdktest.New(t, &auth{}, cfg)
	h.Env.Now = func() time.Time { return now }
	return h
}

func get(path string, hdr ...string) host.Request {
	r := host.Request{Method: "GET", Scheme: "https", Host: "api.example", Path: path, Proto: "HTTP/1.1"}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

// preflight is a browser's CORS preflight for a POST with Authorization.
func preflight(path string) host.Request {
	r := get(path, "Origin", "https://app.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization")
	r.Method = "OPTIONS"
	return r
}

func bearerReq(tok string) host.Request { return get("/orders", "Authorization", "Bearer "+tok) }

// forwarded returns the values the origin receives with the request.
func forwarded(res *host.Result) map[string]string {
	out := map[string]string{}
	for i := range res.Vals.Len() {
		k, v, f := res.Vals.At(i)
		if f&abi.ValueForward != 0 {
			out[string(k)] = string(v)
		}
	}
	return out
}

// want is the expected outcome of one request.
type want struct {
	status int
	// challenge is the exact WWW-Authenticate; "" expects none.
	challenge string
	// values are the forwarded values, exactly (nil: none).
	values map[string]string
}

func invalid(desc string) want {
	return want{401, realm + `, error="invalid_token", error_description="` + desc + `"`, nil}
}

var noCreds = want{401, realm, nil}

func ok(values map[string]string) want { return want{200, "", values} }

func jwtID(sub string) map[string]string {
	return map[string]string{"identity-method": "jwt", "identity-sub": sub, "identity-iss": testIss}
}

func check(t *testing.T, res *host.Result, w want) {
	t.Helper()
	if res.RequestErr != nil || res.ResponseErr != nil {
		t.Fatalf("phase errors: %v, %v", res.RequestErr, res.ResponseErr)
	}
	ch, hasCh := res.Resp.Header.Get("WWW-Authenticate")
	if res.Resp.Status != w.status || ch != w.challenge || hasCh != (w.challenge != "") {
		t.Fatalf("got %d WWW-Authenticate=%q body %q, want %d %q", res.Resp.Status, ch, res.Resp.Body, w.status, w.challenge)
	}
	if res.Answered != (w.status != 200) {
		t.Fatalf("answered=%v with status %d: the origin must be asked exactly for admitted requests", res.Answered, w.status)
	}
	got := forwarded(res)
	if len(got) != len(w.values) {
		t.Fatalf("forwarded %v, want %v", got, w.values)
	}
	for k, v := range w.values {
		if got[k] != v {
			t.Fatalf("forwarded %s=%q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if w.status == 200 {
		for _, h := range []string{"Authorization", "X-Api-Key"} {
			if v, has := res.Req.Header.Get(h); has {
				t.Fatalf("origin received %s: %q", h, v)
			}
		}
	}
}

// TestAlgorithms signs a token with a freshly generated key of each family
// and algorithm, and checks that it passes, and that the same token signed
// by another key of the same type fails.
func TestAlgorithms(t *testing.T) {
	k := mustKeys(t)
	h := newHost(t, baseConfig(t, nil))
	for _, c := range []struct {
		alg, kid   string
		key, other any
	}{
		{"HS256", "hs256", k.hmac, k.hmac2}, {"HS384", "hs384", k.hmac, k.hmac2}, {"HS512", "hs512", k.hmac, k.hmac2},
		{"RS256", "rs256", k.rsa, k.rsa2}, {"RS384", "rs384", k.rsa, k.rsa2}, {"RS512", "rs512", k.rsa, k.rsa2},
		{"PS256", "ps256", k.rsa, k.rsa2}, {"PS384", "ps384", k.rsa, k.rsa2}, {"PS512", "ps512", k.rsa, k.rsa2},
		{"ES256", "es256", k.p256, k.ecOtherCurve}, {"ES384", "es384", k.p384, nil},
		{"EdDSA", "ed", k.ed, k.ed2},
	} {
		t.Run(c.alg, func(t *testing.T) {
			check(t, h.Do(bearerReq(sign(t, c.alg, c.key, c.kid, claims(nil)))), ok(jwtID("user-42")))
			// Without a kid the token is tried against every key of its alg.
			check(t, h.Do(bearerReq(sign(t, c.alg, c.key, "", claims(nil)))), ok(jwtID("user-42")))
			if c.other != nil {
				check(t, h.Do(bearerReq(sign(t, c.alg, c.other, c.kid, claims(nil)))), invalid("bad signature"))
			}
		})
	}
}

// TestJWKSelection covers keys without alg (registered for their family)
// and without kid, and skipped encryption keys.
func TestJWKSelection(t *testing.T) {
	k := mustKeys(t)
	cfg := baseConfig(t, map[string]any{"jwks": jwks(
		jwstest.JWK(k.rsa, "", ""),    // every RSA algorithm, any kid
		jwstest.JWK(k.p384, "ec", ""), // ES384 from the curve
		jwstest.JWK(k.ed, "okp", ""),  // EdDSA
		map[string]any{"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"}, // skipped, although unusable
		map[string]any{"kty": "oct", "key_ops": []string{"sign"}, "k": "c2VjcmV0"},         // skipped: cannot verify
	)})
	h := newHost(t, cfg)
	for _, c := range []struct {
		name string
		tok  string
		w    want
	}{
		{"RS512 with a kid the kid-less key matches", sign(t, "RS512", k.rsa, "any", claims(nil)), ok(jwtID("user-42"))},
		{"PS256 without kid", sign(t, "PS256", k.rsa, "", claims(nil)), ok(jwtID("user-42"))},
		{"ES384 by curve", sign(t, "ES384", k.p384, "ec", claims(nil)), ok(jwtID("user-42"))},
		{"EdDSA", sign(t, "EdDSA", k.ed, "okp", claims(nil)), ok(jwtID("user-42"))},
		{"ES256 has no key", sign(t, "ES256", k.p256, "", claims(nil)), invalid("algorithm not accepted for the key")},
		{"kid of the skipped enc key", sign(t, "HS256", k.hmac, "enc", claims(nil)), invalid("algorithm not accepted for the key")},
		{"HS256 has no key", sign(t, "HS256", []byte("c2VjcmV0"), "", claims(nil)), invalid("algorithm not accepted for the key")},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, h.Do(bearerReq(c.tok)), c.w) })
	}
}

// rsaExp is the public JWK of the test RSA key with its exponent replaced:
// e is base64url, "" for 2.
func rsaExp(k *testKeys, kid, e string) map[string]any {
	m := jwstest.JWK(k.rsa, kid, "")
	if e == "" {
		e = "Ag"
	}
	m["e"] = e
	return m
}

// TestShortOctKey: an oct key without alg is registered only for the HMAC
// algorithms its length suffices for (RFC 7518 §3.2): 32 bytes verify
// HS256, and an HS512 token made with them finds no key.
func TestShortOctKey(t *testing.T) {
	k := mustKeys(t)
	secret := k.hmac[:32]
	h := newHost(t, baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(secret, "", ""))}))
	check(t, h.Do(bearerReq(sign(t, "HS256", secret, "", claims(nil)))), ok(jwtID("user-42")))
	check(t, h.Do(bearerReq(sign(t, "HS384", secret, "", claims(nil)))), invalid("algorithm not accepted for the key"))
	check(t, h.Do(bearerReq(sign(t, "HS512", secret, "", claims(nil)))), invalid("algorithm not accepted for the key"))
}

// TestAttacks covers tokens that must never pass: unsigned, algorithm
// confusion, unknown keys, tampering and malformed input.
func TestAttacks(t *testing.T) {
	k := mustKeys(t)
	h := newHost(t, baseConfig(t, nil))
	good := sign(t, "RS256", k.rsa, "rs256", claims(nil))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64(mustJSON(t, claims(map[string]any{"sub": "admin"}))) + "." + parts[2]
	hdr := func(m map[string]any) []byte { return mustJSON(t, m) }
	body := mustJSON(t, claims(nil))
	for _, c := range []struct {
		name, tok string
		w         want
	}{
		{"alg none", signRaw(t, "none", nil, hdr(map[string]any{"alg": "none", "kid": "rs256"}), body), invalid("algorithm not accepted for the key")},
		{"alg none no kid", signRaw(t, "none", nil, hdr(map[string]any{"alg": "none"}), body), invalid("algorithm not accepted for the key")},
		{"alg None with RS256 signature", strings.Replace(good, parts[0], b64(hdr(map[string]any{"alg": "None", "kid": "rs256"})), 1), invalid("algorithm not accepted for the key")},
		// The classic confusion: HMAC keyed with the RSA public key.
		{"HS256 with the RSA public key as secret", sign(t, "HS256", k.rsaPKIX, "rs256", claims(nil)), invalid("algorithm not accepted for the key")},
		{"HS256 with the RSA modulus as secret, no kid", sign(t, "HS256", k.rsa.N.Bytes(), "", claims(nil)), invalid("bad signature")},
		{"PS256 against an RS256-only key", sign(t, "PS256", k.rsa, "rs256", claims(nil)), invalid("algorithm not accepted for the key")},
		{"ES384 against the ES256 kid", sign(t, "ES384", k.p384, "es256", claims(nil)), invalid("algorithm not accepted for the key")},
		{"unknown kid", sign(t, "RS256", k.rsa, "rotated-away", claims(nil)), invalid("unknown key id")},
		{"tampered payload", tampered, invalid("bad signature")},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(sign(t, "RS256", k.rsa, "rs256", claims(map[string]any{"sub": "x"})), ".")[2], invalid("bad signature")},
		{"empty signature", parts[0] + "." + parts[1] + ".", invalid("bad signature")},
		{"truncated ES256 signature", func() string {
			s := strings.Split(sign(t, "ES256", k.p256, "es256", claims(nil)), ".")
			sig, _ := base64.RawURLEncoding.DecodeString(s[2])
			return s[0] + "." + s[1] + "." + b64(sig[:63])
		}(), invalid("bad signature")},
		{"one part", "abc", invalid("malformed token")},
		{"two parts", parts[0] + "." + parts[1], invalid("malformed token")},
		{"four parts (JWE-like)", good + ".x", invalid("malformed token")},
		{"bad base64", parts[0] + ".!!!." + parts[2], invalid("malformed token")},
		{"header not JSON", b64([]byte("{alg")) + "." + parts[1] + "." + parts[2], invalid("malformed token")},
		{"crit header", signRaw(t, "HS256", k.hmac, hdr(map[string]any{"alg": "HS256", "kid": "hs256", "crit": []string{"exp"}}), body), invalid("malformed token")},
		{"payload not an object", signRaw(t, "HS256", k.hmac, hdr(map[string]any{"alg": "HS256", "kid": "hs256"}), []byte(`"x"`)), invalid("malformed token")},
		{"payload not JSON", signRaw(t, "HS256", k.hmac, hdr(map[string]any{"alg": "HS256", "kid": "hs256"}), []byte(`{"sub":`)), invalid("malformed claims")},
		{"exp not a number", sign(t, "HS256", k.hmac, "hs256", claims(map[string]any{"exp": "tomorrow"})), invalid("malformed claims")},
		{"empty bearer", "", invalid("malformed token")},
		{"oversized", strings.Repeat("a", 17<<10), invalid("malformed token")},
		{"control character in sub", sign(t, "HS256", k.hmac, "hs256", claims(map[string]any{"sub": "a\r\nX-Admin: 1"})), invalid("claims cannot be forwarded")},
		{"scope of the wrong type", sign(t, "HS256", k.hmac, "hs256", claims(map[string]any{"scope": 7})), invalid("malformed scope claim")},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, h.Do(bearerReq(c.tok)), c.w) })
	}
}

// TestClaims checks exp, nbf and iat with and without leeway, iss and aud.
func TestClaims(t *testing.T) {
	k := mustKeys(t)
	strict := newHost(t, baseConfig(t, nil))
	lenient := newHost(t, baseConfig(t, map[string]any{"leeway": "30s"}))
	noExp := newHost(t, baseConfig(t, map[string]any{"require_exp": false, "issuer": nil, "audience": nil}))
	multiAud := newHost(t, baseConfig(t, map[string]any{"audience": []string{"web", "api"}}))
	n := now.Unix()
	for _, c := range []struct {
		name string
		h    *sdktest.Host
		over map[string]any
		w    want
	}{
		{"valid", strict, nil, ok(jwtID("user-42"))},
		{"expired", strict, map[string]any{"exp": n - 10}, invalid("token expired")},
		{"expires now", strict, map[string]any{"exp": n}, invalid("token expired")},
		{"expired within leeway", lenient, map[string]any{"exp": n - 10}, ok(jwtID("user-42"))},
		{"expired past leeway", lenient, map[string]any{"exp": n - 31}, invalid("token expired")},
		{"not yet valid", strict, map[string]any{"nbf": n + 10}, invalid("token not yet valid")},
		{"not yet valid within leeway", lenient, map[string]any{"nbf": n + 10}, ok(jwtID("user-42"))},
		{"not yet valid past leeway", lenient, map[string]any{"nbf": n + 31}, invalid("token not yet valid")},
		{"issued in the future", strict, map[string]any{"iat": n + 10}, invalid("token issued in the future")},
		{"issued in the future within leeway", lenient, map[string]any{"iat": n + 10}, ok(jwtID("user-42"))},
		{"issued in the future past leeway", lenient, map[string]any{"iat": n + 31}, invalid("token issued in the future")},
		{"no exp", strict, map[string]any{"exp": nil}, invalid("token has no expiry")},
		{"no exp allowed", noExp, map[string]any{"exp": nil, "iss": nil}, ok(map[string]string{"identity-method": "jwt", "identity-sub": "user-42"})},
		{"wrong issuer", strict, map[string]any{"iss": "https://evil.example"}, invalid("wrong issuer")},
		{"no issuer", strict, map[string]any{"iss": nil}, invalid("wrong issuer")},
		{"wrong audience", strict, map[string]any{"aud": "other"}, invalid("wrong audience")},
		{"no audience", strict, map[string]any{"aud": nil}, invalid("wrong audience")},
		{"audience in an array", strict, map[string]any{"aud": []string{"x", "api"}}, ok(jwtID("user-42"))},
		{"one of the configured audiences", multiAud, map[string]any{"aud": "web"}, ok(jwtID("user-42"))},
		{"none of the configured audiences", multiAud, map[string]any{"aud": []string{"x"}}, invalid("wrong audience")},
		{"no sub", strict, map[string]any{"sub": nil}, ok(map[string]string{"identity-method": "jwt", "identity-iss": testIss})},
		{"scope", strict, map[string]any{"scope": "orders:read orders:write"},
			ok(map[string]string{"identity-method": "jwt", "identity-sub": "user-42", "identity-iss": testIss, "identity-scope": "orders:read orders:write"})},
		{"scp array", strict, map[string]any{"scp": []string{"a", "b"}},
			ok(map[string]string{"identity-method": "jwt", "identity-sub": "user-42", "identity-iss": testIss, "identity-scope": "a b"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			check(t, c.h.Do(bearerReq(sign(t, "ES256", k.p256, "es256", claims(c.over)))), c.w)
		})
	}
}

func TestAPIKeys(t *testing.T) {
	k := mustKeys(t)
	h := newHost(t, baseConfig(t, nil))
	custom := newHost(t, baseConfig(t, map[string]any{"api_key_header": "X-Key", "jwks": nil}))
	id := func(name string) map[string]string {
		return map[string]string{"identity-method": "api-key", "identity-key": name}
	}
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	for _, c := range []struct {
		name string
		h    *sdktest.Host
		req  host.Request
		w    want
	}{
		{"good", h, get("/orders", "X-Api-Key", ciKey), ok(id("ci"))},
		{"second key", h, get("/orders", "x-api-key", deployKey), ok(id("deploy"))},
		{"bad", h, get("/orders", "X-Api-Key", "ci-key-0123456788"), invalid("invalid API key")},
		{"empty", h, get("/orders", "X-Api-Key", ""), invalid("invalid API key")},
		{"the digest itself", h, get("/orders", "X-Api-Key", hexSum(ciKey)), invalid("invalid API key")},
		{"two keys", h, get("/orders", "X-Api-Key", ciKey, "X-Api-Key", deployKey),
			want{400, realm + `, error="invalid_request", error_description="more than one credential"`, nil}},
		{"key and token", h, get("/orders", "X-Api-Key", ciKey, "Authorization", "Bearer "+tok),
			want{400, realm + `, error="invalid_request", error_description="more than one credential"`, nil}},
		{"key and Basic credentials", h, get("/orders", "X-Api-Key", ciKey, "Authorization", "Basic dTpw"), ok(id("ci"))},
		{"custom header", custom, get("/orders", "X-Key", deployKey), ok(id("deploy"))},
		{"default header not read", custom, get("/orders", "X-Api-Key", deployKey), noCreds},
		{"token without jwks", custom, bearerReq(tok), invalid("unknown key id")},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, c.h.Do(c.req), c.w) })
	}
}

// TestChallenge checks the credential-less and malformed cases and the
// exact WWW-Authenticate of each.
func TestChallenge(t *testing.T) {
	k := mustKeys(t)
	h := newHost(t, baseConfig(t, nil))
	realmed := newHost(t, baseConfig(t, map[string]any{"realm": "orders service"}))
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	for _, c := range []struct {
		name string
		h    *sdktest.Host
		req  host.Request
		w    want
	}{
		{"nothing", h, get("/orders"), noCreds},
		{"nothing, own realm", realmed, get("/orders"), want{401, `Bearer realm="orders service"`, nil}},
		{"bad token, own realm", realmed, bearerReq("x"), want{401, `Bearer realm="orders service", error="invalid_token", error_description="malformed token"`, nil}},
		{"Basic scheme", h, get("/orders", "Authorization", "Basic dTpw"), noCreds},
		{"Bearerx scheme", h, get("/orders", "Authorization", "Bearerx "+tok), noCreds},
		{"lower-case scheme", h, get("/orders", "Authorization", "bearer "+tok), ok(jwtID("user-42"))},
		{"extra spaces", h, get("/orders", "Authorization", "Bearer   "+tok+" "), ok(jwtID("user-42"))},
		{"scheme only", h, get("/orders", "Authorization", "Bearer"), invalid("malformed token")},
		{"two Authorization fields", h, get("/orders", "Authorization", "Bearer "+tok, "Authorization", "Bearer x"),
			want{400, realm + `, error="invalid_request", error_description="more than one Authorization header"`, nil}},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, c.h.Do(c.req), c.w) })
	}
	// The body names the problem, for humans with curl.
	res := h.Do(bearerReq("x"))
	if string(res.Resp.Body) != "malformed token\n" {
		t.Errorf("body %q", res.Resp.Body)
	}
}

func TestPublicPaths(t *testing.T) {
	k := mustKeys(t)
	h := newHost(t, baseConfig(t, nil))
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	public := want{200, "", nil}
	for _, c := range []struct {
		path string
		w    want
	}{
		{"/health", public},
		{"/health/live", public},
		{"/public/", public},
		{"/public/a/b.css", public},
		{"/public/..data", public},
		{"/healthz", noCreds},
		{"/public", noCreds},
		{"/", noCreds},
		{"/api/health", noCreds},
		{"/public/../admin", noCreds},
		{"/public/./x", noCreds},
		{"/public/..;/admin", noCreds},
		{"/public/%2e%2e/admin", noCreds},
		{"/public/%2E%2E/admin", noCreds},
		{"/public/..%2fadmin", noCreds},
		{"/public/..%5Cadmin", noCreds},
		{"/public\\..\\admin", noCreds},
		{"/health/..", noCreds},
	} {
		t.Run(c.path, func(t *testing.T) { check(t, h.Do(get(c.path)), c.w) })
	}
	// Credentials on a public path are neither checked nor passed on.
	res := h.Do(get("/health", "Authorization", "Bearer "+tok, "X-Api-Key", "wrong"))
	check(t, res, public)
}

func TestStripCredentials(t *testing.T) {
	k := mustKeys(t)
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	keep := newHost(t, baseConfig(t, map[string]any{"strip_credentials": false}))
	res := keep.Do(bearerReq(tok))
	if v, _ := res.Req.Header.Get("Authorization"); res.Resp.Status != 200 || v != "Bearer "+tok {
		t.Fatalf("strip_credentials false: %d, origin got Authorization %q", res.Resp.Status, v)
	}
	res = keep.Do(get("/orders", "X-Api-Key", ciKey))
	if v, _ := res.Req.Header.Get("X-Api-Key"); res.Resp.Status != 200 || v != ciKey {
		t.Fatalf("strip_credentials false: %d, origin got X-Api-Key %q", res.Resp.Status, v)
	}
	strip := newHost(t, baseConfig(t, nil))
	res = strip.Do(get("/orders", "Authorization", "Bearer "+tok, "Cookie", "a=b"))
	if _, has := res.Req.Header.Get("Authorization"); has || res.Resp.Status != 200 {
		t.Fatalf("%d, Authorization reached the origin", res.Resp.Status)
	}
	if v, _ := res.Req.Header.Get("Cookie"); v != "a=b" {
		t.Fatalf("other fields must pass untouched, Cookie %q", v)
	}
	// Without api_keys the API-key header is not a credential of ours.
	jwtOnly := newHost(t, baseConfig(t, map[string]any{"api_keys": nil}))
	res = jwtOnly.Do(get("/orders", "Authorization", "Bearer "+tok, "X-Api-Key", "theirs"))
	if v, _ := res.Req.Header.Get("X-Api-Key"); res.Resp.Status != 200 || v != "theirs" {
		t.Fatalf("%d, X-Api-Key %q", res.Resp.Status, v)
	}
}

// cookieConfig takes tokens in the cookie "session" from pages of
// https://app.example.
var cookieConfig = map[string]any{"token_cookie": "session", "cookie_origins": []string{"https://app.example"}}

// TestTokenCookie: a browser's token in a cookie is checked as a bearer
// token is, only for pages of cookie_origins, and never reaches the
// origin, whichever credential was checked; the other cookies do.
func TestTokenCookie(t *testing.T) {
	k := mustKeys(t)
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	h := newHost(t, baseConfig(t, cookieConfig))
	for _, c := range []struct {
		name string
		req  host.Request
		w    want
		// cookie is what the origin gets in Cookie ("" none).
		cookie string
	}{
		{"own page", get("/orders", "Cookie", "theme=dark; session="+tok+"; lang=en", "Origin", "https://app.example"), ok(jwtID("user-42")), "theme=dark; lang=en"},
		{"no page", get("/orders", "Cookie", "session="+tok), ok(jwtID("user-42")), ""},
		{"quoted", get("/orders", "Cookie", `session="`+tok+`"`), ok(jwtID("user-42")), ""},
		{"split fields", get("/orders", "Cookie", "a=1", "Cookie", "session="+tok, "Cookie", "b=2"), ok(jwtID("user-42")), "a=1; b=2"},
		{"another site's page", get("/orders", "Cookie", "session="+tok, "Origin", "https://evil.example"), want{403, realm, nil}, ""},
		{"opaque origin", get("/orders", "Cookie", "session="+tok, "Origin", "null"), want{403, realm, nil}, ""},
		{"bad token", get("/orders", "Cookie", "session=x.y.z", "Origin", "https://app.example"), invalid("malformed token"), ""},
		{"another cookie", get("/orders", "Cookie", "sessionx="+tok), noCreds, ""},
		{"bearer wins", get("/orders", "Authorization", "Bearer "+tok, "Cookie", "session=unchecked; a=1"), ok(jwtID("user-42")), "a=1"},
		{"API key", get("/orders", "X-Api-Key", ciKey, "Cookie", "session=unchecked"), ok(map[string]string{"identity-method": "api-key", "identity-key": "ci"}), ""},
		{"public path", get("/health", "Cookie", "session=unchecked; a=1"), want{200, "", nil}, "a=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := h.Do(c.req)
			check(t, res, c.w)
			if got := strings.Join(res.Req.Header.Values("Cookie"), "|"); c.w.status == 200 && got != c.cookie {
				t.Fatalf("origin got Cookie %q, want %q", got, c.cookie)
			}
		})
	}
	// Without strip_credentials the origin gets the cookie as it came.
	keep := newHost(t, baseConfig(t, map[string]any{"token_cookie": "session", "cookie_origins": []string{"https://app.example"}, "strip_credentials": false}))
	res := keep.Do(get("/orders", "Cookie", "session="+tok+"; a=1"))
	if v, _ := res.Req.Header.Get("Cookie"); res.Resp.Status != 200 || v != "session="+tok+"; a=1" {
		t.Fatalf("strip_credentials false: %d, Cookie %q", res.Resp.Status, v)
	}
}

// TestTokenCookieLookAlikes: the token cookie is found under every
// spelling of its name an origin's parser reads as it (blanks around the
// name, after a comma, after white space in another cookie's value, as
// SimpleCookie splits). With more than one, the first is checked and,
// stripped, none reaches the origin; kept, the request is refused as one
// with two Authorization fields is: an origin that keeps the other
// (Django keeps the last) would trust a token never checked. Stripped,
// every spelling goes, with the cookie whose value hid it, and the other
// cookies pass as they came, white space in their values too.
func TestTokenCookieLookAlikes(t *testing.T) {
	k := mustKeys(t)
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	forged := tok[:len(tok)-2] + "AA"
	twoCookies := want{400, realm + `, error="invalid_request", error_description="more than one token cookie"`, nil}
	strip := newHost(t, baseConfig(t, cookieConfig))
	keep := newHost(t, baseConfig(t, map[string]any{"token_cookie": "session", "cookie_origins": []string{"https://app.example"}, "strip_credentials": false}))
	for _, c := range []struct {
		name string
		req  host.Request
		w    want // with strip_credentials
		// cookie is what the origin gets in Cookie with strip_credentials.
		cookie string
		// two: the token cookie is there twice, refused without strip_credentials.
		two bool
	}{
		{"space before =", get("/orders", "Cookie", "session="+tok+"; session ="+forged), ok(jwtID("user-42")), "", true},
		{"blanks around the name", get("/orders", "Cookie", "\tsession\t= "+forged+"; session="+tok), invalid("bad signature"), "", true},
		{"NBSP after the name", get("/orders", "Cookie", "session\xa0="+forged+"; session="+tok), invalid("bad signature"), "", true},
		{"after a comma", get("/orders", "Cookie", "session="+tok+", session="+forged), ok(jwtID("user-42")), "", true},
		{"in two fields", get("/orders", "Cookie", "session="+tok, "Cookie", "a=1; session="+forged), ok(jwtID("user-42")), "a=1", true},
		{"the same twice", get("/orders", "Cookie", "session="+tok+"; session="+tok), ok(jwtID("user-42")), "", true},
		{"after a space in a value", get("/orders", "Cookie", "session="+tok+"; x=1 session="+forged), ok(jwtID("user-42")), "", true},
		{"after a space, first", get("/orders", "Cookie", "x=1 session="+forged+"; session="+tok), invalid("bad signature"), "", true},
		{"after a tab in a value", get("/orders", "Cookie", "a=1; session="+tok+"; x=1\tsession="+forged+"; b=2"), ok(jwtID("user-42")), "a=1; b=2", true},
		{"after white space past a comma", get("/orders", "Cookie", "session="+tok+"; a=1,x session="+forged), ok(jwtID("user-42")), "a=1", true},
		{"after a blank past the token", get("/orders", "Cookie", "session="+tok+" x=1 \vsession="+forged+"; b=2"), ok(jwtID("user-42")), "b=2", true},
		{"white space in values", get("/orders", "Cookie", "name=John Smith; session="+tok+"; a=1  b=2 c ;d= x"), ok(jwtID("user-42")), "name=John Smith; a=1  b=2 c; d= x", false},
		{"alone after a comma", get("/orders", "Cookie", "a=1, session = "+tok+" ; b=2"), ok(jwtID("user-42")), "a=1; b=2", false},
		{"no value", get("/orders", "Cookie", "session"), noCreds, "", false},
		{"cookies without =", get("/orders", "Cookie", "flag; session="+tok+"; other;b=2"), ok(jwtID("user-42")), "flag; other; b=2", false},
		{"bearer, look-alikes stripped", get("/orders", "Authorization", "Bearer "+tok, "Cookie", "a=1; session =x, session=y; flag", "Cookie", " session\t=z;list=p,q"),
			ok(jwtID("user-42")), "a=1; flag; list=p,q", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := strip.Do(c.req)
			check(t, res, c.w)
			if got := strings.Join(res.Req.Header.Values("Cookie"), "|"); c.w.status == 200 && got != c.cookie {
				t.Fatalf("origin got Cookie %q, want %q", got, c.cookie)
			}
			if c.two {
				check(t, keep.Do(c.req), twoCookies)
			}
		})
	}
}

// TestTokenCookieQuotedComma: a comma inside a quoted value separates no
// cookie to the origin's parsers (net/http, Node's cookie package,
// SimpleCookie read other="x, session=y" as other alone), so the plugin
// neither checks, strips nor refuses what follows it; a quote that opens
// no value or has closed still leaves the comma a separator. A quote that
// closes past a ';' is refused (TestTokenCookieQuoteSpansSemicolon). White
// space inside quotes hides no cookie from SimpleCookie either; after them
// it does.
func TestTokenCookieQuotedComma(t *testing.T) {
	k := mustKeys(t)
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	forged := tok[:len(tok)-2] + "AA"
	twoCookies := want{400, realm + `, error="invalid_request", error_description="more than one token cookie"`, nil}
	malformedCookie := want{400, realm + `, error="invalid_request", error_description="malformed token cookie"`, nil}
	strip := newHost(t, baseConfig(t, cookieConfig))
	keep := newHost(t, baseConfig(t, map[string]any{"token_cookie": "session", "cookie_origins": []string{"https://app.example"}, "strip_credentials": false}))
	for _, c := range []struct {
		name, cookie string
		w            want // with strip_credentials
		// origin is what the origin gets in Cookie with strip_credentials.
		origin string
		// lookAlike: the token cookie is there twice, refused without
		// strip_credentials; otherwise the request passes as it came.
		lookAlike bool
	}{
		{"quoted alone", `other="x, session=` + forged + `"`, noCreds, "", false},
		{"quoted beside the token", "session=" + tok + `; other="x, session=` + forged + `"; b=2`, ok(jwtID("user-42")), `other="x, session=` + forged + `"; b=2`, false},
		{"quoted after blanks", "session=" + tok + `, other = "x,session=` + forged + `"`, ok(jwtID("user-42")), `other = "x,session=` + forged + `"`, false},
		{"quote not opening the value", "session=" + tok + `; other=a"x, session=` + forged + `"`, ok(jwtID("user-42")), `other=a"x`, true},
		{"comma after the closing quote", "session=" + tok + `; other="x", session=` + forged, ok(jwtID("user-42")), `other="x"`, true},
		{"quote closed past a semicolon", "session=" + tok + `; other="x, session=` + forged + `; b="2"`, malformedCookie, "", false},
		{"semicolon in quotes", "session=" + tok + `; other="x; session=` + forged + `"`, malformedCookie, "", false},
		{"blank in quotes", `q="a session=` + forged + `"; session=` + tok, ok(jwtID("user-42")), `q="a session=` + forged + `"`, false},
		{"blank after the closing quote", "session=" + tok + `; q="a b" session=` + forged + `; b=2`, ok(jwtID("user-42")), `b=2`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := get("/orders", "Cookie", c.cookie)
			res := strip.Do(req)
			check(t, res, c.w)
			if got := strings.Join(res.Req.Header.Values("Cookie"), "|"); c.w.status == 200 && got != c.origin {
				t.Fatalf("origin got Cookie %q, want %q", got, c.origin)
			}
			if c.lookAlike {
				check(t, keep.Do(req), twoCookies)
				return
			}
			res = keep.Do(req)
			check(t, res, c.w)
			if got := strings.Join(res.Req.Header.Values("Cookie"), "|"); c.w.status == 200 && got != c.cookie {
				t.Fatalf("strip_credentials false: origin got Cookie %q, want %q", got, c.cookie)
			}
		})
	}
}

// TestTokenCookieQuoteSpansSemicolon: SimpleCookie (Bottle, older
// aiohttp) reads a double-quoted value past a ';' and splits at the white
// space after it, so other="a;b" session=<forged> is a second session to
// it (the last, which it keeps) where the plugin, splitting at every ';',
// sees the cookie `b" session`. A field with such a quote and the token
// cookie's name and '=' after it is refused in both strip modes, whichever
// credential came, as is one whose quote closes in a later Cookie field
// (an origin joins them). A quoted value after a blank other than space
// or tab opens as it does to SimpleCookie, and what follows it is a
// look-alike. Quotes that close before a ';', or span one with no token
// cookie after them, change nothing.
func TestTokenCookieQuoteSpansSemicolon(t *testing.T) {
	k := mustKeys(t)
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	forged := tok[:len(tok)-2] + "AA"
	twoCookies := want{400, realm + `, error="invalid_request", error_description="more than one token cookie"`, nil}
	malformed := want{400, realm + `, error="invalid_request", error_description="malformed token cookie"`, nil}
	strip := newHost(t, baseConfig(t, cookieConfig))
	keep := newHost(t, baseConfig(t, map[string]any{"token_cookie": "session", "cookie_origins": []string{"https://app.example"}, "strip_credentials": false}))
	passed := ok(jwtID("user-42"))
	bearerCookie := get("/orders", "Authorization", "Bearer "+tok, "Cookie", `other="a;b" session=`+forged)
	for _, c := range []struct {
		name     string
		req      host.Request
		w, wKeep want // wKeep.status 0: not checked in the loop
		// cookie is what the origin gets in Cookie with strip_credentials.
		cookie string
	}{
		{"quoted semicolon hides a session", get("/orders", "Cookie", "session="+tok+`; other="a;b" session=`+forged), malformed, malformed, ""},
		{"before the checked one", get("/orders", "Cookie", `other="a;b" session=`+forged+"; session="+tok), malformed, malformed, ""},
		{"white space before =", get("/orders", "Cookie", "session="+tok+`; other = "a;b"  session`+"\t= "+forged), malformed, malformed, ""},
		{"vertical tab before the quote", get("/orders", "Cookie", "session="+tok+"; other=\v\"a;b\" session="+forged), malformed, malformed, ""},
		{"escaped quote", get("/orders", "Cookie", "session="+tok+`; other="a\";b" session=`+forged), malformed, malformed, ""},
		{"after a second quote", get("/orders", "Cookie", "session="+tok+`; other="a;b" x="c" session=`+forged), malformed, malformed, ""},
		{"closed in a later field", get("/orders", "Cookie", "session="+tok+`; other="a`, "Cookie", `b" session=`+forged), malformed, malformed, ""},
		{"escape at a field's end", get("/orders", "Cookie", "session="+tok+`; other="a\`, "Cookie", `b" session=`+forged), malformed, malformed, ""},
		// Stripping reads Cookie once the token has passed: its values
		// are set, and go nowhere with the answer. Kept: below.
		{"bearer", bearerCookie, want{400, malformed.challenge, jwtID("user-42")}, want{}, ""},
		{"public path", get("/health", "Cookie", `other="a;b" session=`+forged), malformed, want{200, "", nil}, ""},
		{"vertical tab, no semicolon", get("/orders", "Cookie", "session="+tok+"; q=\v\"a b\" session="+forged+"; b=2"), passed, twoCookies, "b=2"},
		{"after a quoted value ending in =", get("/orders", "Cookie", "session="+tok+`; t="YWJjZA=="; u="a;b" session=`+forged), malformed, malformed, ""},
		{"after raw JSON ending in =", get("/orders", "Cookie", "session="+tok+`; st={"id":"YWJjZA=="}; q="a;b" session=`+forged), malformed, malformed, ""},
		{"no token cookie after it", get("/orders", "Cookie", "session="+tok+`; other="a;b" x=1`), passed, passed, `other="a; b" x=1`},
		// A quote no name can end before opens no value to SimpleCookie.
		{"quote in the name", get("/orders", "Cookie", "session="+tok+`; t"x="a;b" session=`+forged), passed, passed, `t"x="a; b" session=` + forged},
		{"raw JSON ending in =", get("/orders", "Cookie", `st={"id":"YWJjZA=="}; session=`+tok+`; q="a"`), passed, passed, `st={"id":"YWJjZA=="}; q="a"`},
		{"unclosed", get("/orders", "Cookie", "session="+tok+`; other="a; b=1 session`), passed, passed, `other="a; b=1 session`},
		{"quote opening no value", get("/orders", "Cookie", "session="+tok+`; other=a"b;c" x=1`), passed, passed, `other=a"b; c" x=1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := strip.Do(c.req)
			check(t, res, c.w)
			if got := strings.Join(res.Req.Header.Values("Cookie"), "|"); c.w.status == 200 && got != c.cookie {
				t.Fatalf("origin got Cookie %q, want %q", got, c.cookie)
			}
			if c.wKeep.status != 0 {
				check(t, keep.Do(c.req), c.wKeep)
			}
		})
	}
	// Kept, the cookies pass beside a bearer token as they came, as
	// session=<unchecked> does: the plugin does not read them.
	res := keep.Do(bearerCookie)
	if v, _ := res.Req.Header.Get("Cookie"); res.Resp.Status != 200 || v != `other="a;b" session=`+forged {
		t.Fatalf("strip_credentials false, bearer: %d, Cookie %q", res.Resp.Status, v)
	}
}

// TestTokenCookiePHPNames: PHP turns ' ', '.' and '[' in a cookie's name
// into '_' (white space at its start skipped), so with a token cookie
// named se_ssion, se.ssion=<forged> reaches a PHP origin as se_ssion: it
// is a look-alike, checked, stripped and refused twice as the others are.
// A token cookie named a.b is a_b to PHP, and so is a cookie a_b.
func TestTokenCookiePHPNames(t *testing.T) {
	k := mustKeys(t)
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	forged := tok[:len(tok)-2] + "AA"
	twoCookies := want{400, realm + `, error="invalid_request", error_description="more than one token cookie"`, nil}
	hosts := map[[2]string]*sdktest.Host{}
	for _, c := range []struct {
		token, name string
		lookAlike   bool
	}{
		{"se_ssion", "se.ssion", true},
		{"se_ssion", "se ssion", true},
		{"se_ssion", "se[ssion", true},
		{"se_ssion", " \tse.ssion", true},
		{"my_se_ssion", "my.se[ssion", true},
		{"sid_", "sid ", true},
		{"a.b", "a_b", true},
		{"a.b", "a b", true},
		{"se_ssion", "se-ssion", false},
		{"se_ssion", "sexssion", false},
		{"se_ssion", "se__ssion", false},
		{"se_ssion", "se[ss]ion", false},
		{"session", "se.ssion", false},
	} {
		t.Run(c.token+" vs "+strconv.Quote(c.name), func(t *testing.T) {
			h := func(strip bool) *sdktest.Host {
				key := [2]string{c.token, strconv.FormatBool(strip)}
				if hosts[key] == nil {
					hosts[key] = newHost(t, baseConfig(t, map[string]any{"token_cookie": c.token, "cookie_origins": []string{"https://app.example"}, "strip_credentials": strip}))
				}
				return hosts[key]
			}
			other := c.name + "=" + forged
			// Alone, it is checked.
			w := noCreds
			if c.lookAlike {
				w = invalid("bad signature")
			}
			check(t, h(true).Do(get("/orders", "Cookie", other)), w)
			// Beside the token cookie, it is cut out or refused.
			req := get("/orders", "Cookie", c.token+"="+tok+"; "+other+"; b=2")
			res := h(true).Do(req)
			check(t, res, ok(jwtID("user-42")))
			wantCookie := strings.TrimLeft(other, " \t") + "; b=2"
			if c.lookAlike {
				wantCookie = "b=2"
			}
			if got := strings.Join(res.Req.Header.Values("Cookie"), "|"); got != wantCookie {
				t.Fatalf("origin got Cookie %q, want %q", got, wantCookie)
			}
			if c.lookAlike {
				check(t, h(false).Do(req), twoCookies)
			} else {
				check(t, h(false).Do(req), ok(jwtID("user-42")))
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	k := mustKeys(t)
	h := newHost(t, baseConfig(t, nil))
	h.Do(get("/health"))
	h.Do(get("/orders"))
	h.Do(bearerReq("x"))
	h.Do(bearerReq(sign(t, "HS256", k.hmac, "hs256", claims(nil))))
	for name, n := range map[string]float64{
		"wedge_plugin_auth_public_total": 1, "wedge_plugin_auth_rejected_total": 2, "wedge_plugin_auth_accepted_total": 1,
	} {
		if got := wasmtest.Metric(t, h.Registry, name, nil); got != n {
			t.Errorf("%s = %v, want %v", name, got, n)
		}
	}
}

func TestBadConfig(t *testing.T) {
	k := mustKeys(t)
	small, err := rsaKey(1024)
	if err != nil {
		t.Fatal(err)
	}
	priv := jwstest.JWK(k.p256, "p", "ES256")
	priv["d"] = b64(k.p256.D.Bytes())
	for _, c := range []struct {
		name string
		cfg  []byte
		msg  string
	}{
		{"empty", nil, "config is required"},
		{"not an object", []byte(`[1]`), "not a JSON object"},
		{"not JSON", []byte(`{"realm":`), "not a JSON object"},
		{"no credentials", []byte(`{"realm":"api"}`), "no usable jwks keys and no api_keys"},
		{"unknown field", baseConfig(t, map[string]any{"audiance": "api"}), `unknown config field "audiance"`},
		{"realm with quote", baseConfig(t, map[string]any{"realm": `a"b`}), "realm must be"},
		{"realm empty", baseConfig(t, map[string]any{"realm": ""}), "realm must be a non-empty string"},
		{"leeway not a duration", baseConfig(t, map[string]any{"leeway": "soon"}), `leeway "soon" is not a duration`},
		{"leeway fraction", baseConfig(t, map[string]any{"leeway": "1500ms"}), "whole number of seconds"},
		{"leeway too large", baseConfig(t, map[string]any{"leeway": "2h"}), "outside 0s..10m0s"},
		{"leeway number", baseConfig(t, map[string]any{"leeway": 30}), "leeway must be a non-empty string"},
		{"audience number", baseConfig(t, map[string]any{"audience": 1}), "audience must be an array of strings"},
		{"public relative", baseConfig(t, map[string]any{"public": []string{"health"}}), `public path "health" must start with '/'`},
		{"public dot segment", baseConfig(t, map[string]any{"public": []string{"/a/../b"}}), `public path "/a/../b"`},
		{"require_exp string", baseConfig(t, map[string]any{"require_exp": "no"}), "require_exp must be true or false"},
		{"strip string", baseConfig(t, map[string]any{"strip_credentials": "no"}), "strip_credentials must be true or false"},
		{"api key header Authorization", baseConfig(t, map[string]any{"api_key_header": "authorization"}), "other than Authorization"},
		{"api key header not a token", baseConfig(t, map[string]any{"api_key_header": "X Key"}), `api_key_header "X Key"`},
		{"api key short digest", baseConfig(t, map[string]any{"api_keys": []map[string]string{{"name": "ci", "sha256": "abcd"}}}), "api_keys[0] (ci): sha256 must be 64 hex digits"},
		{"api key plain key", baseConfig(t, map[string]any{"api_keys": []map[string]string{{"name": "ci", "sha256": ciKey}}}), "sha256 must be 64 hex digits"},
		{"api key no name", baseConfig(t, map[string]any{"api_keys": []map[string]string{{"sha256": hexSum(ciKey)}}}), "api_keys[0] needs a name"},
		{"api key unknown field", baseConfig(t, map[string]any{"api_keys": []map[string]string{{"name": "ci", "key": ciKey}}}), `api_keys[0]: unknown field "key"`},
		{"api key duplicate", baseConfig(t, map[string]any{"api_keys": []map[string]string{{"name": "a", "sha256": hexSum(ciKey)}, {"name": "b", "sha256": hexSum(ciKey)}}}), "api_keys[1] (b): duplicate"},
		{"api keys object", baseConfig(t, map[string]any{"api_keys": map[string]string{}}), "api_keys must be an array"},
		{"jwks without keys", baseConfig(t, map[string]any{"jwks": map[string]any{}}), "jwks must be a JWK Set"},
		{"jwks keys not array", baseConfig(t, map[string]any{"jwks": map[string]any{"keys": 1}}), "jwks keys must be an array"},
		{"jwk unsupported kty", baseConfig(t, map[string]any{"jwks": jwks(map[string]any{"kty": "DSA"})}), `jwks key 0 (kid ""): unsupported kty "DSA"`},
		{"jwk unsupported alg", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.p256, "k", "ES512"))}), `alg "ES512" is not supported for kty "EC"`},
		{"jwk alg none", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.hmac, "k", "none"))}), `alg "none" is not supported`},
		{"jwk alg of another family", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.rsa, "k", "HS256"))}), `alg "HS256" is not supported for kty "RSA"`},
		{"jwk unsupported curve", baseConfig(t, map[string]any{"jwks": jwks(map[string]any{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"})}), `unsupported curve "P-521"`},
		{"jwk curve mismatch", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.p384, "k", "ES256"))}), "the host refused it for ES256"},
		{"jwk private", baseConfig(t, map[string]any{"jwks": jwks(priv)}), "holds private key material"},
		// Weak keys are refused at configure with the key and the rule named.
		{"jwk short RSA", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(small, "small", "RS256"))}), `jwks key 0 (kid "small"): RSA modulus of 1024 bits, want at least 2048`},
		{"jwk RSA exponent 1", baseConfig(t, map[string]any{"jwks": jwks(rsaExp(k, "e1", "AQ"))}), `jwks key 0 (kid "e1"): RSA exponent 1: want an odd number of at least 3`},
		{"jwk RSA exponent 2", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.hmac, "ok", "HS256"), rsaExp(k, "e2", ""))}), `jwks key 1 (kid "e2"): RSA exponent 2`},
		{"jwk HS256 of 1 byte", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK([]byte("k"), "tiny", "HS256"))}), `jwks key 0 (kid "tiny"): HS256 needs a secret of at least 32 bytes (RFC 7518 §3.2), this one has 1`},
		{"jwk HS512 of 32 bytes", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.hmac[:32], "h", "HS512"))}), `jwks key 0 (kid "h"): HS512 needs a secret of at least 64 bytes`},
		{"jwk oct of 31 bytes, no alg", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.hmac[:31], "h", ""))}), `jwks key 0 (kid "h"): HS256 needs a secret of at least 32 bytes`},
		{"jwk bad base64", baseConfig(t, map[string]any{"jwks": jwks(map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "!!"})}), "the host refused it for EdDSA"},
		{"jwk duplicate kid", baseConfig(t, map[string]any{"jwks": jwks(jwstest.JWK(k.p256, "k", ""), jwstest.JWK(k.ecOtherCurve, "k", ""))}), `jwks key 1: duplicate kid "k" for ES256`},
		{"token_cookie without origins", baseConfig(t, map[string]any{"token_cookie": "session"}), "token_cookie needs cookie_origins"},
		{"token_cookie without jwks", baseConfig(t, map[string]any{"jwks": nil, "token_cookie": "session", "cookie_origins": []string{"https://a.example"}}), "token_cookie needs jwks keys"},
		{"token_cookie not a name", baseConfig(t, map[string]any{"token_cookie": "a=b", "cookie_origins": []string{"https://a.example"}}), `token_cookie "a=b" is not a cookie name`},
		{"cookie_origins alone", baseConfig(t, map[string]any{"cookie_origins": []string{"https://a.example"}}), "cookie_origins without token_cookie"},
		{"cookie_origins with a path", baseConfig(t, map[string]any{"token_cookie": "s", "cookie_origins": []string{"https://a.example/app"}}), `cookie_origins "https://a.example/app" must be an origin`},
		{"cookie_origins upper case", baseConfig(t, map[string]any{"token_cookie": "s", "cookie_origins": []string{"https://A.example"}}), "lower case"},
		{"cookie_origins no scheme", baseConfig(t, map[string]any{"token_cookie": "s", "cookie_origins": []string{"a.example"}}), "must be an origin"},
		{"only enc keys", baseConfig(t, map[string]any{"api_keys": nil, "jwks": jwks(map[string]any{"kty": "RSA", "use": "enc"})}), "no usable jwks keys"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := sdktest.Configure(&auth{}, c.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error containing %q", err, c.msg)
			}
		})
	}
}

// TestWasm runs the main paths through the real Wasm build, with the real
// clock (tokens are signed relative to time.Now).
func TestWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	k := mustKeys(t)
	p := wasmtest.Load(t, ".", baseConfig(t, cookieConfig))
	var seen *host.Request
	p.Origin = func(r *host.Request) host.Response { seen = r; return host.Response{Status: 200} }
	real := time.Now().Unix()
	fresh := claims(map[string]any{"iat": real - 60, "nbf": real - 60, "exp": real + 600})
	expired := claims(map[string]any{"iat": real - 600, "nbf": nil, "exp": real - 60})
	for _, c := range []struct {
		name string
		req  host.Request
		w    want
	}{
		{"public", get("/health/live"), want{200, "", nil}},
		{"no credentials", get("/orders"), noCreds},
		{"HS256", bearerReq(sign(t, "HS256", k.hmac, "hs256", fresh)), ok(jwtID("user-42"))},
		{"RS256", bearerReq(sign(t, "RS256", k.rsa, "rs256", fresh)), ok(jwtID("user-42"))},
		{"PS256", bearerReq(sign(t, "PS256", k.rsa, "ps256", fresh)), ok(jwtID("user-42"))},
		{"ES256", bearerReq(sign(t, "ES256", k.p256, "es256", fresh)), ok(jwtID("user-42"))},
		{"EdDSA", bearerReq(sign(t, "EdDSA", k.ed, "ed", fresh)), ok(jwtID("user-42"))},
		{"expired", bearerReq(sign(t, "ES256", k.p256, "es256", expired)), invalid("token expired")},
		{"bad signature", bearerReq(sign(t, "EdDSA", k.ed2, "ed", fresh)), invalid("bad signature")},
		{"alg confusion", bearerReq(sign(t, "HS256", k.rsaPKIX, "rs256", fresh)), invalid("algorithm not accepted for the key")},
		{"alg none", bearerReq(signRaw(t, "none", nil, []byte(`{"alg":"none"}`), mustJSON(t, fresh))), invalid("algorithm not accepted for the key")},
		{"unknown kid", bearerReq(sign(t, "RS256", k.rsa, "nope", fresh)), invalid("unknown key id")},
		{"API key", get("/orders", "X-Api-Key", ciKey), ok(map[string]string{"identity-method": "api-key", "identity-key": "ci"})},
		{"bad API key", get("/orders", "X-Api-Key", "nope"), invalid("invalid API key")},
		{"cookie", get("/orders", "Cookie", "session="+sign(t, "ES256", k.p256, "es256", fresh), "Origin", "https://app.example"), ok(jwtID("user-42"))},
		{"cookie from another site", get("/orders", "Cookie", "session="+sign(t, "ES256", k.p256, "es256", fresh), "Origin", "https://evil.example"), want{403, realm, nil}},
		{"two token cookies, the first checked", get("/orders", "Cookie", "session="+sign(t, "ES256", k.p256, "es256", fresh)+"; session ="+sign(t, "EdDSA", k.ed2, "ed", fresh)),
			ok(jwtID("user-42"))},
		{"two token cookies, a bad one first", get("/orders", "Cookie", "session =x; session="+sign(t, "ES256", k.p256, "es256", fresh)),
			invalid("malformed token")},
		{"a comma in a quoted value", get("/orders", "Cookie", `other="x, session=`+sign(t, "EdDSA", k.ed2, "ed", fresh)+`"`), noCreds},
	} {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			res := p.Do(c.req)
			check(t, res, c.w)
			if (seen != nil) != (c.w.status == 200) {
				t.Fatalf("origin asked: %v", seen != nil)
			}
		})
	}
}

// TestTokenCookieRealWorld: Cookie fields as browsers send them for real
// sites (analytics, CDN and load-balancer cookies, prefixed names, base64
// padding, URL-encoded and raw JSON from consent banners, white space,
// quotes, empty values, cookies without '=', names and values holding
// "session", UTF-8, many cookies), each with a valid token cookie at the
// start, in the middle and at the end. Stripped, the request passes and
// the origin gets every other cookie byte for byte, in order, joined with
// "; "; kept, it passes and the origin gets the field as it came. None of
// these is a look-alike: a refusal or a changed cookie here is an outage
// for every user of a site that sets it.
func TestTokenCookieRealWorld(t *testing.T) {
	k := mustKeys(t)
	tok := sign(t, "HS256", k.hmac, "hs256", claims(nil))
	strip := newHost(t, baseConfig(t, cookieConfig))
	keep := newHost(t, baseConfig(t, map[string]any{"token_cookie": "session", "cookie_origins": []string{"https://app.example"}, "strip_credentials": false}))
	var many []string
	for i := range 50 {
		many = append(many, "c"+strconv.Itoa(i)+"=v"+strconv.Itoa(i)+"_"+strings.Repeat("x", i))
	}
	for _, c := range []struct {
		name    string
		cookies []string
	}{
		{"google analytics", []string{"_ga=GA1.2.1234567890.1600000000", "_gid=GA1.2.987.1600000000", "_gat_UA-1234-1=1", "_ga_ABC123XYZ=GS1.1.1600000000.1.1.1600000100.0.0.0"}},
		{"prefixed names", []string{"__Host-csrf=4f3c2b1a0e9d8c7b", "__Secure-next-auth.session-token=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..abc.def.ghi", "__Host-next-auth.csrf-token=abc%7Cdef"}},
		{"base64 padding", []string{"b1=YWJjZA==", "b2=YWJjZGU=", "b3=YWJj", "tok=dGVzdA==", "e=YQ=="}},
		{"url-encoded JSON", []string{"prefs=%7B%22a%22%3A1%7D", "cart=%5B%7B%22id%22%3A12%2C%22qty%22%3A2%7D%5D"}},
		{"raw JSON consent", []string{`consent={"necessary":true,"analytics":false}`, "a=1"}},
		{"raw JSON with spaces", []string{`consent={"necessary": true, "analytics": false, "marketing": false}`}},
		{"raw JSON cookieconsent", []string{`cc_cookie={"categories":["necessary","analytics"],"revision":0,"data":null,"rfc_cookie":false,"consent_date":"2026-12-07T06:00:00.000Z","consent_uuid":"4e1e5b8a-8f9b-4c4c-9a0e-1f2b3c4d5e6f","last_consent_update":"2026-12-07T06:00:00.000Z"}`}},
		{"raw JSON base64 member", []string{`st={"id":"YWJjZA==","v":1}`, `q="abc"`}},
		{"raw JSON ending in =", []string{`st={"id":"YWJjZA=="}`, `q="abc"`}},
		{"raw JSON with a query", []string{`r={"path":"/search?page="}`, `ajs_user_id="4e1e5b8a"`, `ajs_user_traits={"plan":"pro"}`}},
		{"quoted base64", []string{`t="YWJjZA=="`, `u="YWJjZGU="`}},
		{"onetrust", []string{"OptanonAlertBoxClosed=2026-12-07T06:00:00.000Z", "OptanonConsent=isGpcEnabled=0&datestamp=Mon+Dec+07+2026+07%3A00%3A00+GMT%2B0100&version=6.30.0&isIABGlobal=false&hosts=&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0"}},
		{"space in value", []string{"name=John Smith", "city=New York"}},
		{"quoted", []string{`q="abc"`, `qs="a b"`, `qc="a,b"`, `empty_q=""`}},
		{"empty values", []string{"empty=", "e2=", "x=1"}},
		{"no =", []string{"flag", "a=1", "other"}},
		{"many cookies", many},
		{"cloudflare", []string{"__cf_bm=Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789.-1600000000-0-AQ+BcDeFgH/IjKlMnOpQ==", "cf_clearance=AbCdEf.GhIjKl-1600000000-0-1-a1b2c3d4.e5f6a7b8.c9d0e1f2-150.2.1600000000", "__cflb=02DiuFA7zZL3enAQJD3AQdFBxyJpVfuSz"}},
		{"aws alb", []string{"AWSALB=XyZ1aBcDeF/gHiJkLmNoPqRsTuVwXyZ+AbCdEfGhIjKlMnOp==", "AWSALBCORS=XyZ1aBcDeF/gHiJkLmNoPqRsTuVwXyZ+AbCdEfGhIjKlMnOp==", "AWSALBTG=abc", "AWSALBTGCORS=abc"}},
		{"optimizely hotjar", []string{"optimizelyEndUserId=oeu1600000000000r0.123456789", "_hjSessionUser_123=eyJpZCI6IjEyMzQ1Njc4LWFiY2QtNTY3OC1lZmdoLTEyMzQ1Njc4OTAxMiIsImNyZWF0ZWQiOjE2MDAwMDAwMDAwMDAsImV4aXN0aW5nIjp0cnVlfQ==", "_hjSession_123=eyJpZCI6ImFiYyIsImMiOjE2MDAwMDAwMDAwMDAsInMiOjAsInIiOjAsInNiIjowfQ==", "_hjAbsoluteSessionInProgress=0"}},
		{"facebook hubspot", []string{"_fbp=fb.1.1600000000000.1234567890", "_gcl_au=1.1.123.1600000000", "hubspotutk=0123456789abcdef0123456789abcdef", "__hssc=12345.1.1600000000000", "__hstc=12345.abc.1600000000000.1600000000000.1600000000000.1"}},
		{"session in names and values", []string{"last_page=/session/new", "x=session", "sessionid2=abc", "mysession=1", "session_id=abc", "sessionid=xyz", "PHPSESSID=abc123", "JSESSIONID=ABC.node1", "connect.sid=s%3Aabc.def", "redirect=/login?next=/session"}},
		{"session in a value after a space", []string{"msg=new session started", "title=my session"}},
		{"utf-8", []string{"city=São Paulo", "greet=à", "emoji=☕"}},
		{"asp.net and rails", []string{".AspNetCore.Antiforgery.abc=CfDJ8Abc-Def_Ghi", "ASP.NET_SessionId=abcdefghijklmnopqrstuvwx", "_myapp_session=abc--def%3D%3D"}},
	} {
		for _, pos := range []string{"start", "middle", "end"} {
			at := map[string]int{"start": 0, "middle": len(c.cookies) / 2, "end": len(c.cookies)}[pos]
			fields := append(append(append([]string{}, c.cookies[:at]...), "session="+tok), c.cookies[at:]...)
			header := strings.Join(fields, "; ")
			t.Run(c.name+"/"+pos, func(t *testing.T) {
				res := strip.Do(get("/orders", "Cookie", header))
				check(t, res, ok(jwtID("user-42")))
				if got, want := strings.Join(res.Req.Header.Values("Cookie"), "|"), strings.Join(c.cookies, "; "); got != want {
					t.Fatalf("origin got Cookie\n%q, want\n%q", got, want)
				}
				res = keep.Do(get("/orders", "Cookie", header))
				check(t, res, ok(jwtID("user-42")))
				if got := strings.Join(res.Req.Header.Values("Cookie"), "|"); got != header {
					t.Fatalf("strip_credentials false: origin got Cookie\n%q, want\n%q", got, header)
				}
			})
		}
	}
	// Over HTTP/2 a browser may send each cookie as a field of its own
	// (RFC 9113 8.2.3); stripped, the others reach the origin as one.
	crumbs := get("/orders", "Cookie", "_ga=GA1.2.1234567890.1600000000", "Cookie", "session="+tok, "Cookie", `consent={"necessary":true,"analytics":false}`, "Cookie", `q="abc"`, "Cookie", "name=John Smith")
	res := strip.Do(crumbs)
	check(t, res, ok(jwtID("user-42")))
	if got, want := strings.Join(res.Req.Header.Values("Cookie"), "|"), `_ga=GA1.2.1234567890.1600000000; consent={"necessary":true,"analytics":false}; q="abc"; name=John Smith`; got != want {
		t.Fatalf("HTTP/2 crumbs: origin got Cookie\n%q, want\n%q", got, want)
	}
	res = keep.Do(crumbs)
	check(t, res, ok(jwtID("user-42")))
	if got, want := strings.Join(res.Req.Header.Values("Cookie"), "|"), `_ga=GA1.2.1234567890.1600000000|session=`+tok+`|consent={"necessary":true,"analytics":false}|q="abc"|name=John Smith`; got != want {
		t.Fatalf("HTTP/2 crumbs, strip_credentials false: origin got Cookie\n%q, want\n%q", got, want)
	}
}
