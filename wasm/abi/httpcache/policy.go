package httpcache

// This file is the cache policy of RFC 9111 (with RFC 9213 targeted fields
// and RFC 9211 Cache-Status) as pure functions over header values.

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// Headers is what the policy reads a message through: sdk.Header in the
// plugin, the exchange's request header in the host, a plain map in tests.
type Headers interface {
	Values(name string) []string
}

// MaxDelta is what a delta-seconds too large to represent becomes
// (RFC 9111 §1.2.2).
const MaxDelta = 1 << 31

// Absent numeric directives are -1.
const Absent = -1

// Directives is a parsed Cache-Control (or targeted) field. noCache and
// private are the unqualified forms; the qualified ones name fields
// (RFC 9111 §5.2.2.4, §5.2.2.7), which a shared cache stores the response
// without.
type Directives struct {
	NoStore, NoCache, Private, Public   bool
	MustRevalidate, ProxyRevalidate     bool
	MustUnderstand, OnlyIfCached        bool
	MaxStaleAny                         bool // max-stale without a value
	MaxAge, SMaxAge, MaxStale, MinFresh int64
	SWR, SIE                            int64    // stale-while-revalidate, stale-if-error
	NoCacheFields, PrivateFields        []string // no-cache="...", private="..."
}

// NoDirectives is Directives with every numeric directive Absent.
func NoDirectives() Directives {
	return Directives{MaxAge: Absent, SMaxAge: Absent, MaxStale: Absent, MinFresh: Absent, SWR: Absent, SIE: Absent}
}

// ParseDelta parses delta-seconds (RFC 9111 §1.2.2): digits only, clamped to
// 2^31 on overflow.
func ParseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < MaxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, MaxDelta), true
}

// SplitList splits a comma-separated field value into members, keeping
// quoted strings (which may hold commas) whole.
func SplitList(v string, fn func(member string)) {
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			if m := TrimOWS(v[start:i]); m != "" {
				fn(m)
			}
			start = i + 1
		}
	}
	if m := TrimOWS(v[start:]); m != "" {
		fn(m)
	}
}

// TrimOWS trims optional whitespace (RFC 9110 §5.6.3).
func TrimOWS(s string) string { return strings.Trim(s, " \t") }

// fieldNames parses the argument of a qualified no-cache or private: a
// comma-separated list of field names. ok is false unless it names at least
// one field and every member is a token; the caller then takes the
// directive as unqualified, the safe reading of a list it cannot trust.
func fieldNames(v string) (names []string, ok bool) {
	ok = true
	SplitList(v, func(m string) {
		if !abi.ValidToken(m) {
			ok = false
			return
		}
		names = append(names, m)
	})
	return names, ok && len(names) > 0
}

// qualified records a no-cache or private directive with argument arg
// (hasArg without one is the unqualified form) into flag or fields.
func qualified(flag *bool, fields *[]string, arg string, hasArg bool) {
	if hasArg {
		if names, ok := fieldNames(arg); ok {
			*fields = append(*fields, names...)
			return
		}
	}
	*flag = true
}

// unquote returns the content of a quoted-string (RFC 9110 §5.6.4), or s.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseCacheControl parses Cache-Control field lines (RFC 9111 §5.2).
// Names are case-insensitive; arguments may be tokens or quoted strings
// (§5.2: recipients accept both). For the freshness directives a duplicate
// with another value, or an invalid number, leaves the response stale
// (§4.2.1: "either the first occurrence should be used or the response
// should be considered stale"; we pick the conservative one). For request
// directives an invalid number is ignored.
func ParseCacheControl(lines []string, response bool) Directives {
	d := NoDirectives()
	for _, line := range lines {
		SplitList(line, func(m string) {
			name, val, hasVal := strings.Cut(m, "=")
			name = strings.ToLower(TrimOWS(name))
			val = unquote(TrimOWS(val))
			num := func(dst *int64) {
				n, ok := ParseDelta(val)
				switch {
				case !ok && response && (name == "max-age" || name == "s-maxage"):
					*dst = 0
				case !ok:
				case *dst != Absent && *dst != n && response && (name == "max-age" || name == "s-maxage"):
					*dst = 0
				case *dst == Absent:
					*dst = n
				}
			}
			switch name {
			case "no-store":
				d.NoStore = true
			case "no-cache":
				qualified(&d.NoCache, &d.NoCacheFields, val, hasVal)
			case "private":
				qualified(&d.Private, &d.PrivateFields, val, hasVal)
			case "public":
				d.Public = true
			case "must-revalidate":
				d.MustRevalidate = true
			case "proxy-revalidate":
				d.ProxyRevalidate = true
			case "must-understand":
				d.MustUnderstand = true
			case "only-if-cached":
				d.OnlyIfCached = true
			case "max-age":
				num(&d.MaxAge)
			case "s-maxage":
				num(&d.SMaxAge)
			case "max-stale":
				if !hasVal {
					d.MaxStaleAny = true
				} else {
					num(&d.MaxStale)
				}
			case "min-fresh":
				num(&d.MinFresh)
			case "stale-while-revalidate":
				num(&d.SWR)
			case "stale-if-error":
				num(&d.SIE)
			}
		})
	}
	return d
}

