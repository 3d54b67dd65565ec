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
// reuses: no reflection, and no allocation inside the guest on the admitted
// path. Credential headers and the path are appended into per-instance
// buffers (Header.AppendValues, Request.AppendPath) rather than read as
// fresh strings.
package main

import (
	"crypto/subtle"
	"errors"
	"strings"
	"unsafe"

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

	// Reused per request: an instance runs one call at a time. authz and
	// keyHdr receive header value lists from the host, path the request
	// path; tok's views point into authz.
	tok    jwt.Token
	authz  []byte
	keyHdr []byte
	path   []byte
	sum    []byte
	scope  []byte

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
//
// # Why
//
// Every host call is a guest->host transition and every allocation in a Go
// guest costs several times native, so the hot path appends headers and the
// path into buffers the instance owns, reads each credential header once
// (its value list says both whether it is repeated and what it holds), and
// skips deleting a header it has just seen to be absent.
func (a *auth) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	if len(a.cfg.public) > 0 {
		a.path = req.AppendPath(a.path[:0])
		if a.isPublic(bytesString(a.path)) {
			a.public.Record(1)
			return a.pass(req, hasAuthz|hasKey)
		}
	}
	h := req.Header()
	a.authz, _ = h.AppendValues(a.authz[:0], "Authorization")
	authz, nAuthz := firstOf(a.authz)
	if nAuthz > 1 {
		// Two tokens: an origin that reads the other one would trust what
		// was never checked.
		return a.reject(resp, 400, "invalid_request", "more than one Authorization header")
	}
	var token []byte
	isBearer := false
	if nAuthz == 1 {
		token, isBearer = bearer(authz)
	}
	var key []byte
	nKeys := 0
	if len(a.cfg.apiKeys) > 0 {
		a.keyHdr, _ = h.AppendValues(a.keyHdr[:0], a.cfg.apiKeyHeader)
		key, nKeys = firstOf(a.keyHdr)
	}
	present := presence(0)
	if nAuthz > 0 {
		present |= hasAuthz
	}
	if nKeys > 0 {
		present |= hasKey
	}
	switch {
	case nKeys > 1 || (isBearer && nKeys == 1):
		return a.reject(resp, 400, "invalid_request", "more than one credential")
	case isBearer:
		return a.checkJWT(req, resp, token, present)
	case nKeys == 1:
		return a.checkAPIKey(req, resp, key, present)
	}
	// RFC 6750 3.1: no error code when the client sent no credentials it
	// could know we accept (none at all, or another scheme).
	return a.reject(resp, 401, "", "credentials required")
}

// presence records which credential headers a request carried, so pass
// deletes only those.
type presence uint8

const (
	hasAuthz presence = 1 << iota
	hasKey
)

// firstOf returns the first item of a host value list and how many items
// it holds, counting no further than two.
func firstOf(list []byte) ([]byte, int) {
	first, rest, ok := abi.NextItem(list)
	if !ok {
		return nil, 0
	}
	if _, _, ok := abi.NextItem(rest); ok {
		return first, 2
	}
	return first, 1
}

// bytesString views b as a string without copying; b must not change while
// the string is in use.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// bearer extracts the token of "Bearer <token>" (the scheme is
// case-insensitive, RFC 9110 11.1).
func bearer(v []byte) ([]byte, bool) {
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(bytesString(v[:len(scheme)]), scheme) {
		return nil, false
	}
	rest := v[len(scheme):]
	if len(rest) != 0 && rest[0] != ' ' {
		return nil, false // "Bearerx": another scheme
	}
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	for len(rest) > 0 && (rest[len(rest)-1] == ' ' || rest[len(rest)-1] == '\t') {
		rest = rest[:len(rest)-1]
	}
	return rest, true
}

var (
	errNoKey     = errors.New("unknown key id")
	errAlg       = errors.New("algorithm not accepted for the key")
	errSignature = errors.New("bad signature")
)

