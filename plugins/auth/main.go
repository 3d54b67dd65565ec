// Command auth is the Wedge authentication plugin: it admits a request that
// carries a valid JWT (Authorization: Bearer) or API key, forwards the
// verified identity to the origin as request values, and answers everything
// else with 401 and an RFC 6750 challenge. See README.md.
//
// # Why
//
// Signatures are checked by the host (sdk.Key.Verify), never in the guest:
// crypto in a Go guest is 8-17x slower than native, and the host caches
// asymmetric results. Each JWK is registered at configure time bound to one
// algorithm, and a token is only ever checked against keys registered for
// the algorithm its header names, so "alg":"none" and HS256-with-an-RSA-key
// confusion have no key to succeed with.
//
// API keys are configured as SHA-256 digests and compared by digest, so the
// config (and any log or dump of it) holds no usable credential, and the
// comparison time says nothing about the key.
//
// The request path parses with sdk/jwt and jsonscan into buffers the plugin
// reuses: no reflection, and few allocations inside the guest.
package main

import (
	"crypto/subtle"
	"errors"
	"strings"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/sdk/jwt"
	"github.com/talowa/wedge/wasm/abi"
)

// Names of the request values forwarded to the origin, which receives them
// as Wedge-Value-<Name> header fields; later plugins (ratelimit) read them
// with Request.Value.
const (
	valMethod = "identity-method" // "jwt" or "api-key"
	valSub    = "identity-sub"    // the JWT sub claim
	valIss    = "identity-iss"    // the JWT iss claim
	valScope  = "identity-scope"  // the JWT scope claim (or scp, space-joined)
	valKey    = "identity-key"    // the configured name of the API key
)

type auth struct {
	cfg *config

	// Reused per request: an instance runs one call at a time.
	tok   jwt.Token
	raw   []byte
	sum   []byte
	scope []byte

	accepted, rejected, public sdk.Metric
}

// Configure parses the config and registers its keys with the host.
func (a *auth) Configure(data []byte) error {
	cfg, err := parseConfig(data)
	if err != nil {
		return err
	}
	a.cfg = cfg
	for _, m := range []struct {
		p    *sdk.Metric
		name string
	}{{&a.accepted, "auth_accepted_total"}, {&a.rejected, "auth_rejected_total"}, {&a.public, "auth_public_total"}} {
		if *m.p, err = sdk.NewCounter(m.name); err != nil {
			return err
		}
	}
	return nil
}

// OnRequest admits public paths and requests with valid credentials, and
// answers the rest.
func (a *auth) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	if a.isPublic(req.Path()) {
		a.public.Record(1)
		return a.pass(req)
	}
	h := req.Header()
	authz := h.Values("Authorization")
	if len(authz) > 1 {
		// Two tokens: an origin that reads the other one would trust what
		// was never checked.
		return a.reject(resp, 400, "invalid_request", "more than one Authorization header")
	}
	token, isBearer := "", false
	if len(authz) == 1 {
		token, isBearer = bearer(authz[0])
	}
	var keys []string
	if len(a.cfg.apiKeys) > 0 {
		keys = h.Values(a.cfg.apiKeyHeader)
	}
	switch {
	case len(keys) > 1 || (isBearer && len(keys) == 1):
		return a.reject(resp, 400, "invalid_request", "more than one credential")
	case isBearer:
		return a.checkJWT(req, resp, token)
	case len(keys) == 1:
		return a.checkAPIKey(req, resp, keys[0])
	}
	// RFC 6750 3.1: no error code when the client sent no credentials it
	// could know we accept (none at all, or another scheme).
	return a.reject(resp, 401, "", "credentials required")
}

// bearer extracts the token of "Bearer <token>" (the scheme is
// case-insensitive, RFC 9110 11.1).
func bearer(v string) (string, bool) {
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	rest := v[len(scheme):]
	if rest != "" && rest[0] != ' ' {
		return "", false // "Bearerx": another scheme
	}
	return strings.Trim(rest, " \t"), true
}

var (
	errNoKey     = errors.New("unknown key id")
	errAlg       = errors.New("algorithm not accepted for the key")
	errSignature = errors.New("bad signature")
)