// sfItem is a Structured Field bare item (RFC 8941 §3.3), as far as cache
// directives need: booleans, integers, and everything else as "other".
type sfItem struct {
	kind byte // 'b' boolean, 'i' integer, 's' string, 'o' other (token, decimal, bytes)
	b    bool
	i    int64
	s    string // a string as written, quotes and escapes included
}

// parseSFDictionary parses a Structured Field Dictionary (RFC 8941 §4.2.2)
// strictly; ok is false on any syntax error, which makes RFC 9213 §2 ignore
// the whole targeted field. Inner lists are a syntax error here: no cache
// directive takes one.
func parseSFDictionary(s string) (map[string]sfItem, bool) {
	p := sfParser{s: s}
	p.skipSP()
	out := map[string]sfItem{}
	for !p.done() {
		k, ok := p.key()
		if !ok {
			return nil, false
		}
		item := sfItem{kind: 'b', b: true}
		if p.eat('=') {
			if item, ok = p.bareItem(); !ok {
				return nil, false
			}
		}
		if !p.params() {
			return nil, false
		}
		out[k] = item
		p.skipOWS()
		if p.done() {
			return out, true
		}
		if !p.eat(',') {
			return nil, false
		}
		p.skipOWS()
		if p.done() {
			return nil, false // trailing comma
		}
	}
	return out, true
}

// sfParser is a cursor over a Structured Field value: each method parses
// one production of RFC 8941 §4.2 at the cursor and moves past it.
type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

// peek is the byte at the cursor, 0 at the end (no production starts with
// a 0 byte, so it fails like any other wrong byte).
func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

// eat moves past c if it is at the cursor.
func (p *sfParser) eat(c byte) bool {
	if p.peek() != c || p.done() {
		return false
	}
	p.i++
	return true
}

func (p *sfParser) skipSP() {
	for p.peek() == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for c := p.peek(); c == ' ' || c == '\t'; c = p.peek() {
		p.i++
	}
}

// digits moves past a run of digits and returns its length.
func (p *sfParser) digits() int {
	st := p.i
	for c := p.peek(); c >= '0' && c <= '9'; c = p.peek() {
		p.i++
	}
	return p.i - st
}

// key parses a key (§4.2.3.3): lcalpha or "*", then lcalpha, digits and
// "_-.*".
func (p *sfParser) key() (string, bool) {
	if c := p.peek(); !(c >= 'a' && c <= 'z' || c == '*') {
		return "", false
	}
	st := p.i
	for c := p.peek(); c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*'; c = p.peek() {
		p.i++
	}
	return p.s[st:p.i], true
}

