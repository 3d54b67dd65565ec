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
// admitted or the refused path. Credential headers and the path are
// appended into per-instance buffers (Header.AppendValues,
// Request.AppendPath) rather than read as fresh strings. The plugin's
// mapping of claims to request values is part of its token policy
// (TokenPolicy.Forwards), so the host sets them as it answers token_verify
// instead of handing the claims back for the guest to unescape, check and
// forward one host call each; every refusal's challenge and body are built
// once, at configure time.
package main

import (
	"bytes"
	"crypto/subtle"
	"slices"
	"strings"
	"unsafe"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/wasm/abi"
)

type auth struct {
	cfg *config

	// Reused per request: an instance runs one call at a time. authz and
	// keyHdr receive header value lists from the host, path the request
	// path, method its method, sum an API key's digest.
	authz  []byte
	keyHdr []byte
	path   []byte
	method []byte
	sum    []byte
	// cookies holds the request's Cookie fields once read (cookiesRead),
	// origin its Origin, rest the Cookie rebuilt without the token's.
	cookies, origin, rest []byte

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
			return a.pass(req, resp, hasAuthz|hasKey, a.public)
		}
	}
	h := req.Header()
	var nAuthz int
	a.authz, nAuthz = h.AppendValues(a.authz[:0], "Authorization")
	authz := only(a.authz, nAuthz)
	if nAuthz > 1 {
		// Two tokens: an origin that reads the other one would trust what
		// was never checked.
		return a.reject(resp, reasonTwoAuthz)
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
		return a.reject(resp, reasonTwoCredentials)
	case isBearer:
		return a.checkJWT(req, resp, token, present)
	case nKeys == 1:
		return a.checkAPIKey(req, resp, key, present)
	case nAuthz == 0 && a.cfg.tokenCookie != "":
		switch token, n := a.cookieToken(h); {
		case a.quoteHidesToken():
			return a.reject(resp, reasonQuotedCookie)
		case n > 1 && !a.cfg.strip:
			// The origin gets them all, and may trust one never checked.
			return a.reject(resp, reasonTwoCookies)
		case n > 0:
			// The first, as a browser sends the cookie of the longest
			// path first; stripped, the origin sees none of them. A 400
			// here would lock out a browser that holds an old copy under
			// another path or domain until that one expires.
			return a.checkCookie(req, resp, h, token)
		}
	}
	if present == 0 && a.cfg.preflight && a.isPreflight(req, h) {
		return a.pass(req, resp, 0, a.public)
	}
	return a.reject(resp, reasonNoCredentials)
}

// isPreflight says whether the request is a CORS preflight: OPTIONS with
// Origin and Access-Control-Request-Method. A browser asks it before a
// cross-origin request that carries Authorization or an API key, and never
// sends credentials with it (Fetch standard, CORS-preflight fetch), so
// refusing it for want of them would refuse every such page; the
// application's CORS handler answers it. Checked only on the way to a 401,
// so a request with credentials pays nothing for it.
func (a *auth) isPreflight(req sdk.Request, h sdk.Header) bool {
	a.method = req.AppendMethod(a.method[:0])
	if string(a.method) != "OPTIONS" {
		return false
	}
	var origin, method bool
	a.origin, origin = h.AppendValue(a.origin[:0], "Origin")
	a.origin, method = h.AppendValue(a.origin[:0], "Access-Control-Request-Method")
	return origin && method
}

// cookieToken reads the request's Cookie fields and returns the value of
// the token cookie in them and how many times it is there.
//
// # Why
//
// Count, not first wins: origins' parsers disagree on which of two cookies
// of one name they keep (Go's net/http and PHP the first, Python's
// SimpleCookie and Django the last), so the origin could trust one that
// was never checked, as with two Authorization fields. Names are matched
// as eachCookie reads them, as lenient as any origin's parser.
func (a *auth) cookieToken(h sdk.Header) (tok []byte, n int) {
	a.cookies, _ = h.AppendValues(a.cookies[:0], "Cookie")
	eachCookie(a.cookies, func(_ byte, raw, name, value []byte) {
		if a.isTokenCookie(raw, name) {
			if n == 0 {
				tok = value
			}
			n++
		}
	})
	if len(tok) >= 2 && tok[0] == '"' && tok[len(tok)-1] == '"' {
		tok = tok[1 : len(tok)-1]
	}
	return tok, n
}