func (a *auth) checkJWT(req sdk.Request, resp sdk.Response, token string) sdk.Action {
	a.raw = append(a.raw[:0], token...)
	if err := a.tok.Parse(a.raw); err != nil {
		return a.invalid(resp, "malformed token")
	}
	if err := a.verify(); err != nil {
		return a.invalid(resp, err.Error())
	}
	claims, err := a.tok.Claims()
	if err != nil {
		return a.invalid(resp, "malformed claims")
	}
	err = claims.Validate(jwt.Validation{
		Now: sdk.Now(), Leeway: a.cfg.leeway, Issuer: a.cfg.issuer, RequireExpiry: a.cfg.requireExp,
	})
	if err == nil && !a.audienceOK(&claims) {
		err = jwt.ErrAudience
	}
	if err != nil {
		return a.invalid(resp, claimError(err))
	}
	scope, err := a.scopeClaim()
	if err != nil {
		return a.invalid(resp, "malformed scope claim")
	}
	ids := [...]struct {
		name string
		val  []byte
	}{{valSub, claims.Subject}, {valIss, claims.Issuer}, {valScope, scope}}
	for _, v := range ids {
		if !validValue(v.val) {
			// Control characters in a claim cannot travel as a header
			// value; refusing beats forwarding a mangled identity.
			return a.invalid(resp, "claims cannot be forwarded")
		}
	}
	for _, v := range ids {
		if len(v.val) == 0 {
			continue
		}
		if err := req.Forward(v.name, string(v.val)); err != nil {
			return sdk.Fail(err)
		}
	}
	if err := req.Forward(valMethod, "jwt"); err != nil {
		return sdk.Fail(err)
	}
	a.accepted.Record(1)
	return a.pass(req)
}

// verify checks the parsed token's signature against the keys that may
// have signed it: those registered for the token's algorithm whose kid
// matches (a key without a kid matches any token; a token without a kid is
// tried against every key of its algorithm).
func (a *auth) verify() error {
	if a.tok.Alg == 0 {
		return errAlg // "none", or an algorithm the host does not verify
	}
	kidKnown, tried := false, false
	for i := range a.cfg.keys {
		k := &a.cfg.keys[i]
		kidMatch := k.kid == "" || len(a.tok.Kid) == 0 || k.kid == string(a.tok.Kid)
		if !kidMatch {
			continue
		}
		kidKnown = true
		if k.key.Alg() != a.tok.Alg {
			continue
		}
		tried = true
		if k.key.Verify(a.tok.SigningInput, a.tok.Signature) {
			return nil
		}
	}
	switch {
	case tried:
		return errSignature
	case !kidKnown:
		return errNoKey
	}
	return errAlg
}

func (a *auth) audienceOK(c *jwt.Claims) bool {
	if len(a.cfg.audience) == 0 {
		return true
	}
	for _, aud := range a.cfg.audience {
		if c.HasAudience(aud) {
			return true
		}
	}
	return false
}

// scopeClaim returns the scope claim (RFC 8693 4.2: a space-separated
// string), or else the scp claim some issuers use instead, a string or an
// array joined with spaces; nil when neither is present. One walk of the
// payload finds both.
func (a *auth) scopeClaim() ([]byte, error) {
	var scope, scp []byte
	var it jsonscan.Iter
	for it.Object(a.tok.Payload); it.Next(); {
		switch string(it.Name()) {
		case "scope":
			scope = it.Value()
		case "scp":
			scp = it.Value()
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	raw := scope
	if raw == nil {
		if raw = scp; raw == nil {
			return nil, nil
		}
	}
	a.scope = a.scope[:0]
	var err error
	if raw[0] == '[' {
		for it.Array(raw); it.Next() && err == nil; {
			if len(a.scope) > 0 {
				a.scope = append(a.scope, ' ')
			}
			a.scope, err = jsonscan.AppendString(a.scope, it.Value())
		}
		if err == nil {
			err = it.Err()
		}
		return a.scope, err
	}
	a.scope, err = jsonscan.AppendString(a.scope, raw)
	return a.scope, err
}

func claimError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrNotYetValid):
		return "token not yet valid"
	case errors.Is(err, jwt.ErrIssuedLater):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrNoExpiry):
		return "token has no expiry"
	case errors.Is(err, jwt.ErrIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrAudience):
		return "wrong audience"
	}
	return "malformed claims"
}