func (a *auth) checkJWT(req sdk.Request, resp sdk.Response, token []byte, present presence) sdk.Action {
	if err := a.tok.Parse(token); err != nil {
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
		if !abi.ValidHeaderValue(v.val) {
			// Control characters in a claim cannot travel as a header
			// value; refusing beats forwarding a mangled identity.
			return a.invalid(resp, "claims cannot be forwarded")
		}
	}
	for _, v := range ids {
		if len(v.val) == 0 {
			continue
		}
		// The host copies the value, so a view of the token's memory will do.
		if err := req.Forward(v.name, bytesString(v.val)); err != nil {
			return sdk.Fail(err)
		}
	}
	if err := req.Forward(valMethod, "jwt"); err != nil {
		return sdk.Fail(err)
	}
	a.accepted.Record(1)
	return a.pass(req, present)
}

// verify checks the parsed token's signature against the keys that may
// have signed it: those registered for the token's algorithm whose kid
// matches (a key without a kid matches any token; a token without a kid is
// tried against every key of its algorithm).
func (a *auth) verify() error {
	if a.tok.Alg == 0 {
		return errAlg // "none", or an algorithm the host does not verify
	}
	// Only keys registered for the token's algorithm can succeed; the full
	// list is walked only to say why a token failed.
	for _, k := range a.cfg.keysFor(a.tok.Alg) {
		if k.kid == "" || len(a.tok.Kid) == 0 || k.kid == bytesString(a.tok.Kid) {
			if k.key.Verify(a.tok.SigningInput, a.tok.Signature) {
				return nil
			}
		}
	}
	kidKnown, tried := false, false
	for i := range a.cfg.keys {
		k := &a.cfg.keys[i]
		kidMatch := k.kid == "" || len(a.tok.Kid) == 0 || k.kid == string(a.tok.Kid)
		if !kidMatch {
			continue
		}
		kidKnown = true
		if k.key.Alg() == a.tok.Alg {
			tried = true
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
	if !mayHaveScope(a.tok.Payload) {
		return nil, nil
	}
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

// mayHaveScope reports whether payload may have a member named scope or
// scp. Claims has already walked it without a syntax error, so the walk in
// scopeClaim can only find one if such a name appears: verbatim (it starts
// with `"sc`), unless the payload holds an escape. Most tokens carry
// neither, and this one loop without calls spares them a second walk.
func mayHaveScope(payload []byte) bool {
	for i, c := range payload {
		switch {
		case c == '\\':
			return true
		case c == '"' && i+2 < len(payload) && payload[i+1] == 's' && payload[i+2] == 'c':
			return true
		}
	}
	return false
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

func (a *auth) checkAPIKey(req sdk.Request, resp sdk.Response, key []byte, present presence) sdk.Action {
	a.sum = sdk.Digest(abi.DigestSHA256, a.sum[:0], key)
	name := ""
	for i := range a.cfg.apiKeys {
		// Every digest is compared, in constant time, so the time taken
		// does not say which key (or how much of a digest) matched.
		if subtle.ConstantTimeCompare(a.cfg.apiKeys[i].digest[:], a.sum) == 1 {
			name = a.cfg.apiKeys[i].name
		}
	}
	if len(key) == 0 || name == "" {
		return a.invalid(resp, "invalid API key")
	}
	if err := req.Forward(valKey, name); err != nil {
		return sdk.Fail(err)
	}
	if err := req.Forward(valMethod, "api-key"); err != nil {
		return sdk.Fail(err)
	}
	a.accepted.Record(1)
	return a.pass(req, present)
}

// pass lets the request through, without its credentials when configured:
// a token that reaches the origin can be replayed by anything that logs it.
// present says which credential headers may be there; deleting one the
// request was just seen not to carry would be a wasted host call.
func (a *auth) pass(req sdk.Request, present presence) sdk.Action {
	if !a.cfg.strip {
		return sdk.Continue
	}
	h := req.Header()
	if present&hasAuthz != 0 {
		if err := h.Del("Authorization"); err != nil {
			return sdk.Fail(err)
		}
	}
	if len(a.cfg.apiKeys) > 0 && present&hasKey != 0 {
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