// isTokenCookie says whether an origin may read a cookie of eachCookie's
// (raw its text, name its trimmed name) as the token cookie: by its name,
// or by the name PHP gives it.
//
// # Why
//
// PHP registers a cookie under the text before its '=', white space at
// its start skipped and each ' ', '.' and '[' (one no ']' follows) turned
// into '_' (php_register_variable_ex): "se.ssion=x", "se ssion=x" and
// "se[ssion=x" all set $_COOKIE['se_ssion'], and "sid =x" sets sid_.
// Unchecked, such a cookie reached a PHP origin as the token cookie, and
// PHP keeps the first of two. Names are compared with those four bytes as
// one, both ways, which takes in every name PHP reads as the token
// cookie's (and a few more, after a '[', which cost nothing but a cookie
// no origin would set).
func (a *auth) isTokenCookie(raw, name []byte) bool {
	tok := a.cfg.tokenCookie
	if string(name) == tok {
		return true
	}
	if name == nil {
		// No '=': PHP sets it to "", no token to forge.
		return false
	}
	php, _, _ := bytes.Cut(raw, []byte{'='})
	for len(php) > 0 && (php[0] == ' ' || php[0] >= '\t' && php[0] <= '\r') {
		php = php[1:]
	}
	if len(php) != len(tok) {
		return false
	}
	for i := range len(php) {
		if php[i] != tok[i] && (!phpUnderscore(php[i]) || !phpUnderscore(tok[i])) {
			return false
		}
	}
	return true
}

// phpUnderscore says whether PHP may turn c in a cookie's name into '_'.
func phpUnderscore(c byte) bool { return c == '_' || c == '.' || c == ' ' || c == '[' }

// checkCookie checks a token that came in the token cookie, once the
// page that made the request is one of cookie_origins: a browser sends
// Origin with every WebSocket handshake, every CORS request and every
// request but GET and HEAD, so a page of another site cannot use
// the cookie for those. A request without Origin is admitted all the same:
// it may be a GET navigation another site's page caused (a link or a GET
// form, which send no Origin and a SameSite=Lax cookie), which that page
// cannot read the answer of, so GET and HEAD must be safe at the origin.
func (a *auth) checkCookie(req sdk.Request, resp sdk.Response, h sdk.Header, token []byte) sdk.Action {
	var has bool
	if a.origin, has = h.AppendValue(a.origin[:0], "Origin"); has && !slices.Contains(a.cfg.cookieOrigins, string(a.origin)) {
		return a.reject(resp, reasonCookieOrigin)
	}
	return a.checkJWT(req, resp, token, hasCookie)
}

// eachCookie calls f with each cookie of a list of Cookie fields (the
// ABI's NUL-separated list form): sep is what came before it in its field
// (0 at the start, ';', ',' or, for a cookie SimpleCookie finds in
// another's value, the pyBlank before it), raw its text up to the next
// separator as sent, name and value its parts with blanks (cookieBlank)
// around them trimmed; name is nil when it has no '='. Blank cookies are
// skipped.
//
// # Why
//
// The token cookie must be found under every spelling an origin could
// read as its name, or an unchecked one reaches it: Python's SimpleCookie
// and Django take "session =x" as session, RFC 2965 parsers split
// "a=1, session=x" at the comma, and SimpleCookie splits at any white
// space outside a quoted value, so "a=1 session=x" is two cookies to it
// (cookieEnd). A cookie without '=' is no token cookie to any of them
// (Django names it "", net/http drops it). A comma inside a double-quoted
// value separates nothing (cookieEnd).
func eachCookie(list []byte, f func(sep byte, raw, name, value []byte)) {
	for len(list) > 0 {
		var line []byte
		var ok bool
		if line, list, ok = abi.NextItem(list); !ok {
			return
		}
		sep := byte(0)
		for {
			// SimpleCookie takes a ',' into a value: what follows one
			// with no blank between is still the value before it.
			i := cookieEnd(line, sep == ',' && len(line) > 0 && !pyBlank(line[0]))
			raw := line[:i]
			if pair := trimCookie(raw); len(pair) > 0 {
				name, value, eq := bytes.Cut(pair, []byte{'='})
				if eq {
					f(sep, raw, trimCookie(name), trimCookie(value))
				} else {
					f(sep, raw, nil, nil)
				}
			}
			if i == len(line) {
				break
			}
			sep, line = line[i], line[i+1:]
		}
	}
}