func (a *auth) checkAPIKey(req sdk.Request, resp sdk.Response, key string) sdk.Action {
	a.raw = append(a.raw[:0], key...)
	a.sum = sdk.Digest(abi.DigestSHA256, a.sum[:0], a.raw)
	name := ""
	for i := range a.cfg.apiKeys {
		// Every digest is compared, in constant time, so the time taken
		// does not say which key (or how much of a digest) matched.
		if subtle.ConstantTimeCompare(a.cfg.apiKeys[i].digest[:], a.sum) == 1 {
			name = a.cfg.apiKeys[i].name
		}
	}
	if key == "" || name == "" {
		return a.invalid(resp, "invalid API key")
	}
	if err := req.Forward(valKey, name); err != nil {
		return sdk.Fail(err)
	}
	if err := req.Forward(valMethod, "api-key"); err != nil {
		return sdk.Fail(err)
	}
	a.accepted.Record(1)
	return a.pass(req)
}

// pass lets the request through, without its credentials when configured:
// a token that reaches the origin can be replayed by anything that logs it.
func (a *auth) pass(req sdk.Request) sdk.Action {
	if !a.cfg.strip {
		return sdk.Continue
	}
	h := req.Header()
	if err := h.Del("Authorization"); err != nil {
		return sdk.Fail(err)
	}
	if len(a.cfg.apiKeys) > 0 {
		if err := h.Del(a.cfg.apiKeyHeader); err != nil {
			return sdk.Fail(err)
		}
	}
	return sdk.Continue
}

func (a *auth) invalid(resp sdk.Response, desc string) sdk.Action {
	return a.reject(resp, 401, "invalid_token", desc)
}

// reject answers with an RFC 6750 challenge: error and error_description
// only when credentials were presented (code != ""). Descriptions are fixed
// strings within the RFC's character set, so they need no escaping.
func (a *auth) reject(resp sdk.Response, status int, code, desc string) sdk.Action {
	a.rejected.Record(1)
	challenge := a.cfg.challenge
	if code != "" {
		challenge += `, error="` + code + `", error_description="` + desc + `"`
	}
	if err := resp.Header().Set("WWW-Authenticate", challenge); err != nil {
		return sdk.Fail(err)
	}
	return resp.AnswerText(status, desc)
}

// isPublic reports whether path is under a public prefix. A prefix matches
// at a segment boundary ("/health" matches "/health" and "/health/x", not
// "/healthz"; "/public/" matches everything under it). A path with dot
// segments or escaped '.', '/' or '\' is never public: an origin that
// normalises "/public/../admin" would otherwise serve /admin unauthenticated.
func (a *auth) isPublic(path string) bool {
	if len(a.cfg.public) == 0 || !cleanPath(path) {
		return false
	}
	for _, p := range a.cfg.public {
		if strings.HasPrefix(path, p) && (p[len(p)-1] == '/' || len(path) == len(p) || path[len(p)] == '/') {
			return true
		}
	}
	return false
}

// cleanPath reports whether path has no segment that an origin could
// resolve to another path: ".", ".." (also with ";params", which servlet
// containers strip), a backslash, or a percent-escape of '.', '/' or '\'.
func cleanPath(path string) bool {
	seg := 0 // start of the current segment
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' || path[i] == ';' {
			if s := path[seg:i]; s == "." || s == ".." {
				return false
			}
			if i < len(path) && path[i] == ';' {
				// Skip the parameters up to the next segment.
				for i < len(path) && path[i] != '/' {
					i++
				}
			}
			seg = i + 1
			continue
		}
		switch path[i] {
		case '\\':
			return false
		case '%':
			if i+2 < len(path) && (path[i+1] == '2' && (path[i+2]|0x20 == 'e' || path[i+2]|0x20 == 'f') ||
				path[i+1] == '5' && path[i+2]|0x20 == 'c') {
				return false
			}
		}
	}
	return true
}

func init() { sdk.Register(&auth{}) }

func main() {}