// params parses the parameters after an item (§4.2.3.2), which cache
// directives ignore (RFC 9213 §2): parsed only so a malformed one fails.
func (p *sfParser) params() bool {
	for p.eat(';') {
		p.skipSP()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.eat('=') {
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

// bareItem parses a bare item (§4.2.3.1).
func (p *sfParser) bareItem() (sfItem, bool) {
	switch c := p.peek(); {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return p.string()
	case c == '?':
		// A boolean (§4.2.8): ?0 or ?1.
		p.i++
		if b := p.peek(); b == '0' || b == '1' {
			p.i++
			return sfItem{kind: 'b', b: b == '1'}, true
		}
	case c == ':':
		// A byte sequence (§4.2.7), whose contents cache directives never
		// read.
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end >= 0 {
			p.i += end + 2
			return sfItem{kind: 'o'}, true
		}
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		// A token (§4.2.6).
		for p.i++; !p.done() && (abi.IsTokenChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/'); p.i++ {
		}
		return sfItem{kind: 'o'}, true
	}
	return sfItem{}, false
}

// number parses an Integer or a Decimal (§4.2.4): an optional minus, then
// at most 15 digits for an integer, or for a decimal at most 12 digits, a
// point and 1 to 3 digits.
func (p *sfParser) number() (sfItem, bool) {
	st := p.i
	p.eat('-')
	n := p.digits()
	if n == 0 {
		return sfItem{}, false
	}
	if !p.eat('.') {
		if n > 15 {
			return sfItem{}, false
		}
		v, err := strconv.ParseInt(p.s[st:p.i], 10, 64)
		return sfItem{kind: 'i', i: v}, err == nil
	}
	if frac := p.digits(); n > 12 || frac == 0 || frac > 3 {
		return sfItem{}, false
	}
	return sfItem{kind: 'o'}, true
}

// string parses a String (§4.2.5): printable ASCII in quotes, with only
// \" and \\ escaped. The item keeps it as written.
func (p *sfParser) string() (sfItem, bool) {
	st := p.i
	for p.i++; !p.done(); p.i++ {
		switch c := p.s[p.i]; {
		case c == '\\':
			p.i++
			if b := p.peek(); b != '"' && b != '\\' {
				return sfItem{}, false
			}
		case c == '"':
			p.i++
			return sfItem{kind: 's', s: p.s[st:p.i]}, true
		case c < 0x20 || c > 0x7e:
			return sfItem{}, false
		}
	}
	return sfItem{}, false
}

// ParseTargeted reads a targeted field (RFC 9213 §2.1) into directives. ok
// is false for an absent, empty or unparsable field, which is then ignored.
// A directive whose value has the wrong type (max-age=1.5, no-store=3) is
// not consumed (§2.1: SHOULD NOT consume values violating the constraints).
func ParseTargeted(lines []string) (Directives, bool) {
	joined := strings.Join(lines, ", ")
	if TrimOWS(joined) == "" {
		return Directives{}, false
	}
	dict, ok := parseSFDictionary(joined)
	if !ok || len(dict) == 0 {
		return Directives{}, false
	}
	d := NoDirectives()
	flag := func(name string) bool {
		it, ok := dict[name]
		return ok && it.kind == 'b' && it.b
	}
	// no-cache and private may carry a string of field names instead of
	// true, as in Cache-Control.
	fields := func(name string, flag *bool, dst *[]string) {
		if it, ok := dict[name]; ok && it.kind == 's' {
			qualified(flag, dst, unquote(it.s), true)
		}
	}
	num := func(name string) int64 {
		if it, ok := dict[name]; ok && it.kind == 'i' && it.i >= 0 {
			return min(it.i, MaxDelta)
		}
		return Absent
	}
	d.NoStore, d.NoCache, d.Private, d.Public = flag("no-store"), flag("no-cache"), flag("private"), flag("public")
	fields("no-cache", &d.NoCache, &d.NoCacheFields)
	fields("private", &d.Private, &d.PrivateFields)
	d.MustRevalidate, d.ProxyRevalidate, d.MustUnderstand = flag("must-revalidate"), flag("proxy-revalidate"), flag("must-understand")
	d.MaxAge, d.SMaxAge, d.SWR, d.SIE = num("max-age"), num("s-maxage"), num("stale-while-revalidate"), num("stale-if-error")
	return d, true
}

// TargetList is this cache's RFC 9213 target list, most specific first.
var TargetList = []string{"Wedge-Cache-Control", "CDN-Cache-Control"}

// ResponsePolicy is what a response says about caching: the effective
// directives and the fields freshness depends on.
type ResponsePolicy struct {
	CC         Directives
	Targeted   string // the targeted field used, "" for Cache-Control
	HasExpires bool
	SetCookie  bool      // the response sets cookies
	Expires    time.Time // zero when invalid: already expired (RFC 9111 §5.3)
	Date       time.Time // zero when absent or invalid
	LastMod    time.Time
	Age        int64 // Age field, absent when missing or invalid
}

// ReadResponse extracts the whole policy of response h.
func ReadResponse(h Headers) ResponsePolicy {
	p := ReadPolicy(h)
	p.ReadTimes(h)
	return p
}

// ReadPolicy extracts what decides whether response h is stored: the
// directives, and whether it has Expires and Set-Cookie. The first valid
// targeted field on the target list wins and then Cache-Control and Expires
// are ignored (RFC 9213 §2.1). Dates are left to readTimes: most responses
// that are not stored never need them parsed.
func ReadPolicy(h Headers) ResponsePolicy {
	p := ResponsePolicy{Age: Absent}
	for _, name := range TargetList {
		if d, ok := ParseTargeted(h.Values(name)); ok {
			p.CC, p.Targeted = d, name
			break
		}
	}
	if p.Targeted == "" {
		p.CC = ParseCacheControl(h.Values("Cache-Control"), true)
		p.HasExpires = len(h.Values("Expires")) > 0
	}
	p.SetCookie = len(h.Values("Set-Cookie")) > 0
	return p
}

// ReadTimes adds what freshness and age are computed from: Expires, Date,
// Last-Modified and Age.
func (p *ResponsePolicy) ReadTimes(h Headers) {
	if p.HasExpires {
		// §4.2.1: several Expires lines leave the response stale; §5.3: an
		// invalid date means already expired (expires stays zero).
		if v := h.Values("Expires"); len(v) == 1 {
			p.Expires, _ = ParseHTTPDate(TrimOWS(v[0]))
		}
	}
	if v := h.Values("Date"); len(v) > 0 {
		p.Date, _ = ParseHTTPDate(TrimOWS(v[0]))
	}
	if v := h.Values("Last-Modified"); len(v) > 0 {
		p.LastMod, _ = ParseHTTPDate(TrimOWS(v[0]))
	}
	if v := h.Values("Age"); len(v) > 0 {
		// §5.1: use the first member of a list; ignore an invalid value.
		first, _, _ := strings.Cut(v[0], ",")
		if n, ok := ParseDelta(TrimOWS(first)); ok {
			p.Age = n
		}
	}
}

// HeuristicStatus reports the status codes that are heuristically
// cacheable (RFC 9110 §15.1, used by RFC 9111 §4.2.2).
func HeuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// UnderstoodStatus reports the final status codes this cache knows the
// semantics of (RFC 9111 §3: a cache stores only those it understands;
// §5.2.2.3 must-understand relies on it).
func UnderstoodStatus(code int) bool {
	switch {
	case code >= 200 && code <= 208, code >= 300 && code <= 308 && code != 306,
		code >= 400 && code <= 417, code >= 421 && code <= 426, code == 428, code == 429, code == 431, code == 451,
		code >= 500 && code <= 508, code == 510, code == 511:
		return true
	}
	return false
}

// Reasons a response is not stored, reported in Cache-Status detail.
const (
	OKStore         = ""
	WhyMethod       = "method"
	WhyStatus       = "status"
	WhyNoStore      = "no-store"
	WhyPrivate      = "private"
	WhyAuth         = "authorization"
	WhyNoFreshness  = "no-freshness"
	WhyVaryStar     = "vary-star"
	WhyReqNoStore   = "request-no-store"
	WhyNotUseful    = "no-lifetime"
	WhyPartialCache = "partial"
	WhySetCookie    = "set-cookie"
)

// Storable decides RFC 9111 §3 for a shared cache: method, status (not
// 206, 304, 412 or 416, which answer the request's fields, not the URL),
// no-store (with must-understand, §5.2.2.3), private, Authorization (§3.5),
// and that the response has explicit freshness or a heuristically cacheable
// status. Vary: * is refused too: it can never be reused (§4.1). So is
// Set-Cookie, unless a qualified no-cache or private names it (then the
// response is stored without it, see omitted): RFC 9111 §7.3 leaves cookies
// to the cache, and replaying one client's cookie to every other client is
// how sessions leak.
func Storable(method string, status int, req Directives, p ResponsePolicy, hasAuth, varyStar bool) string {
	switch {
	case method != "GET":
		return WhyMethod
	case status == 206:
		return WhyPartialCache // no range support: §3.3 would have to combine parts
	case !UnderstoodStatus(status) || status == 304 || status == 412 || status == 416:
		// 304, 412 and 416 answer the request's own fields (a validator, a
		// failed If-Match or If-Unmodified-Since, a Range past the end),
		// not the resource, and the key holds none of those fields: stored
		// under the URL, one client's precondition or range would answer
		// every client's plain GET. Any other status a request with such
		// fields gets is the resource's, as to a GET without them: a 200
		// is the whole representation (an origin may ignore Range, and a
		// failed If-Range asks for it), and a 404 or a redirect does not
		// depend on them (RFC 9110 §13.2.1 evaluates preconditions only
		// for an answer that would otherwise be 2xx or 412), so those are
		// stored as usual.
		return WhyStatus
	case req.NoStore:
		return WhyReqNoStore
	case p.CC.NoStore && !p.CC.MustUnderstand:
		return WhyNoStore
	case p.CC.Private:
		return WhyPrivate
	case p.SetCookie && !p.Omits("Set-Cookie"):
		return WhySetCookie
	case hasAuth && !p.CC.Public && !p.CC.MustRevalidate && p.CC.SMaxAge == Absent:
		return WhyAuth
	case varyStar:
		return WhyVaryStar
	case p.CC.Public || p.CC.MaxAge != Absent || p.CC.SMaxAge != Absent || p.HasExpires || HeuristicStatus(status):
		return OKStore
	}
	return WhyNoFreshness
}

// Settle is the part of the response phase decided from the request
// phase's State, the method, the status and the directives alone: whether
// the response to a request in state st will not be stored (settled, with
// the Cache-Status detail saying why), or needs what only the plugin has
// (its config, the request's Authorization and Vary, dates, the entry).
// Both the host (cache_response) and the plugin decide with it, so a
// response settles the same way wherever it is decided. stripCookies is
// the plugin's option to store a response without its Set-Cookie.
func Settle(st *State, method string, status int, p ResponsePolicy, stripCookies bool) (detail string, settled bool) {
	switch {
	case st.Mode == ModeBypass:
		return "", true
	case st.Mode != ModeForward:
		return "", false
	case st.EntryKey != "" && (status == 304 && !st.ClientCond || status >= 500):
		return "", false // freshening or stale-if-error needs the entry
	}
	if stripCookies {
		// The cookie goes, not the response: as if private named it.
		p.SetCookie = false
	}
	why := Storable(method, status, Directives{NoStore: st.NoStore}, p, false, false)
	if why == OKStore || why == WhyNoFreshness {
		// Authorization and Vary: * rank before freshness, and only the
		// plugin reads them.
		return "", false
	}
	return why, true
}

// Omitted is the fields a qualified no-cache or private names: the
// response is stored without them (RFC 9111 §5.2.2.4, §5.2.2.7).
func (p *ResponsePolicy) Omitted() []string {
	return append(p.CC.NoCacheFields[:len(p.CC.NoCacheFields):len(p.CC.NoCacheFields)], p.CC.PrivateFields...)
}

// Omits reports whether the response is stored without field name.
func (p *ResponsePolicy) Omits(name string) bool {
	for _, n := range p.Omitted() {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// MaxLifetime caps freshness lifetimes: the host keeps an entry at most 400
// days (cache_store in wasm/abi/README.md), and a cache may always keep a
// response for less than it allows: RFC 9111 never obliges it to keep one
// (§3), and lets it clamp a delta-seconds to the greatest value it can
// conveniently represent (§1.2.2). Past the cap a stored response is
// stale, and revalidated.
const MaxLifetime = 400 * 24 * time.Hour

// Freshness computes the freshness lifetime for a shared cache (RFC 9111
// §4.2.1): s-maxage, then max-age, then Expires minus Date (or the receipt
// time without a Date), then a heuristic (§4.2.2) of pct percent (0 to
// 100) of the time since Last-Modified, capped at heurMax, for
// heuristically cacheable statuses or public responses only. No explicit
// freshness and no
// Last-Modified means zero: there is no default TTL. Lifetimes are capped
// at maxLifetime.
func Freshness(p ResponsePolicy, status int, responseTime time.Time, pct int, heurMax time.Duration) (lifetime time.Duration, heuristic bool) {
	lifetime, heuristic = uncappedFreshness(p, status, responseTime, pct, heurMax)
	return min(lifetime, MaxLifetime), heuristic
}

func uncappedFreshness(p ResponsePolicy, status int, responseTime time.Time, pct int, heurMax time.Duration) (lifetime time.Duration, heuristic bool) {
	switch {
	case p.CC.SMaxAge != Absent:
		return time.Duration(p.CC.SMaxAge) * time.Second, false
	case p.CC.MaxAge != Absent:
		return time.Duration(p.CC.MaxAge) * time.Second, false
	case p.HasExpires:
		if p.Expires.IsZero() {
			return 0, false
		}
		date := p.Date
		if date.IsZero() {
			date = responseTime
		}
		return max(p.Expires.Sub(date), 0), false
	}
	if pct <= 0 || p.LastMod.IsZero() || !(HeuristicStatus(status) || p.CC.Public) {
		return 0, false
	}
	date := p.Date
	if date.IsZero() {
		date = responseTime
	}
	if since := date.Sub(p.LastMod); since > 0 {
		// Divided first: since*pct overflows past 292 years/pct (29 years
		// at 10%), and a file last modified in 1970 got a negative
		// lifetime, never fresh.
		return min(since/100*time.Duration(pct), heurMax), true
	}
	return 0, false
}

// InitialAge is corrected_initial_age (RFC 9111 §4.2.3): the larger of the
// apparent age (receipt time minus Date) and the Age field corrected by the
// response delay.
func InitialAge(p ResponsePolicy, requestTime, responseTime time.Time) time.Duration {
	var apparent time.Duration
	if !p.Date.IsZero() {
		apparent = max(responseTime.Sub(p.Date), 0)
	}
	corrected := max(responseTime.Sub(requestTime), 0)
	if p.Age != Absent {
		corrected += time.Duration(p.Age) * time.Second
	}
	return max(apparent, corrected)
}

// RevalidateOnStale reports whether a stale response must not be served
// without validation: must-revalidate, and for a shared cache
// proxy-revalidate and s-maxage (RFC 9111 §5.2.2.2, .8, .10).
func RevalidateOnStale(cc Directives) bool {
	return cc.MustRevalidate || cc.ProxyRevalidate || cc.SMaxAge != Absent
}

// Decision is what the request phase does with a stored response.
type Decision int

const (
	UseFresh      Decision = iota // serve it: a hit
	UseStale                      // serve it stale, allowed by max-stale: a hit
	UseStaleSWR                   // serve it stale and revalidate it in the background
	Validate                      // forward with conditionals; keep it for 304 and stale-if-error
	ValidateByReq                 // like validate, but it was fresh: the request's directives refused it
)

// Reuse decides RFC 9111 §4 / §4.2 for a stored response of the given
// current age against the request's directives (§5.2.1).
func Reuse(m *Meta, age time.Duration, rq Directives) Decision {
	left := time.Duration(m.Lifetime)*time.Millisecond - age
	fresh := left > 0 && !m.NoCache
	switch {
	case rq.NoCache:
		return ValidateByReq // §5.2.1.4
	case fresh && rq.MaxAge != Absent && age > time.Duration(rq.MaxAge)*time.Second:
		return ValidateByReq // §5.2.1.1
	case fresh && rq.MinFresh != Absent && left < time.Duration(rq.MinFresh)*time.Second:
		return ValidateByReq // §5.2.1.3
	case fresh:
		return UseFresh
	case m.NoCache || m.MustRevalidate:
		return Validate // §4.2.4: no stale use
	case rq.MaxAge != Absent && age > time.Duration(rq.MaxAge)*time.Second:
		return Validate
	case rq.MaxStaleAny || rq.MaxStale != Absent && -left <= time.Duration(rq.MaxStale)*time.Second:
		return UseStale // §5.2.1.2
	case m.SWR > 0 && -left <= time.Duration(m.SWR)*time.Second:
		return UseStaleSWR // RFC 5861 §3
	}
	return Validate
}

// StaleIfError reports whether a stored response of the given age may
// answer for an origin error status (RFC 5861 §4): the response's or the
// request's stale-if-error window covers its staleness, and nothing forbids
// stale use.
func StaleIfError(m *Meta, age time.Duration, reqSIE int64, status int) bool {
	if m.NoCache || m.MustRevalidate {
		return false
	}
	switch status {
	case 500, 502, 503, 504:
	default:
		return false
	}
	stale := age - time.Duration(m.Lifetime)*time.Millisecond
	window := max(m.SIE, reqSIE)
	return window > 0 && stale <= time.Duration(window)*time.Second
}

// SafeMethod reports the methods RFC 9110 §9.2.1 defines as safe; every
// other method, known or not, invalidates (RFC 9111 §4.4).
func SafeMethod(m string) bool { return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" }

// Invalidates reports whether a response to method invalidates the target
// URI: an unsafe method with a non-error (2xx or 3xx) status (§4.4).
func Invalidates(method string, status int) bool {
	return !SafeMethod(method) && status >= 200 && status < 400
}

// VaryNames normalises the Vary field lines: lowercase names, each once, in
// order; star reports a "*" member (RFC 9110 §12.5.5).
func VaryNames(lines []string) (names string, star bool) {
	var seen []string
	for _, l := range lines {
		SplitList(l, func(m string) {
			m = strings.ToLower(m)
			if m == "*" {
				star = true
			}
			for _, s := range seen {
				if s == m {
					return
				}
			}
			seen = append(seen, m)
		})
	}
	return strings.Join(seen, ","), star
}

// Variant is the request's values for the Vary'd names, normalised as RFC
// 9111 §4.1 allows: field lines combined, whitespace around list commas
// dropped. An absent header differs from an empty one.
func Variant(names string, req Headers) string {
	if names == "" {
		return ""
	}
	return string(AppendVariant(nil, names, req))
}

// AppendVariant appends variant(names, req) to dst.
func AppendVariant(dst []byte, names string, req Headers) []byte {
	if names == "" {
		return dst
	}
	for n := range strings.SplitSeq(names, ",") {
		vals := req.Values(n)
		if len(vals) == 0 {
			dst = append(dst, '\x01') // absent
		} else {
			first := true
			for _, v := range vals {
				SplitList(v, func(m string) {
					if !first {
						dst = append(dst, ',')
					}
					first = false
					dst = append(dst, m...)
				})
			}
		}
		dst = append(dst, 0)
	}
	return dst
}

// SkipOnUpdate lists the fields a 304 does not copy onto the stored
// response (RFC 9111 §3.2): hop-by-hop and framing fields, and those the
// stored body depends on. A 304's Cache-Status is copied: its members say
// how the caches before this one handled this validation (the regional
// tier's owner: "wedge-tier; fwd=stale; fwd-status=304"), where the stored
// ones describe the fetch that filled the entry.
func SkipOnUpdate(name string) bool {
	switch strings.ToLower(name) {
	case "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "trailer", "upgrade",
		"proxy-authenticate", "proxy-authentication-info", "proxy-authorization",
		"content-length", "content-encoding", "content-range":
		return true
	}
	return false
}

// Tags collects purge tags: Surrogate-Key is space-separated, Cache-Tag
// comma-separated. Each tag once, at most limit.
func Tags(surrogate, cacheTag []string, limit int) []string {
	var out []string
	add := func(t string) {
		if t == "" || len(out) >= limit {
			return
		}
		for _, o := range out {
			if o == t {
				return
			}
		}
		out = append(out, t)
	}
	for _, l := range surrogate {
		for _, t := range strings.Fields(l) {
			add(t)
		}
	}
	for _, l := range cacheTag {
		SplitList(l, func(m string) { add(m) })
	}
	return out
}

// CacheStatus is one Cache-Status member (RFC 9211 §2): the cache's name,
// then hit or fwd (with fwd-status and stored), ttl and detail. Zero fields
// are left out, except that HasTTL says whether TTL is.
type CacheStatus struct {
	Name      string
	Hit       bool   // answered from the cache
	Fwd       string // why the request went forward ("uri-miss", "stale", ...)
	FwdStatus int    // the status the forwarded request got
	Stored    bool   // the response was stored
	TTL       int64  // freshness left in whole seconds (TTLSeconds), negative once stale
	HasTTL    bool
	Detail    string
}

// String formats the member.
func (s CacheStatus) String() string { return string(s.Append(nil)) }

// Append appends the formatted member to b.
func (s CacheStatus) Append(b []byte) []byte {
	b = append(b, s.Name...)
	if s.Hit {
		b = append(b, "; hit"...)
	}
	if s.Fwd != "" {
		b = append(b, "; fwd="...)
		b = append(b, s.Fwd...)
	}
	if s.FwdStatus > 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(s.FwdStatus), 10)
	}
	if s.Stored {
		b = append(b, "; stored"...)
	}
	if s.HasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, s.TTL, 10)
	}
	if s.Detail != "" {
		b = append(b, "; detail="...)
		b = append(b, s.Detail...)
	}
	return b
}

// TTLSeconds is the remaining freshness in whole seconds as Cache-Status
// reports it: the lifetime minus the age the Age field shows, so the two
// fields always add up (Age: 5 with ttl=55 for max-age=60).
func TTLSeconds(lifetime, age time.Duration) int64 {
	return int64(lifetime/time.Second) - int64(age/time.Second)
}

// ParseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) exactly as its
// grammar has it: the IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", or one of
// the obsolete forms a recipient must accept, RFC 850's
// "Sunday, 06-Nov-94 08:49:37 GMT" and asctime's "Sun Nov  6 08:49:37 1994".
// Names are case-sensitive, every digit and space is where the grammar puts
// it (no one-digit hour, no doubled space) and the date must exist; ok is
// false for anything else, which for Expires means already expired (RFC
// 9111 §5.3). time.Parse, which net/http's ParseTime uses, is more lenient
// on all three counts. The weekday is not checked against the date: the
// grammar does not tie them. It does not allocate.
func ParseHTTPDate(s string) (t time.Time, ok bool) {
	var year, month, day int
	var clock string
	switch {
	case len(s) == 29 && s[3] == ',': // IMF-fixdate
		if slices.Index(shortDays[:], s[:3]) < 0 || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25:] != " GMT" {
			return t, false
		}
		day, month, year, clock = num(s[5:7]), slices.Index(months[:], s[8:11])+1, num(s[12:16]), s[17:25]
	case len(s) == 24 && s[3] == ' ': // asctime-date
		if slices.Index(shortDays[:], s[:3]) < 0 || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
			return t, false
		}
		d := s[8:10]
		if d[0] == ' ' { // ( SP DIGIT )
			d = d[1:]
		}
		day, month, year, clock = num(d), slices.Index(months[:], s[4:7])+1, num(s[20:24]), s[11:19]
	default: // rfc850-date
		comma := strings.IndexByte(s, ',')
		if comma < 0 || slices.Index(longDays[:], s[:comma]) < 0 {
			return t, false
		}
		r := s[comma:] // ", 06-Nov-94 08:49:37 GMT"
		if len(r) != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20:] != " GMT" {
			return t, false
		}
		day, month, year, clock = num(r[2:4]), slices.Index(months[:], r[5:8])+1, num(r[9:11]), r[12:20]
		if year >= 0 {
			year = TwoDigitYear(year, time.Now().Year())
		}
	}
	if len(clock) != 8 || clock[2] != ':' || clock[5] != ':' {
		return t, false
	}
	hour, minute, sec := num(clock[:2]), num(clock[3:5]), num(clock[6:])
	if year < 0 || month < 1 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 60 {
		return t, false
	}
	if time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Day() != day {
		return t, false // 31 Nov, 29 Feb 2026
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), true
}