// cookieEnd returns the length of the first cookie of line: up to its
// first ';', its first ',' outside a value in double quotes, or a pyBlank
// in its value (outside those quotes) that a cookie with '=' follows
// before the next ';' or ','. inValue says line is in a value already.
//
// # Why
//
// other="x, session=y" holds no session cookie to any parser the origin
// may run: net/http and Node's cookie package (express, socket.io) split
// at ';' only, and SimpleCookie, which splits at white space, reads a
// quoted value whole. Split there, it was taken for a token cookie sent
// twice: refused with 400, or, stripped, the other cookie cut short.
// The quote must open the value (blanks after '=' aside) and close before
// the next ';', and a backslash escapes nothing: otherwise the commas
// separate as before, for a parser might not see a quoted value there.
// Never ';': a quote hides none from net/http or Node (a field in which
// one spans a ';' before a token cookie is refused: quoteHidesToken).
//
// SimpleCookie ends a value at white space and reads what follows as the
// next cookie, and keeps the last of two: "x=1 session=y" after a checked
// token cookie reached it as the only session, and stripping took the
// checked one alone. White space with no '=' after it before the next
// separator hides no cookie ("name=John Smith" is one cookie to every
// parser but SimpleCookie, which refuses the whole field), and white
// space in a name stays in it, as PHP reads it (isTokenCookie), but after
// a ',' that continues a value.
func cookieEnd(line []byte, inValue bool) int {
	value := inValue // past the cookie's first '=', or its text a value
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == ';' || c == ',':
			return i
		case c == '=' && !value:
			value = true
			// Blanks before a value start none: "session = x" is one
			// cookie. Every pyBlank: SimpleCookie's \s* takes in \v too,
			// and reads q=\v"a b" as the quoted value "a b".
			for i+1 < len(line) && pyBlank(line[i+1]) {
				i++
			}
			j := i + 1
			if j == len(line) || line[j] != '"' {
				continue
			}
			rest := line[j+1:]
			if k := bytes.IndexByte(rest, '"'); k >= 0 && bytes.IndexByte(rest[:k], ';') < 0 {
				i = j + 1 + k // the closing quote
			}
		case value && pyBlank(c):
			rest := line[i+1:]
			end := bytes.IndexAny(rest, ";,")
			if end < 0 {
				end = len(rest)
			}
			if bytes.IndexByte(rest[:end], '=') >= 0 {
				return i
			}
			// No later blank before the separator hides one either.
			return i + 1 + end
		}
	}
	return len(line)
}

// quoteHidesToken says whether the Cookie fields (a.cookies) hold a
// double-quoted value that SimpleCookie may read past a ';' or the end of
// its field, with the token cookie's name and '=' (white space between)
// after its opening quote: a quote that '=' and white space come before
// (and a name could end before: nameBefore), closed by the next '"' a
// backslash does not escape.
//
// # Why
//
// SimpleCookie (Bottle, older aiohttp) reads such a value whole and splits
// at the white space after it: other="a;b" session=<forged> is other and
// session to it, and it keeps the last session, where eachCookie splits at
// every ';' as net/http, Node and Django do and sees the cookie `b" session`.
// A browser sends no such field (a ';' ends a Set-Cookie value), and an
// origin joins Cookie fields with "; " or ", ", as dropTokenCookie does, so
// a quote closed in a later field spans one too. Refused, not stripped: no
// cut of the field leaves it one thing to every parser.
func (a *auth) quoteHidesToken() bool {
	list := a.cookies
	for i := 0; ; {
		q := bytes.IndexByte(list[i:], '"')
		if q < 0 {
			return false
		}
		q += i
		j := q
		for j > 0 && pyBlank(list[j-1]) {
			j--
		}
		if j == 0 || list[j-1] != '=' || !nameBefore(list[:j-1]) {
			i = q + 1
			continue
		}
		spans := false
		for i = q + 1; i < len(list) && list[i] != '"'; i++ {
			if list[i] == '\\' && i+1 < len(list) {
				// Escaped, a ';' is still inside; a NUL stands for the
				// "; " or ", " an origin joins fields with, whose first
				// byte the backslash escapes.
				i++
			}
			spans = spans || list[i] == ';' || list[i] == 0
		}
		if i == len(list) {
			// Unclosed: a backslash comes before every quote after it,
			// so none opens a value.
			return false
		}
		if spans {
			return tokenAssigned(list[q:], a.cfg.tokenCookie)
		}
		// The quotes before i are escaped: i may open the next value.
	}
}

