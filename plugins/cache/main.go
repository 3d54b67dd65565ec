// Command cache is an RFC 9111 shared HTTP cache for Wedge, driven through
// the host's response cache: the plugin decides policy (storability,
// freshness, age, Vary, validation, invalidation) and keys; the host keeps
// the responses, so bodies never pass through the guest. Every response it
// handles carries an RFC 9211 Cache-Status member. See README.md.
//
// The policy is in policy.go as pure functions, tested natively against
// the RFC text in policy_test.go; this file wires it to the host.
//
// # Why
//
// The plugin runs in a chain and holds no state between calls: what the
// request phase learned (the entry it found, why it forwarded) travels to
// the response phase in a request-scoped value, and what a later lookup
// needs (age at store time, lifetime, validators, Vary) travels with the
// entry as its metadata, so a lookup decides without reading stored
// headers.
//
// Variants (Vary) hang off the primary entry of a URL: the first response
// stored for a URL sits under the primary key and its metadata names the
// Vary'd headers and a generation; other variants sit under secondary keys
// made of the primary key, that generation and their request header
// values. Purging or invalidating the primary key therefore orphans every
// variant at once (a new primary gets a new generation), without the host
// needing a prefix purge.
//
// A stale-while-revalidate hit hands the revalidation to the host
// (sdk.CacheRevalidate) with a copy of the request made into a plain
// revalidation and the forwarding state saved for it, then marks its own
// state as a hit: the copy's response phase stores or freshens the entry
// like any forwarded request's, and the client's answer is never held up.
// Ranges follow "parse in the host, decide in the guest": the plugin
// decides that a hit may be answered with a range (GET, a stored 200,
// If-Range), the host parses Range and cuts the stored body.
package main

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm/abi"
)

// stateKey names the request-scoped value that carries state between phases.
const stateKey = "cache.state"

// identityMethod is the request value the auth plugin sets on every
// request it authenticated, whether or not it stripped the credentials.
const identityMethod = "identity-method"

type cache struct {
	// Scratch buffers, reused from call to call: an instance runs one
	// call at a time, and the host copies whatever it keeps.
	key, vkey, vbuf, buf []byte

	name         string        // the Cache-Status cache identifier
	heurPct      int           // heuristic freshness, percent of the Last-Modified age; 0 disables
	heurMax      time.Duration // cap on heuristic freshness
	keepStale    time.Duration // how long a stale entry with validators is kept for revalidation
	stripCDN     bool          // remove CDN-Cache-Control before it reaches clients
	stripCookies bool          // store responses with Set-Cookie without it, rather than not at all

	hits, misses, stores sdk.Metric
}

// Configure reads the JSON config (README.md, Config).
func (c *cache) Configure(cfg []byte) error {
	c.name, c.heurPct, c.heurMax, c.keepStale = "wedge", 10, 24*time.Hour, 24*time.Hour
	if len(cfg) > 0 {
		var bad error
		err := jsonscan.Object(cfg, func(k, v []byte) bool {
			secs := func(dst *time.Duration) {
				n, err := jsonscan.Int(v)
				if err != nil || n < 0 || n > 400*24*3600 {
					bad = errors.New("cache: " + string(k) + " must be whole seconds from 0 to 400 days")
				}
				*dst = time.Duration(n) * time.Second
			}
			switch {
			case jsonscan.KeyIs(k, "name"):
				s, err := jsonscan.String(v)
				if err != nil || !validToken(s) {
					bad = errors.New("cache: name must be a token starting with a letter (RFC 9211 §2)")
				}
				c.name = s
			case jsonscan.KeyIs(k, "heuristic_percent"):
				n, err := jsonscan.Int(v)
				if err != nil || n < 0 || n > 100 {
					bad = errors.New("cache: heuristic_percent must be an integer from 0 to 100")
				}
				c.heurPct = int(n)
			case jsonscan.KeyIs(k, "heuristic_max"):
				secs(&c.heurMax)
			case jsonscan.KeyIs(k, "keep_stale"):
				secs(&c.keepStale)
			case jsonscan.KeyIs(k, "strip_cdn_cache_control"):
				b, err := jsonscan.Bool(v)
				if err != nil {
					bad = errors.New("cache: strip_cdn_cache_control must be a boolean")
				}
				c.stripCDN = b
			case jsonscan.KeyIs(k, "set_cookie"):
				s, err := jsonscan.String(v)
				if err != nil || s != "refuse" && s != "strip" {
					bad = errors.New(`cache: set_cookie must be "refuse" or "strip"`)
				}
				c.stripCookies = s == "strip"
			default:
				bad = errors.New("cache: unknown config field " + strconv.Quote(string(k)))
			}
			return bad == nil
		})
		if err != nil {
			return errors.New("cache: config is not a JSON object")
		}
		if bad != nil {
			return bad
		}
	}
	var err error
	if c.hits, err = sdk.NewCounter("cache_hits_total"); err != nil {
		return err
	}
	if c.misses, err = sdk.NewCounter("cache_forwards_total"); err != nil {
		return err
	}
	c.stores, err = sdk.NewCounter("cache_stores_total")
	return err
}

