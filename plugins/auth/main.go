// Command auth is the Wedge authentication plugin: it admits a request that
// carries a valid JWT (Authorization: Bearer) or API key, forwards the
// verified identity to the origin as request values, and answers everything
// else with 401 and an RFC 6750 challenge. See README.md.
//
// # Why
//
// Tokens are verified by the host under a token policy registered at
// configure time (sdk.TokenVerifier): segments, base64url, header,
// signature, claims JSON, exp/nbf/iat, issuer and audience run natively,
// and a token seen before costs the host a cache lookup plus the time
// checks whatever its algorithm. A Go guest runs byte-level work 12-15x
// slower than native, so parsing belongs in the host; the plugin keeps the
// decisions: which paths are public, which credential and header, what the
// returned claims become, and every answer's text. Each JWK is registered
// bound to one algorithm, and the host only checks a token against keys
// registered for the algorithm its header names, so "alg":"none" and
// HS256-with-an-RSA-key confusion have no key to succeed with.
//
// API keys are configured as SHA-256 digests and compared by digest, so the
// config (and any log or dump of it) holds no usable credential, and the
// comparison time says nothing about the key.
//
// The request path reads the host's answers into buffers the plugin
// reuses: no reflection, and no allocation inside the guest on the
// admitted path. Credential headers and the path are appended into
// per-instance buffers (Header.AppendValues, Request.AppendPath) rather
// than read as fresh strings.
package main

import (
	"bytes"
	"crypto/subtle"
	"strings"
	"unsafe"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
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
	// path; sub, iss and scope the unescaped identity claims.
	authz    []byte
	keyHdr   []byte
	path     []byte
	sum      []byte
	sub, iss []byte
	scope    []byte

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
	var nAuthz int
	a.authz, nAuthz = h.AppendValues(a.authz[:0], "Authorization")
	authz := only(a.authz, nAuthz)
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
		a.keyHdr, nKeys = h.AppendValues(a.keyHdr[:0], a.cfg.apiKeyHeader)
		key = only(a.keyHdr, nKeys)
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

// only returns the item of a host value list that holds n items, nil
// unless n is 1. AppendValues has counted them: a list of one item is that
// item and its NUL, so the credential needs no second scan (a bearer token
// is hundreds of bytes, and a Go guest scans bytes slowly).
func only(list []byte, n int) []byte {
	if n != 1 || len(list) == 0 {
		return nil
	}
	if list[len(list)-1] == 0 {
		return list[:len(list)-1]
	}
	return list
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

// verdictText is the error_description of each refused token.
var verdictText = [...]string{
	abi.TokenMalformed:       "malformed token",
	abi.TokenUnknownKid:      "unknown key id",
	abi.TokenAlgNotAccepted:  "algorithm not accepted for the key",
	abi.TokenBadSignature:    "bad signature",
	abi.TokenMalformedClaims: "malformed claims",
	abi.TokenNoExpiry:        "token has no expiry",
	abi.TokenExpired:         "token expired",
	abi.TokenNotYetValid:     "token not yet valid",
	abi.TokenIssuedLater:     "token issued in the future",
	abi.TokenWrongIssuer:     "wrong issuer",
	abi.TokenWrongAudience:   "wrong audience",
}

// The claims the token policy asks the host for, in this order.
const (
	claimSub = iota
	claimIss
	claimScope
	claimScp
	claimCount
)

var policyClaims = [claimCount][]byte{
	claimSub: []byte("sub"), claimIss: []byte("iss"), claimScope: []byte("scope"), claimScp: []byte("scp"),
}

// checkJWT has the host verify the token (signature, claims JSON, times,
// issuer, audience) and decides what the verified claims become.
func (a *auth) checkJWT(req sdk.Request, resp sdk.Response, token []byte, present presence) sdk.Action {
	verdict, list, err := a.cfg.tokens.Verify(token)
	if err != nil {
		return sdk.Fail(err)
	}
	if verdict != abi.TokenValid {
		desc := "malformed claims" // a verdict newer than this plugin
		if int(verdict) < len(verdictText) && verdictText[verdict] != "" {
			desc = verdictText[verdict]
		}
		return a.invalid(resp, desc)
	}
	var raw [claimCount][]byte
	for i := range raw {
		raw[i], list, _ = abi.NextItem(list)
	}
	// The host has checked that sub and iss are strings, so unescaping
	// them cannot fail.
	a.sub, _ = appendClaim(a.sub[:0], raw[claimSub])
	a.iss, _ = appendClaim(a.iss[:0], raw[claimIss])
	scope, err := a.scopeClaim(raw[claimScope], raw[claimScp])
	if err != nil {
		return a.invalid(resp, "malformed scope claim")
	}
	ids := [...]struct {
		name string
		val  []byte
	}{{valSub, a.sub}, {valIss, a.iss}, {valScope, scope}}
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
		// The host copies the value, so a view of the plugin's buffer will do.
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

// appendClaim appends the unescaped JSON string raw to dst; an absent
// claim (empty raw) appends nothing.
//
// # Why
//
// The host has validated every claim value as JSON, and claims almost
// never hold an escape: a string without a backslash is its bytes between
// the quotes, found with bytes.IndexByte (assembly in Go's Wasm port)
// instead of a second byte-by-byte scan in the guest.
func appendClaim(dst, raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return dst, nil
	}
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return append(dst, raw[1:len(raw)-1]...), nil
	}
	return jsonscan.AppendString(dst, raw)
}

// scopeClaim returns the scope claim (RFC 8693 4.2: a space-separated
// string), or else the scp claim some issuers use instead, a string or an
// array joined with spaces; nil when neither is present. scope and scp are
// the raw values the host returned, empty when absent.
func (a *auth) scopeClaim(scope, scp []byte) ([]byte, error) {
	raw := scope
	if len(raw) == 0 {
		if raw = scp; len(raw) == 0 {
			return nil, nil
		}
	}
	a.scope = a.scope[:0]
	var err error
	if raw[0] == '[' {
		var it jsonscan.Iter
		for it.Array(raw); it.Next() && err == nil; {
			if len(a.scope) > 0 {
				a.scope = append(a.scope, ' ')
			}
			a.scope, err = appendClaim(a.scope, it.Value())
		}
		if err == nil {
			err = it.Err()
		}
		return a.scope, err
	}
	a.scope, err = appendClaim(a.scope, raw)
	return a.scope, err
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

// mayHaveScope reports whether payload may have a member named scope or
// scp: only if such a name appears verbatim (it starts with `"sc`), unless
// the payload holds an escape. The request path no longer needs it (the
// host returns scope and scp with the other claims); it stays for guests
// that parse tokens with sdk/jwt themselves, pinned by TestMayHaveScope.
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
