package main

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm/abi"
)

// maxLeeway bounds the clock-skew allowance: past a few minutes it stops
// absorbing skew and starts extending the life of every token.
const maxLeeway = 10 * time.Minute

// verifier is one registered key, bound to one algorithm by the host.
type verifier struct {
	kid string
	key sdk.Key
}

// apiKey is one accepted API key, known only by its SHA-256 digest.
type apiKey struct {
	name   string
	digest [32]byte
}

// config is the parsed plugin configuration; it never changes after
// Configure.
type config struct {
	refusals     [reasonCount]refusal // every refusal's answer, built once
	keys         []verifier
	tokens       *sdk.TokenVerifier // the keys, issuer, audience and times as a host policy
	issuer       string
	audience     []string
	leeway       time.Duration
	requireExp   bool
	public       []string
	apiKeys      []apiKey
	apiKeyHeader string
	strip        bool
	preflight    bool // CORS preflights pass without credentials
	// tokenCookie names the cookie a browser's JWT may come in (a
	// WebSocket handshake from a browser can carry no Authorization);
	// cookieOrigins are the origins whose pages may use it.
	tokenCookie   string
	cookieOrigins []string
}

// parseConfig reads the JSON configuration and registers the JWKS keys with
// the host. Every error names the field at fault, since it is what an
// operator sees when a rollout refuses the plugin.
func parseConfig(data []byte) (*config, error) {
	c := &config{requireExp: true, strip: true, preflight: true, apiKeyHeader: "X-Api-Key"}
	realm := "api"
	if len(data) == 0 {
		return nil, errors.New("auth: config is required: give jwks keys or api_keys")
	}
	var jwks []byte
	var it jsonscan.Iter
	for it.Object(data); it.Next(); {
		v := it.Value()
		var err error
		switch name := string(it.Name()); name {
		case "realm":
			realm, err = str(v, name)
			if err == nil && !validRealm(realm) {
				err = errors.New(`auth: realm must be non-empty printable ASCII without '"' or '\'`)
			}
		case "jwks":
			jwks = v
		case "issuer":
			c.issuer, err = str(v, name)
		case "audience":
			c.audience, err = strs(v, name, true)
		case "leeway":
			c.leeway, err = leeway(v)
		case "require_exp":
			c.requireExp, err = boolean(v, name)
		case "public":
			c.public, err = publicPaths(v)
		case "api_keys":
			c.apiKeys, err = apiKeys(v)
		case "api_key_header":
			c.apiKeyHeader, err = str(v, name)
			if err == nil && (!abi.ValidHeaderName(c.apiKeyHeader) || strings.EqualFold(c.apiKeyHeader, "Authorization")) {
				err = fmt.Errorf("auth: api_key_header %q must be a header name other than Authorization", c.apiKeyHeader)
			}
		case "strip_credentials":
			c.strip, err = boolean(v, name)
		case "preflight":
			c.preflight, err = boolean(v, name)
		case "token_cookie":
			c.tokenCookie, err = str(v, name)
			if err == nil && !abi.ValidHeaderName(c.tokenCookie) {
				// RFC 6265 4.1.1: a cookie name is an RFC 9110 token, as a
				// field name is.
				err = fmt.Errorf("auth: token_cookie %q is not a cookie name", c.tokenCookie)
			}
		case "cookie_origins":
			c.cookieOrigins, err = origins(v)
		default:
			err = fmt.Errorf("auth: unknown config field %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("auth: config is not a JSON object: %w", err)
	}
	if jwks != nil {
		var err error
		if c.keys, err = parseJWKS(jwks); err != nil {
			return nil, err
		}
	}
	switch {
	case c.tokenCookie != "" && len(c.keys) == 0:
		return nil, errors.New("auth: token_cookie needs jwks keys: the cookie carries a JWT")
	case c.tokenCookie != "" && len(c.cookieOrigins) == 0:
		// A browser attaches the cookie to a request any site's page
		// makes, WebSocket handshakes included (cross-site WebSocket
		// hijacking): the Origin is what tells the app's own pages apart.
		return nil, errors.New("auth: token_cookie needs cookie_origins, the origins (https://app.example) whose pages may use it")
	case c.tokenCookie == "" && c.cookieOrigins != nil:
		return nil, errors.New("auth: cookie_origins without token_cookie")
	}
	if len(c.keys) == 0 && len(c.apiKeys) == 0 {
		return nil, errors.New("auth: config has no usable jwks keys and no api_keys: every request would be refused")
	}
	var err error
	if c.tokens, err = sdk.NewTokenVerifier(c.tokenPolicy()); err != nil {
		return nil, fmt.Errorf("auth: the host refused the token policy: %w", err)
	}
	c.refusals = refusals(`Bearer realm="` + realm + `"`)
	return c, nil
}

// tokenPolicy is the host's half of JWT checking: every key with its kid,
// the claim rules, and what a valid token forwards to the origin. With no
// keys (API keys only) the host still says why a bearer token fails:
// malformed, unknown kid or algorithm.
func (c *config) tokenPolicy() sdk.TokenPolicy {
	p := sdk.TokenPolicy{
		Issuer:        []byte(c.issuer),
		Leeway:        uint32(c.leeway / time.Second),
		RequireExpiry: c.requireExp,
		Forwards:      jwtForwards,
	}
	for _, k := range c.keys {
		p.Keys = append(p.Keys, abi.TokenKey{Key: k.key.Handle(), Kid: []byte(k.kid)})
	}
	for _, a := range c.audience {
		p.Audiences = append(p.Audiences, []byte(a))
	}
	return p
}

// jwtForwards is what a valid token becomes: its sub and iss claims, its
// scope (RFC 8693 4.2: a space-separated string) or else the scp claim
// some issuers use instead, a string or an array the host joins with
// spaces, and identity-method "jwt".
var jwtForwards = []abi.TokenForward{
	{Name: []byte(abi.IdentitySub), Claims: [][]byte{[]byte("sub")}},
	{Name: []byte(abi.IdentityIss), Claims: [][]byte{[]byte("iss")}},
	{Name: []byte(abi.IdentityScope), Claims: [][]byte{[]byte("scope"), []byte("scp")}},
	{Name: []byte(abi.IdentityMethod), Value: []byte("jwt")},
}

func str(v []byte, field string) (string, error) {
	s, err := jsonscan.String(v)
	if err != nil || s == "" {
		return "", fmt.Errorf("auth: %s must be a non-empty string", field)
	}
	return s, nil
}

func boolean(v []byte, field string) (bool, error) {
	b, err := jsonscan.Bool(v)
	if err != nil {
		return false, fmt.Errorf("auth: %s must be true or false", field)
	}
	return b, nil
}

// strs reads a list of non-empty strings; one string is a list of one when
// single is set (as for the JWT aud claim itself).
func strs(v []byte, field string, single bool) ([]string, error) {
	if single && len(v) > 0 && v[0] == '"' {
		s, err := str(v, field)
		return []string{s}, err
	}
	var out []string
	var it jsonscan.Iter
	for it.Array(v); it.Next(); {
		s, err := str(it.Value(), field+" element")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if it.Err() != nil {
		return nil, fmt.Errorf("auth: %s must be an array of strings", field)
	}
	return out, nil
}

func leeway(v []byte) (time.Duration, error) {
	s, err := str(v, "leeway")
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("auth: leeway %q is not a duration like \"30s\"", s)
	case d < 0 || d > maxLeeway:
		return 0, fmt.Errorf("auth: leeway %s is outside 0s..%s", d, maxLeeway)
	case d%time.Second != 0:
		// JWT times are whole seconds; a fraction would be silently dropped.
		return 0, fmt.Errorf("auth: leeway %s is not a whole number of seconds", d)
	}
	return d, nil
}

func publicPaths(v []byte) ([]string, error) {
	ps, err := strs(v, "public", false)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p[0] != '/' || !cleanPath(p) || strings.ContainsAny(p, "?#") {
			return nil, fmt.Errorf("auth: public path %q must start with '/' and hold no dot segments, '%%' escapes of '.', '/' or '\\', '?' or '#'", p)
		}
	}
	return ps, nil
}

// origins reads cookie_origins: each an origin as a browser sends it in
// Origin (RFC 6454 6.1), a scheme, "://", a host and an optional port, in
// lower case.
func origins(v []byte) ([]string, error) {
	os, err := strs(v, "cookie_origins", false)
	if err != nil {
		return nil, err
	}
	for _, o := range os {
		scheme, host, ok := strings.Cut(o, "://")
		if !ok || (scheme != "https" && scheme != "http") || host == "" || strings.ContainsAny(host, "/?#@ ") || o != strings.ToLower(o) {
			return nil, fmt.Errorf("auth: cookie_origins %q must be an origin as browsers send it: https://host or https://host:port, lower case, no path", o)
		}
	}
	return os, nil
}

func apiKeys(v []byte) ([]apiKey, error) {
	var out []apiKey
	var it jsonscan.Iter
	for it.Array(v); it.Next(); {
		i := len(out)
		var k apiKey
		var sum string
		var inner jsonscan.Iter
		for inner.Object(it.Value()); inner.Next(); {
			var err error
			switch name := string(inner.Name()); name {
			case "name":
				k.name, err = str(inner.Value(), "api_keys name")
			case "sha256":
				sum, err = str(inner.Value(), "api_keys sha256")
			default:
				err = fmt.Errorf("auth: api_keys[%d]: unknown field %q", i, name)
			}
			if err != nil {
				return nil, err
			}
		}
		if inner.Err() != nil {
			return nil, fmt.Errorf("auth: api_keys[%d] must be an object {\"name\":...,\"sha256\":...}", i)
		}
		if k.name == "" || !abi.ValidHeaderValue(k.name) {
			return nil, fmt.Errorf("auth: api_keys[%d] needs a name of printable characters", i)
		}
		// Digests, not keys: a leaked config must not hand out credentials.
		if b, err := hex.DecodeString(sum); err != nil || len(b) != len(k.digest) {
			return nil, fmt.Errorf("auth: api_keys[%d] (%s): sha256 must be 64 hex digits, the SHA-256 of the key", i, k.name)
		} else {
			copy(k.digest[:], b)
		}
		for _, o := range out {
			if o.name == k.name || o.digest == k.digest {
				return nil, fmt.Errorf("auth: api_keys[%d] (%s): duplicate name or sha256", i, k.name)
			}
		}
		out = append(out, k)
	}
	if it.Err() != nil {
		return nil, errors.New("auth: api_keys must be an array of objects")
	}
	return out, nil
}

// jwk is the part of a JWK the plugin reads itself; the host parses the
// key material.
type jwk struct {
	raw                []byte
	kty, kid, alg, crv string
	use                string
	k, n, e            string // key material, read only to check its strength
	verify, hasOps     bool
	private            bool
}

func readJWK(raw []byte) (jwk, error) {
	k := jwk{raw: raw}
	var it jsonscan.Iter
	for it.Object(raw); it.Next(); {
		v := it.Value()
		var err error
		switch string(it.Name()) {
		case "kty":
			k.kty, err = jsonscan.String(v)
		case "kid":
			k.kid, err = jsonscan.String(v)
		case "alg":
			k.alg, err = jsonscan.String(v)
		case "crv":
			k.crv, err = jsonscan.String(v)
		case "use":
			k.use, err = jsonscan.String(v)
		case "k":
			k.k, err = jsonscan.String(v)
		case "n":
			k.n, err = jsonscan.String(v)
		case "e":
			k.e, err = jsonscan.String(v)
		case "key_ops":
			k.hasOps = true
			err = jsonscan.Array(v, func(op []byte) bool {
				if s, e := jsonscan.String(op); e == nil && s == "verify" {
					k.verify = true
				}
				return true
			})
		case "d", "p", "q", "dp", "dq", "qi":
			k.private = true
		}
		if err != nil {
			return k, fmt.Errorf("bad member %q", it.Name())
		}
	}
	if err := it.Err(); err != nil {
		return k, errors.New("not a JSON object")
	}
	return k, nil
}

// algsFor is the algorithms a JWK is registered for: its alg member, or,
// without one, what its key type allows. The host binds each registration
// to one algorithm, so a token can only ever be checked under an algorithm
// of the key's own family.
func algsFor(k jwk) ([]abi.Alg, error) {
	family := map[string][]abi.Alg{
		"oct": {abi.AlgHS256, abi.AlgHS384, abi.AlgHS512},
		"RSA": {abi.AlgRS256, abi.AlgRS384, abi.AlgRS512, abi.AlgPS256, abi.AlgPS384, abi.AlgPS512},
		"EC":  {abi.AlgES256, abi.AlgES384},
		"OKP": {abi.AlgEdDSA},
	}[k.kty]
	if family == nil {
		return nil, fmt.Errorf("unsupported kty %q (want oct, RSA, EC or OKP)", k.kty)
	}
	if k.alg == "" {
		switch {
		case k.kty == "EC" && k.crv == "P-256":
			return []abi.Alg{abi.AlgES256}, nil
		case k.kty == "EC" && k.crv == "P-384":
			return []abi.Alg{abi.AlgES384}, nil
		case k.kty == "EC" || k.kty == "OKP" && k.crv != "Ed25519":
			return nil, fmt.Errorf("unsupported curve %q", k.crv)
		}
		return family, nil
	}
	a := abi.AlgByName([]byte(k.alg))
	for _, f := range family {
		if a == f {
			return []abi.Alg{a}, nil
		}
	}
	return nil, fmt.Errorf("alg %q is not supported for kty %q", k.alg, k.kty)
}

// strongEnough returns the algorithms of algs that k's key material is
// strong enough for, by the rules key_register applies (abi.CheckHMACKey,
// abi.CheckRSAKey), or an error naming the rule it breaks. The host would
// refuse a weak key too, but only with ErrInvalid; checking here first lets
// the operator read which key and which rule. An oct key without alg is
// kept for the HMAC algorithms its length suffices for: 32 bytes make an
// HS256 key, not an HS512 one (RFC 7518 §3.2). Material that does not
// decode is left to the host to refuse.
func strongEnough(k jwk, algs []abi.Alg) ([]abi.Alg, error) {
	switch k.kty {
	case "oct":
		secret, err := base64.RawURLEncoding.DecodeString(k.k)
		if err != nil {
			return algs, nil
		}
		var ok []abi.Alg
		for _, a := range algs {
			if abi.CheckHMACKey(a, len(secret)) == nil {
				ok = append(ok, a)
			}
		}
		if len(ok) == 0 {
			return nil, abi.CheckHMACKey(algs[0], len(secret))
		}
		return ok, nil
	case "RSA":
		n, err1 := base64.RawURLEncoding.DecodeString(k.n)
		e, err2 := base64.RawURLEncoding.DecodeString(k.e)
		if err1 != nil || err2 != nil || len(e) > 8 {
			return algs, nil
		}
		var exp uint64
		for _, b := range e {
			exp = exp<<8 | uint64(b)
		}
		return algs, abi.CheckRSAKey(n, exp)
	}
	return algs, nil
}

func parseJWKS(v []byte) ([]verifier, error) {
	keys, ok, err := jsonscan.Member(v, "keys")
	if err != nil || !ok {
		return nil, errors.New(`auth: jwks must be a JWK Set: {"keys":[...]}`)
	}
	var out []verifier
	var it jsonscan.Iter
	i := 0
	for it.Array(keys); it.Next(); i++ {
		k, err := readJWK(it.Value())
		if err != nil {
			return nil, fmt.Errorf("auth: jwks key %d: %w", i, err)
		}
		// Encryption keys may share a published set; they verify nothing.
		if (k.use != "" && k.use != "sig") || (k.hasOps && !k.verify) {
			continue
		}
		if k.private && k.kty != "oct" {
			return nil, fmt.Errorf("auth: jwks key %d (kid %q) holds private key material: give the public key only", i, k.kid)
		}
		algs, err := algsFor(k)
		if err == nil {
			algs, err = strongEnough(k, algs)
		}
		if err != nil {
			return nil, fmt.Errorf("auth: jwks key %d (kid %q): %w", i, k.kid, err)
		}
		for _, a := range algs {
			for _, o := range out {
				if o.kid == k.kid && o.key.Alg() == a && k.kid != "" {
					return nil, fmt.Errorf("auth: jwks key %d: duplicate kid %q for %s", i, k.kid, abi.AlgName(a))
				}
			}
			key, err := sdk.RegisterKey(a, abi.KeyJWK, k.raw)
			if err != nil {
				return nil, fmt.Errorf("auth: jwks key %d (kid %q): the host refused it for %s "+
					"(bad key material, or a key that does not fit the algorithm): %w",
					i, k.kid, abi.AlgName(a), err)
			}
			out = append(out, verifier{kid: k.kid, key: key})
		}
	}
	if it.Err() != nil {
		return nil, errors.New("auth: jwks keys must be an array of JWK objects")
	}
	return out, nil
}

// validRealm keeps the realm a quoted-string that needs no escapes.
func validRealm(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}