// validToken reports whether s can name the cache in Cache-Status: an
// sf-token (RFC 9211 §2, RFC 8941 §3.3.4) made of plain tchars.
func validToken(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// OnRequest looks the request up and answers fresh hits; otherwise it
// continues, with conditionals added when a stale entry can be validated.
//
// A hit is the path that matters for speed: it makes as few host calls as
// it can, builds keys and header values in the instance's scratch buffers
// and saves no state (OnResponse has nothing to do for a hit, and finds
// that out from the missing state).
func (c *cache) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	st := state{mode: modeForward}
	method := req.Method()
	switch {
	case !safeMethod(method):
		st.mode, st.fwd = modeUnsafe, "method"
		return c.save(req, &st)
	case method != "GET" && method != "HEAD":
		st.mode, st.fwd = modeBypass, "method"
		return c.save(req, &st)
	}
	rh := req.Header()
	ccLines := rh.Values("Cache-Control")
	rq := parseCacheControl(ccLines, false)
	if len(ccLines) == 0 && pragmaNoCache(rh.Values("Pragma")) {
		rq.noCache = true // RFC 9111 §5.4: Pragma counts only without Cache-Control
	}
	st.noStore, st.reqSIE = rq.noStore, max(rq.sie, 0)
	inm := rh.Values("If-None-Match") // empty exactly when absent
	ims, hasIMS := rh.Lookup("If-Modified-Since")
	st.clientCond = len(inm) > 0 || hasIMS

	c.key = appendCacheKey(c.key[:0], req.Scheme(), req.Host(), req.Path(), req.RawQuery())
	key := view(c.key) // valid until the next call
	info, mb, ok := sdk.CacheLookup(c.key)
	var m meta
	if ok {
		m, ok = decodeMeta(mb)
	}
	if !ok {
		st.fwd = "uri-miss"
		return c.miss(req, resp, &st, rq)
	}
	st.primary, st.primaryNames, st.primaryVar, st.primaryGen = true, m.varyNames, m.variant, m.gen
	entry := c.key
	if m.varyNames != "" {
		c.vbuf = appendVariant(c.vbuf[:0], m.varyNames, rh)
		if v := view(c.vbuf); v != m.variant {
			c.vkey = appendVariantKey(c.vkey[:0], key, m.gen, v)
			entry = c.vkey
			var vm meta
			if info, mb, ok = sdk.CacheLookup(entry); ok {
				vm, ok = decodeMeta(mb)
				// The metadata, not the key, proves the match: keys of long
				// variants are digests.
				ok = ok && vm.variant == v && vm.varyNames == m.varyNames && vm.gen == m.gen
			}
			if !ok {
				st.fwd = "vary-miss"
				return c.miss(req, resp, &st, rq)
			}
			m = vm
		}
	}
	age := time.Duration(m.initialAge+info.AgeMs) * time.Millisecond
	d := reuse(&m, age, rq)
	if d == useFresh || d == useStale || d == useStaleSWR {
		var rg clientRange
		if method == "GET" { // RFC 9110 §14.2: Range is for GET only
			rg.value, rg.has = rh.Lookup("Range")
			if rg.has {
				rg.ifRange, rg.hasIfRange = rh.Lookup("If-Range")
			}
		}
		detail, bg := "", false
		switch {
		case d == useStale:
			detail = "max-stale"
		case d == useStaleSWR && method == "GET":
			if bg = c.background(req, rh, &st, entry, &m); !bg {
				d = validate // the host cannot: this request revalidates
			}
			detail = "stale-while-revalidate"
		case d == useStaleSWR:
			// HEAD is served stale without a revalidation: the stored
			// response is a GET's, and the next GET asks for one.
			detail = "stale-while-revalidate"
		}
		if d != validate {
			a := c.serve(req, resp, &st, entry, &m, age, detail, inm, ims, rg)
			if a == sdk.Continue && bg {
				// Evicted since the lookup, after background() made the
				// request a revalidation: forward it as a plain request.
				_ = rh.Del("If-None-Match")
				_ = rh.Del("If-Modified-Since")
				st.clientCond = false
				return c.save(req, &st)
			}
			return a
		}
	}
	switch d {
	case validate:
		st.fwd = "stale"
	case validateByReq:
		st.fwd = "request"
	}
	if rq.onlyIfCached {
		return c.gatewayTimeout(req, resp, &st)
	}
	st.entryKey = string(entry)
	if !st.clientCond {
		// §4.3.1: validate with the stored validators. A client's own
		// conditionals are left alone: its 304 is then passed through.
		if m.etag != "" {
			_ = rh.Set("If-None-Match", m.etag)
		}
		if m.lastMod != "" {
			_ = rh.Set("If-Modified-Since", m.lastMod)
		}
	}
	c.misses.Record(1)
	return c.save(req, &st)
}