// nameBefore says whether the text before a '=' (b) may end a cookie's
// name to SimpleCookie: no '"' between the '=' (white space before it
// aside) and the white space, ';' or field before it.
//
// # Why
//
// SimpleCookie, and aiohttp's parser after it, start a name only after
// white space or a ';', and a name holds no '"', so a quote after a '='
// that such a name cannot end before opens no value to them (SimpleCookie
// stops reading there). Raw JSON with a string ending in '=', as in
// st={"id":"YWJjZA=="} or t="YWJjZA==", is such a quote: taken for one
// that opens a value, it closed at the next cookie's quote, past a ';',
// and a browser's request with the token cookie between was refused.
func nameBefore(b []byte) bool {
	i := len(b)
	for i > 0 && pyBlank(b[i-1]) {
		i--
	}
	for ; i > 0; i-- {
		switch c := b[i-1]; {
		case c == '"':
			return false
		case c == ';' || c == 0 || pyBlank(c):
			return true
		}
	}
	return true
}

// tokenAssigned says whether b holds name, white space and '='. Later
// quotes open inside b, so if it does not, no later one hides the token.
func tokenAssigned(b []byte, name string) bool {
	for {
		k := strings.Index(bytesString(b), name)
		if k < 0 {
			return false
		}
		b = b[k+len(name):]
		for len(b) > 0 && pyBlank(b[0]) {
			b = b[1:]
		}
		if len(b) > 0 && b[0] == '=' {
			return true
		}
	}
}