var (
	shortDays = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	longDays  = [...]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
	months    = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// num is the value of s, all ASCII digits, or -1.
func num(s string) int {
	if s == "" {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// TwoDigitYear is the latest year ending in yy that is not more than 50
// years after now (RFC 9110 §5.6.7: a later one is taken as the most recent
// past year with those digits).
func TwoDigitYear(yy, now int) int {
	y := now - now%100 + yy
	switch {
	case y > now+50:
		y -= 100
	case y+100 <= now+50:
		y += 100
	}
	return y
}

// RangeAllowed reports whether a cached 200 may be answered with the range
// the client asked for, given its If-Range (RFC 9110 §13.1.5): always
// without one; with an entity-tag only when it is strong and the stored
// ETag is the same strong tag (the strong comparison of §8.8.3.2). An
// If-Range date is not honoured: it would need the stored Last-Modified to
// be a strong validator, which the entry does not record, and serving the
// whole representation is what §13.1.5 asks for when the condition fails.
func RangeAllowed(ifRange string, hasIfRange bool, etag string) bool {
	if !hasIfRange {
		return true
	}
	v := TrimOWS(ifRange)
	return len(v) >= 2 && v[0] == '"' && v == etag
}

// String renders the set directives in a fixed order; tests compare it.
func (d Directives) String() string {
	var out []string
	for _, f := range []struct {
		on   bool
		name string
	}{{d.NoStore, "no-store"}, {d.NoCache, "no-cache"}, {d.Private, "private"}, {d.Public, "public"},
		{d.MustRevalidate, "must-revalidate"}, {d.ProxyRevalidate, "proxy-revalidate"},
		{d.MustUnderstand, "must-understand"}, {d.OnlyIfCached, "only-if-cached"}, {d.MaxStaleAny, "max-stale"}} {
		if f.on {
			out = append(out, f.name)
		}
	}
	for _, f := range []struct {
		v    int64
		name string
	}{{d.MaxAge, "max-age"}, {d.SMaxAge, "s-maxage"}, {d.MaxStale, "max-stale"}, {d.MinFresh, "min-fresh"},
		{d.SWR, "stale-while-revalidate"}, {d.SIE, "stale-if-error"}} {
		if f.v != Absent {
			out = append(out, f.name+"="+strconv.FormatInt(f.v, 10))
		}
	}
	if len(d.NoCacheFields) > 0 {
		out = append(out, `no-cache="`+strings.Join(d.NoCacheFields, ",")+`"`)
	}
	if len(d.PrivateFields) > 0 {
		out = append(out, `private="`+strings.Join(d.PrivateFields, ",")+`"`)
	}
	return strings.Join(out, " ")
}

// NotModified evaluates a client's conditional GET or HEAD against a stored
// response (RFC 9111 §4.3.2): If-None-Match with the weak comparison (RFC
// 9110 §13.1.2), else If-Modified-Since against Last-Modified (§13.1.3).
func NotModified(inm []string, ims, etag, lastMod string) bool {
	if len(inm) > 0 {
		if etag == "" {
			return false
		}
		match := false
		for _, l := range inm {
			SplitList(l, func(m string) {
				match = match || m == "*" || strings.TrimPrefix(m, "W/") == strings.TrimPrefix(etag, "W/")
			})
		}
		return match
	}
	if ims == "" || lastMod == "" {
		return false
	}
	since, ok := ParseHTTPDate(TrimOWS(ims))
	if !ok {
		return false // §13.1.3: an invalid date is ignored
	}
	lm, ok := ParseHTTPDate(lastMod)
	return ok && !lm.After(since)
}

// KeepOn304 lists the fields a 304 carries (RFC 9110 §15.4.5), plus the
// cache's own Age and Cache-Status.
func KeepOn304(name string) bool {
	switch strings.ToLower(name) {
	case "cache-control", "content-location", "date", "etag", "expires", "vary", "age", "cache-status", "last-modified":
		return true
	}
	return false
}