func pragmaNoCache(lines []string) bool {
	found := false
	for _, l := range lines {
		splitList(l, func(m string) { found = found || strings.EqualFold(m, "no-cache") })
	}
	return found
}

func (c *cache) miss(req sdk.Request, resp sdk.Response, st *state, rq directives) sdk.Action {
	if rq.onlyIfCached {
		return c.gatewayTimeout(req, resp, st)
	}
	c.misses.Record(1)
	return c.save(req, st)
}

// gatewayTimeout answers only-if-cached without a usable entry (§5.2.1.7).
func (c *cache) gatewayTimeout(req sdk.Request, resp sdk.Response, st *state) sdk.Action {
	st.mode = modeAnswer
	c.save(req, st)
	_ = resp.Header().Add("Cache-Status", cacheStatus(c.name, false, "", 0, false, 0, false, "only-if-cached"))
	return resp.AnswerText(504, "Gateway Timeout: not in cache")
}

// clientRange is a request's Range and If-Range, as far as a hit needs them.
type clientRange struct {
	value, ifRange  string
	has, hasIfRange bool
}

// serve answers from the entry: Age is the current age (§4.2.3, §5.1).
// inm and ims are the client's If-None-Match and If-Modified-Since, rg its
// Range: a stored 200 answers a single byte range with a 206 the host cuts
// from the stored body (RFC 9110 §14.2), after the conditionals (§13.2.2).
func (c *cache) serve(req sdk.Request, resp sdk.Response, st *state, entry []byte, m *meta, age time.Duration, detail string, inm []string, ims string, rg clientRange) sdk.Action {
	status, err := sdk.CacheServe(entry)
	if err != nil {
		st.fwd = "uri-miss" // evicted since the lookup
		c.misses.Record(1)
		return c.save(req, st)
	}
	// No state saved: OnResponse passes a response without it through.
	h := resp.Header()
	c.buf = strconv.AppendInt(c.buf[:0], int64(age/time.Second), 10)
	_ = h.Set("Age", view(c.buf))
	ttl := ttlSeconds(time.Duration(m.lifetime)*time.Millisecond, age)
	c.buf = appendCacheStatus(c.buf[:0], c.name, true, "", 0, false, ttl, true, detail)
	_ = h.Add("Cache-Status", view(c.buf))
	c.hits.Record(1)
	if st.clientCond && notModified(inm, ims, m.etag, m.lastMod) {
		// §4.3.2: the client already has this representation. The 304
		// keeps only the fields §15.4.5 of RFC 9110 lists; the host
		// recomputes framing for the empty body.
		for _, n := range h.Names() {
			if !keepOn304(n) {
				_ = h.Del(n)
			}
		}
		_ = resp.SetStatus(304)
		_ = resp.SetBody(nil)
		return sdk.Answer
	}
	if rg.has && status == 200 && rangeAllowed(rg.ifRange, rg.hasIfRange, m.etag) {
		if _, err := resp.ApplyRange(rg.value); err != nil {
			return sdk.Fail(err)
		}
	}
	return sdk.Answer
}