// pyBlank says whether c is white space to SimpleCookie (Python's \s
// under re.ASCII), which ends a cookie's value.
func pyBlank(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// cookieBlank says whether an origin's parser may trim c from around a
// cookie's name or value: Django strips with Python's str.strip, on a
// field WSGI decodes as Latin-1 (PEP 3333), so besides spaces and tabs the
// ASCII controls it counts as white space and the bytes 0x85 and 0xA0
// (NEL, NBSP) go too. Used for matching only: a UTF-8 character can end in
// 0x85 or 0xA0, so a cookie passed on keeps its bytes.
func cookieBlank(c byte) bool {
	return c == ' ' || c >= '\t' && c <= '\r' || c >= 0x1c && c <= 0x1f || c == 0x85 || c == 0xa0
}

// trimCookie returns b without the cookieBlank bytes around it.
func trimCookie(b []byte) []byte {
	for len(b) > 0 && cookieBlank(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && cookieBlank(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// presence records which credential headers a request carried, so pass
// deletes only those.
type presence uint8

const (
	hasAuthz presence = 1 << iota
	hasKey
	// hasCookie: a.cookies holds the request's Cookie fields.
	hasCookie
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
	if len(v) < len(scheme) {
		return nil, false
	}
	// ASCII case folding, not strings.EqualFold: no Unicode fold maps onto
	// the letters of "bearer" (only K and S have non-ASCII folds), so the
	// result is the same, and EqualFold's general loop was a measurable
	// share of an admitted request in a Go guest.
	for i := range len(scheme) {
		if v[i]|0x20 != scheme[i] {
			return nil, false
		}
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

// checkJWT has the host verify the token (signature, claims JSON, times,
// issuer, audience) and set the request values the policy forwards (the
// identity claims and identity-method, see config.tokenPolicy); the plugin
// decides what a refusal says.
func (a *auth) checkJWT(req sdk.Request, resp sdk.Response, token []byte, present presence) sdk.Action {
	verdict, _, err := a.cfg.tokens.Verify(token)
	if err != nil {
		return sdk.Fail(err)
	}
	if verdict != abi.TokenValid {
		return a.reject(resp, verdictReason(verdict))
	}
	return a.pass(req, resp, present, a.accepted)
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
		return a.reject(resp, reasonBadAPIKey)
	}
	if err := req.Forward(abi.IdentityKey, name); err != nil {
		return sdk.Fail(err)
	}
	if err := req.Forward(abi.IdentityMethod, "api-key"); err != nil {
		return sdk.Fail(err)
	}
	return a.pass(req, resp, present, a.accepted)
}

// pass lets the request through, without its credentials when configured:
// a token that reaches the origin can be replayed by anything that logs it.
// present says which credential headers may be there; deleting one the
// request was just seen not to carry would be a wasted host call. m counts
// the request once it passes: with the token cookie stripped, Cookie
// fields quoteHidesToken finds are refused instead, and counted as that.
func (a *auth) pass(req sdk.Request, resp sdk.Response, present presence, m sdk.Metric) sdk.Action {
	if !a.cfg.strip {
		m.Record(1)
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
	if a.cfg.tokenCookie != "" {
		// Whichever credential was checked: a browser sends the cookie
		// with every request, and one never checked must not reach the
		// origin either.
		if present&hasCookie == 0 {
			a.cookies, _ = h.AppendValues(a.cookies[:0], "Cookie")
			// With hasCookie, OnRequest has looked already.
			if a.quoteHidesToken() {
				return a.reject(resp, reasonQuotedCookie)
			}
		}
		if err := a.dropTokenCookie(h); err != nil {
			return sdk.Fail(err)
		}
	}
	m.Record(1)
	return sdk.Continue
}

// dropTokenCookie rewrites the request's Cookie fields (in a.cookies)
// without the token cookie, every spelling of its name eachCookie matches,
// as one field (RFC 6265 5.4), and leaves them alone when it is not there.
// The other cookies keep their text, those without '=' too, and a comma
// that separated two of them: it may be part of a value to the origin. A
// cookie eachCookie found after a blank in another's value goes with that
// one: both are taken out when either is the token cookie, and otherwise
// kept as one, blanks and all ("name=John Smith", "a=1 b=2").
func (a *auth) dropTokenCookie(h sdk.Header) error {
	a.rest = a.rest[:0]
	found := false
	start, drop := 0, false // where the cookie being copied starts in a.rest; whether it goes
	eachCookie(a.cookies, func(sep byte, raw, name, _ []byte) {
		token := a.isTokenCookie(raw, name)
		found = found || token
		if pyBlank(sep) {
			switch {
			case drop:
			case token:
				a.rest, drop = a.rest[:start], true
			default:
				a.rest = append(append(a.rest, sep), bytes.TrimRight(raw, " \t")...)
			}
			return
		}
		start, drop = len(a.rest), token
		switch {
		case token:
		case sep == ',' && len(a.rest) > 0:
			a.rest = append(append(a.rest, ','), raw...)
		default:
			if len(a.rest) > 0 {
				a.rest = append(a.rest, "; "...)
			}
			a.rest = append(a.rest, bytes.Trim(raw, " \t")...)
		}
	})
	if !found {
		return nil
	}
	a.rest = bytes.TrimRight(a.rest, " \t")
	if err := h.Del("Cookie"); err != nil || len(a.rest) == 0 {
		return err
	}
	return h.AddBytes("Cookie", a.rest)
}

// reject answers with the refusal configure built for r: its status, its
// RFC 6750 challenge and its text body, without building anything.
func (a *auth) reject(resp sdk.Response, r reason) sdk.Action {
	a.rejected.Record(1)
	ans := &a.cfg.refusals[r]
	h := resp.Header()
	if err := h.Set("WWW-Authenticate", ans.challenge); err != nil {
		return sdk.Fail(err)
	}
	if err := h.Set("Content-Type", "text/plain; charset=utf-8"); err != nil {
		return sdk.Fail(err)
	}
	return resp.Answer(refusalText[r].status, ans.body)
}

// reason is why a request is refused; each has a fixed answer. It is a
// byte, as a token verdict is, so that reasonVerdict + verdict needs no
// conversion.
type reason = uint8

const (
	reasonNoCredentials = iota
	reasonTwoAuthz
	reasonTwoCredentials
	reasonBadAPIKey
	reasonCookieOrigin
	reasonTwoCookies
	reasonQuotedCookie
	// reasonVerdict + v is the refusal of a token with verdict v.
	reasonVerdict
	reasonCount = reasonVerdict + abi.TokenClaimNotValue + 1
)

// refusalText is each refusal's status, RFC 6750 error code and
// error_description (also the body). Descriptions are fixed strings within
// the RFC's character set, so they need no escaping.
var refusalText = [reasonCount]struct {
	status     int
	code, desc string
}{
	// RFC 6750 3.1: no error code when the client sent no credentials it
	// could know we accept (none at all, or another scheme).
	reasonNoCredentials:  {401, "", "credentials required"},
	reasonTwoAuthz:       {400, "invalid_request", "more than one Authorization header"},
	reasonTwoCredentials: {400, "invalid_request", "more than one credential"},
	reasonBadAPIKey:      {401, "invalid_token", "invalid API key"},
	// Not a problem with the token: no error code (RFC 6750 3.1 names
	// none for it), and 403, since credentials would not help.
	reasonCookieOrigin: {403, "", "cookie credentials from another origin"},
	reasonTwoCookies:   {400, "invalid_request", "more than one token cookie"},
	reasonQuotedCookie: {400, "invalid_request", "malformed token cookie"},

	reasonVerdict + abi.TokenValid:           {401, "invalid_token", "malformed claims"}, // unused
	reasonVerdict + abi.TokenMalformed:       {401, "invalid_token", "malformed token"},
	reasonVerdict + abi.TokenUnknownKid:      {401, "invalid_token", "unknown key id"},
	reasonVerdict + abi.TokenAlgNotAccepted:  {401, "invalid_token", "algorithm not accepted for the key"},
	reasonVerdict + abi.TokenBadSignature:    {401, "invalid_token", "bad signature"},
	reasonVerdict + abi.TokenMalformedClaims: {401, "invalid_token", "malformed claims"},
	reasonVerdict + abi.TokenNoExpiry:        {401, "invalid_token", "token has no expiry"},
	reasonVerdict + abi.TokenExpired:         {401, "invalid_token", "token expired"},
	reasonVerdict + abi.TokenNotYetValid:     {401, "invalid_token", "token not yet valid"},
	reasonVerdict + abi.TokenIssuedLater:     {401, "invalid_token", "token issued in the future"},
	reasonVerdict + abi.TokenWrongIssuer:     {401, "invalid_token", "wrong issuer"},
	reasonVerdict + abi.TokenWrongAudience:   {401, "invalid_token", "wrong audience"},
	// Of the forwarded claims only scope (or scp) can have the wrong type:
	// the host has checked that sub and iss are strings.
	reasonVerdict + abi.TokenClaimNotText: {401, "invalid_token", "malformed scope claim"},
	// Control characters in a claim cannot travel as a header value;
	// refusing beats forwarding a mangled identity.
	reasonVerdict + abi.TokenClaimNotValue: {401, "invalid_token", "claims cannot be forwarded"},
}

// verdictReason is the refusal of a token with verdict v; a verdict newer
// than this plugin reads as malformed claims.
func verdictReason(v abi.TokenVerdict) reason {
	if v == abi.TokenValid || int(v) >= int(reasonCount-reasonVerdict) {
		return reasonVerdict + abi.TokenMalformedClaims
	}
	return reasonVerdict + v
}

// refusal is one refusal's answer as this configuration sends it.
type refusal struct {
	challenge string // `Bearer realm="..."` and, for presented credentials, the error
	body      []byte // the description and a newline
}

// refusals builds every refusal's answer for the challenge of the realm.
func refusals(challenge string) (out [reasonCount]refusal) {
	for r, t := range refusalText {
		out[r] = refusal{challenge: challenge, body: []byte(t.desc + "\n")}
		if t.code != "" {
			out[r].challenge += `, error="` + t.code + `", error_description="` + t.desc + `"`
		}
	}
	return out
}

// isPublic reports whether path is under a public prefix. A prefix matches
// at a segment boundary ("/health" matches "/health" and "/health/x", not
// "/healthz"; "/public/" matches everything under it). A path with dot
// segments or escaped '.', '/' or '\' is never public: an origin that
// normalises "/public/../admin" would otherwise serve /admin unauthenticated.
func (a *auth) isPublic(path string) bool {
	// The prefixes first: most requests are under none of them, and
	// cleanPath's scan of every byte is the dearer check in a Go guest.
	for _, p := range a.cfg.public {
		if strings.HasPrefix(path, p) && (p[len(p)-1] == '/' || len(path) == len(p) || path[len(p)] == '/') {
			return cleanPath(path)
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