// background asks the host to revalidate the stale entry once this
// request is answered from it (RFC 5861 §3): the host sends a copy of the
// request as it is when sdk.CacheRevalidate is called, and runs
// OnResponse on the origin's answer, which stores or freshens the entry as
// for any forwarded request. It reports false when the host cannot
// revalidate in the background; the request and st are then set up to
// revalidate in the foreground.
//
// The copy has to be a plain revalidation of the whole stored response,
// whatever this client asked: its own conditionals and Range are replaced
// by the stored validators. The client's answer no longer needs them: the
// caller read them already.
func (c *cache) background(req sdk.Request, rh sdk.Header, st *state, entry []byte, m *meta) bool {
	for _, n := range [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range", "If-Range"} {
		_ = rh.Del(n)
	}
	if m.etag != "" {
		_ = rh.Set("If-None-Match", m.etag)
	}
	if m.lastMod != "" {
		_ = rh.Set("If-Modified-Since", m.lastMod)
	}
	bg := *st // the copy's state: the client's answer is served with st
	bg.fwd, bg.entryKey, bg.clientCond = "stale", string(entry), false
	if c.save(req, &bg) != sdk.Continue {
		*st = bg
		return false
	}
	scheduled, err := sdk.CacheRevalidate(entry)
	if errors.Is(err, sdk.ErrUnavailable) {
		*st = bg
		return false
	}
	if scheduled {
		c.misses.Record(1)
	}
	// Scheduled or skipped (a revalidation is under way already): either
	// way this request is a hit, and its own OnResponse must not take the
	// stale answer for the origin's.
	_ = req.SetValue(stateKey, hitState)
	return true
}

// variantKey is the secondary key of one variant of the primary key.
func variantKey(key, gen, v string) string {
	return string(appendVariantKey(nil, key, gen, v))
}

// appendVariantKey appends variantKey(key, gen, v) to dst.
func appendVariantKey(dst []byte, key, gen, v string) []byte {
	start := len(dst)
	dst = append(dst, key...)
	dst = append(dst, "\x00v\x00"...)
	dst = append(dst, gen...)
	dst = append(dst, 0)
	if len(dst)-start+len(v) <= abi.MaxCacheKeyLen/2 {
		return append(dst, v...)
	}
	dst = append(dst, '#')
	return hex.AppendEncode(dst, sdk.Digest(abi.DigestSHA256, nil, []byte(v)))
}

// save stores the state for OnResponse. request_time (§4.2.3) is taken
// here, as the request leaves for the origin; hits never need it.
func (c *cache) save(req sdk.Request, st *state) sdk.Action {
	st.reqTime = sdk.Now().UnixMilli()
	if err := req.SetValue(stateKey, st.encode()); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

// OnResponse stores, freshens, serves stale on error or invalidates, and
// says what it did in Cache-Status.
func (c *cache) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	v, ok := req.Value(stateKey)
	if !ok {
		return sdk.Continue // another plugin answered before this one ran
	}
	st, ok := decodeState(v)
	if !ok {
		return sdk.Continue
	}
	if st.mode == modeHit || st.mode == modeAnswer {
		return sdk.Continue
	}
	rh := resp.Header()
	status := resp.Status()
	// The targeted field named for this cache is consumed here; RFC 9213 §3
	// lets CDN-Cache-Control go on downstream unless configured otherwise.
	p := readPolicy(rh)
	_ = rh.Del("Wedge-Cache-Control")
	if c.stripCDN {
		_ = rh.Del("CDN-Cache-Control")
	}
	switch st.mode {
	case modeBypass:
		return c.status(rh, cacheStatus(c.name, false, st.fwd, status, false, 0, false, ""))
	case modeUnsafe:
		detail := ""
		if invalidates(req.Method(), status) {
			c.invalidate(req, rh)
			detail = "invalidated"
		}
		return c.status(rh, cacheStatus(c.name, false, st.fwd, status, false, 0, false, detail))
	}
	if st.entryKey != "" {
		switch {
		case status == 304 && !st.clientCond:
			return c.freshen(req, resp, &st)
		case status >= 500:
			if a, ok := c.staleOnError(resp, &st, status); ok {
				return a
			}
		}
	}
	return c.store(req, resp, &st, p, req.Method(), status, status)
}

func (c *cache) status(h sdk.Header, v string) sdk.Action {
	if err := h.Add("Cache-Status", v); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

// staleOnError serves the stale entry for an origin error within its
// stale-if-error window (RFC 5861 §4).
func (c *cache) staleOnError(resp sdk.Response, st *state, status int) (sdk.Action, bool) {
	info, mb, ok := sdk.CacheLookup([]byte(st.entryKey))
	if !ok {
		return 0, false
	}
	m, ok := decodeMeta(mb)
	age := time.Duration(m.initialAge+info.AgeMs) * time.Millisecond
	if !ok || !staleIfError(&m, age, st.reqSIE, status) {
		return 0, false
	}
	if _, err := sdk.CacheServe([]byte(st.entryKey)); err != nil {
		return 0, false
	}
	h := resp.Header()
	_ = h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	ttl := ttlSeconds(time.Duration(m.lifetime)*time.Millisecond, age)
	c.hits.Record(1)
	return c.status(h, cacheStatus(c.name, false, "stale", status, false, ttl, true, "stale-if-error")), true
}

// freshen handles a 304 to the plugin's own validation (RFC 9111 §4.3.3,
// §4.3.4): the stored response, with the 304's header fields replacing its
// own (§3.2), becomes the response and is stored again.
func (c *cache) freshen(req sdk.Request, resp sdk.Response, st *state) sdk.Action {
	h := resp.Header()
	var fields []headerField
	hasAge := false
	for _, n := range h.Names() {
		if skipOnUpdate(n) {
			continue
		}
		hasAge = hasAge || strings.EqualFold(n, "Age")
		fields = append(fields, headerField{n, h.Values(n)})
	}
	etag := h.Get("ETag")
	var stored string
	if _, mb, ok := sdk.CacheLookup([]byte(st.entryKey)); ok {
		if m, ok := decodeMeta(mb); ok {
			stored = m.etag
		}
	}
	status, err := sdk.CacheServe([]byte(st.entryKey))
	if err != nil {
		// Evicted since the request phase: the 304 answers conditionals the
		// client never sent, so say so rather than pretend.
		return c.status(h, cacheStatus(c.name, false, "stale", 304, false, 0, false, "entry-lost"))
	}
	if etag != "" && stored != "" && etag != stored {
		// §4.3.4: a 304 naming another representation updates nothing. The
		// client asked unconditionally, so it gets the stored response this
		// once, and the entry goes so the next request fetches afresh.
		sdk.CachePurge([]byte(st.entryKey))
		return c.status(h, cacheStatus(c.name, false, "stale", 304, false, 0, false, "validator-mismatch"))
	}
	for _, f := range fields {
		_ = h.Set(f.name, f.vals[0])
		for _, v := range f.vals[1:] {
			_ = h.Add(f.name, v)
		}
	}
	if !hasAge {
		_ = h.Del("Age") // the stored Age described the old response
	}
	p := readPolicy(h)
	_ = h.Del("Wedge-Cache-Control")
	if c.stripCDN {
		_ = h.Del("CDN-Cache-Control")
	}
	// The current response is the stored GET response, so it is stored
	// again even when a HEAD revalidated it (§4.3.5).
	return c.store(req, resp, st, p, "GET", status, 304)
}

// store decides storability and freshness of the current response and
// stores it, then adds Cache-Status. fwdStatus is what the origin answered
// (304 when the current response is a freshened stored one).
func (c *cache) store(req sdk.Request, resp sdk.Response, st *state, p responsePolicy, method string, status, fwdStatus int) sdk.Action {
	h := resp.Header()
	rqh := req.Header()
	_, auth := rqh.Lookup("Authorization")
	if !auth {
		// The auth plugin strips the credentials it verified before this
		// plugin sees the request; the identity it forwards says the
		// request was authenticated all the same (§3.5).
		_, auth = req.Value(identityMethod)
	}
	names, star := varyNames(h.Values("Vary"))
	if c.stripCookies && p.setCookie {
		p.cc.privateFields = append(p.cc.privateFields, "Set-Cookie")
	}
	why := storable(method, status, directives{noStore: st.noStore}, p, auth, star)
	var ttl int64
	hasTTL := false
	if why == okStore {
		p.readTimes(h)
		now := sdk.Now()
		lifetime, _ := freshness(p, status, now, c.heurPct, c.heurMax)
		ia := initialAge(p, time.UnixMilli(st.reqTime), now)
		m := meta{
			initialAge: ia.Milliseconds(), lifetime: lifetime.Milliseconds(),
			noCache: p.cc.noCache, mustRevalidate: revalidateOnStale(p.cc),
			swr: max(p.cc.swr, 0), sie: max(p.cc.sie, 0),
			etag: h.Get("ETag"), lastMod: h.Get("Last-Modified"), varyNames: names,
		}
		fresh := max(lifetime-ia, 0)
		if m.noCache {
			fresh = 0
		}
		keep := time.Duration(max(m.swr, m.sie)) * time.Second
		if m.etag != "" || m.lastMod != "" {
			keep = max(keep, c.keepStale)
		}
		if fresh+keep <= 0 {
			why = whyNotUseful
		} else {
			key := cacheKey(req.Scheme(), req.Host(), req.Path(), req.RawQuery())
			if names != "" {
				m.variant = variant(names, rqh)
				switch {
				case st.primary && st.primaryNames == names && st.primaryGen != "":
					m.gen = st.primaryGen
					if m.variant != st.primaryVar {
						key = variantKey(key, m.gen, m.variant)
					}
				default:
					m.gen = newGen()
				}
			}
			tagList := tags(h.Values("Surrogate-Key"), h.Values("Cache-Tag"), abi.MaxTags)
			// The host stores the response as it is at the call: without
			// the fields a qualified no-cache or private names, which the
			// client of this request still gets (after the others now).
			kept := withheld(h, p.omitted())
			err := sdk.CacheStore([]byte(key), m.encode(), fresh, min(keep, maxLifetime), tagList...)
			for _, f := range kept {
				for _, v := range f.vals {
					_ = h.Add(f.name, v)
				}
			}
			if err != nil {
				why = "store-failed"
				sdk.Warn("cache: store failed", "error", err.Error())
			} else {
				c.stores.Record(1)
			}
		}
		ttl, hasTTL = ttlSeconds(lifetime, ia), true
	}
	return c.status(h, cacheStatus(c.name, false, st.fwd, fwdStatus, why == okStore, ttl, hasTTL, why))
}

// headerField is a header field's name and values.
type headerField struct {
	name string
	vals []string
}

// withheld removes the named fields from h and returns them, to be put back
// after the response is stored. A name the host owns (framing, hop-by-hop)
// cannot be removed, and needs not be: the host never replays those from
// the cache.
func withheld(h sdk.Header, names []string) []headerField {
	var out []headerField
	for _, n := range names {
		if vals := h.Values(n); len(vals) > 0 && h.Del(n) == nil {
			out = append(out, headerField{n, vals})
		}
	}
	return out
}

func newGen() string {
	var b [6]byte
	sdk.Random(b[:])
	return hex.EncodeToString(b[:])
}

// invalidate purges the target URI and same-origin Location and
// Content-Location URIs (RFC 9111 §4.4). Purging a primary key orphans its
// variants (see the package doc).
func (c *cache) invalidate(req sdk.Request, h sdk.Header) {
	scheme, host, path, query := req.Scheme(), req.Host(), req.Path(), req.RawQuery()
	sdk.CachePurge([]byte(cacheKey(scheme, host, path, query)))
	for _, name := range [...]string{"Location", "Content-Location"} {
		if v := h.Get(name); v != "" {
			if k, ok := sameOriginKey(scheme, host, path, query, v); ok {
				sdk.CachePurge([]byte(k))
			}
		}
	}
}

func init() { sdk.Register(&cache{}) }

func main() {}
