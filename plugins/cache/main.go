// Command cache is an RFC 9111 shared HTTP cache for Wedge, driven through
// the host's response cache: the plugin decides policy (storability,
// freshness, age, Vary, validation, invalidation) and keys; the host keeps
// the responses, so bodies never pass through the guest. Every response it
// handles carries an RFC 9211 Cache-Status member. See README.md.
//
// The policy is package wasm/abi/httpcache, pure functions tested natively
// against the RFC text in policy_test.go, and shared with the host: the
// request phase runs there (sdk.CacheRequest, cache_request), where key
// building, metadata decoding, directive parsing and freshness arithmetic
// cost a fraction of what they cost in a Go guest. The plugin still decides
// whether a request is looked up (its method) and under what name the cache
// reports. The response phase of a response that will not be stored is
// settled in the host too (sdk.CacheResponse, cache_response, with
// httpcache.Settle, which the plugin decides with as well); the rest of the
// response phase (storability, freshness, what is stored) runs here.
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
// (cache_revalidate) with a copy of the request made into a plain
// revalidation and the forwarding state saved for it, then marks its own
// state as a hit: the copy's response phase stores or freshens the entry
// like any forwarded request's, and the client's answer is never held up.
// A hit is answered with a range when RFC 9110 allows it (GET, a stored
// 200, If-Range), cut from the stored body by the host.
package main

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

type cache struct {
	// Scratch buffers, reused from call to call: an instance runs one
	// call at a time, and the host copies whatever it keeps.
	buf    []byte
	method []byte
	state  []byte      // the request-scoped state, read in the response phase
	resp   headerLines // the response header as the policy reads it

	name         string        // the Cache-Status cache identifier
	heurPct      int           // heuristic freshness, percent of the Last-Modified age; 0 disables
	heurMax      time.Duration // cap on heuristic freshness
	keepStale    time.Duration // how long a stale entry with validators is kept for revalidation
	stripCDN     bool          // remove CDN-Cache-Control before it reaches clients
	stripCookies bool          // store responses with Set-Cookie without it, rather than not at all
	options      int32         // the two above as cache_response options

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
	c.options = 0
	if c.stripCDN {
		c.options |= httpcache.StripCDN
	}
	if c.stripCookies {
		c.options |= httpcache.StripSetCookie
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
// sf-token (RFC 9211 §2, RFC 8941 §3.3.4) made of plain tchars, so it
// starts with a letter.
func validToken(s string) bool {
	return s != "" && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') && abi.ValidToken(s)
}

// OnRequest looks GET and HEAD requests up in the host (sdk.CacheRequest),
// which answers usable entries and otherwise prepares the forward; other
// methods are forwarded with a state that tells the response phase what
// to do with them.
//
// A hit is the path that matters for speed: one host call, no state saved
// (OnResponse has nothing to do for a hit, and finds that out from the
// missing state).
//
// The host checks the method itself: cache_request refuses any but GET and
// HEAD with ErrInvalid (the name was checked by Configure), so a GET or
// HEAD costs no method read.
func (c *cache) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	flags, err := sdk.CacheRequest(c.name)
	if errors.Is(err, sdk.ErrInvalid) {
		c.buf = req.AppendMethod(c.buf[:0])
		st := httpcache.State{Mode: httpcache.ModeBypass, Fwd: "method"}
		if !httpcache.SafeMethod(string(c.buf)) {
			st.Mode = httpcache.ModeUnsafe
		}
		return c.save(req, &st)
	}
	if err != nil {
		return sdk.Fail(err)
	}
	if flags&httpcache.Hit != 0 {
		c.hits.Record(1)
	}
	if flags&httpcache.Forward != 0 {
		c.misses.Record(1)
	}
	if flags&httpcache.Revalidating != 0 {
		c.misses.Record(1)
	}
	if flags&httpcache.Answered != 0 {
		return sdk.Answer
	}
	return sdk.Continue
}

// save stores the state for OnResponse. request_time (§4.2.3) is taken
// here, as the request leaves for the origin; hits never need it.
func (c *cache) save(req sdk.Request, st *httpcache.State) sdk.Action {
	st.ReqTime = sdk.Now().UnixMilli()
	if err := req.SetValue(httpcache.StateKey, st.Encode()); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

// OnResponse stores, freshens, serves stale on error or invalidates, and
// says what it did in Cache-Status. A response that will not be stored
// (no-store is the common miss) is settled in the host
// (sdk.CacheResponse) with the decision decide makes: one host call, where
// reading the state, the status and five fields, parsing them and
// reporting took nine and most of a 5 us response phase as Wasm.
func (c *cache) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	flags, err := sdk.CacheResponse(c.name, c.options)
	if err != nil {
		return sdk.Fail(err)
	}
	if flags&httpcache.Settled != 0 {
		return sdk.Continue
	}
	return c.decide(req, resp)
}

// decide is the response phase of a response cache_response left to the
// plugin: one that may be stored, a freshening, a stale-if-error, an
// invalidation.
func (c *cache) decide(req sdk.Request, resp sdk.Response) sdk.Action {
	var ok bool
	if c.state, ok = req.AppendValue(c.state[:0], httpcache.StateKey); !ok {
		return sdk.Continue // another plugin answered before this one ran
	}
	st, ok := httpcache.DecodeState(view(c.state)) // views of c.state, which this call no longer writes
	if !ok {
		return sdk.Continue
	}
	if st.Mode == httpcache.ModeHit || st.Mode == httpcache.ModeAnswer {
		return sdk.Continue
	}
	rh := resp.Header()
	status := resp.Status()
	c.resp.reset(rh)
	p := httpcache.ReadPolicy(&c.resp)
	c.method = req.AppendMethod(c.method[:0])
	if detail, ok := httpcache.Settle(&st, view(c.method), status, p, c.stripCookies); ok {
		return c.report(rh, httpcache.CacheStatus{Fwd: st.Fwd, FwdStatus: status, Detail: detail})
	}
	if st.Mode == httpcache.ModeUnsafe {
		detail := ""
		if httpcache.Invalidates(string(c.method), status) {
			c.invalidate(req, rh)
			detail = "invalidated"
		}
		return c.report(rh, httpcache.CacheStatus{Fwd: st.Fwd, FwdStatus: status, Detail: detail})
	}
	if st.EntryKey != "" {
		switch {
		case status == 304 && !st.ClientCond:
			return c.freshen(req, resp, &st)
		case status >= 500:
			if a, ok := c.staleOnError(resp, &st, status); ok {
				return a
			}
		}
	}
	return c.store(req, resp, &st, p, view(c.method), status, status)
}

// report consumes the targeted field named for this cache and adds this
// cache's Cache-Status member (RFC 9211 §2) to h, named as configured.
// Every path of the response phase ends here, after what it stores is
// stored: an entry keeps the targeted fields, so that the regional cache
// tier hands them to an asking cache (edge/tier_http.go) whoever filled it,
// and a hit consumes them on the way out (cache_response). RFC 9213 §3
// lets CDN-Cache-Control go on downstream unless configured otherwise.
func (c *cache) report(h sdk.Header, st httpcache.CacheStatus) sdk.Action {
	_ = h.Del("Wedge-Cache-Control")
	if c.stripCDN {
		_ = h.Del("CDN-Cache-Control")
	}
	st.Name = c.name
	c.buf = st.Append(c.buf[:0])
	if err := h.AddBytes("Cache-Status", c.buf); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

// staleOnError serves the stale entry for an origin error within its
// stale-if-error window (RFC 5861 §4).
func (c *cache) staleOnError(resp sdk.Response, st *httpcache.State, status int) (sdk.Action, bool) {
	info, mb, ok := sdk.CacheLookup([]byte(st.EntryKey))
	if !ok {
		return 0, false
	}
	m, ok := httpcache.DecodeMeta(mb)
	age := time.Duration(m.InitialAge+info.AgeMs) * time.Millisecond
	if !ok || !httpcache.StaleIfError(&m, age, st.ReqSIE, status) {
		return 0, false
	}
	if _, err := sdk.CacheServe([]byte(st.EntryKey)); err != nil {
		return 0, false
	}
	h := resp.Header()
	_ = h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	ttl := httpcache.TTLSeconds(time.Duration(m.Lifetime)*time.Millisecond, age)
	c.hits.Record(1)
	return c.report(h, httpcache.CacheStatus{Fwd: "stale", FwdStatus: status, TTL: ttl, HasTTL: true, Detail: "stale-if-error"}), true
}

// freshen handles a 304 to the plugin's own validation (RFC 9111 §4.3.3,
// §4.3.4): the stored response, with the 304's header fields replacing its
// own (§3.2), becomes the response and is stored again.
func (c *cache) freshen(req sdk.Request, resp sdk.Response, st *httpcache.State) sdk.Action {
	h := resp.Header()
	var fields []headerField
	hasAge := false
	for _, n := range h.Names() {
		if httpcache.SkipOnUpdate(n) {
			continue
		}
		hasAge = hasAge || strings.EqualFold(n, "Age")
		fields = append(fields, headerField{n, h.Values(n)})
	}
	etag := h.Get("ETag")
	status, err := sdk.CacheServe([]byte(st.EntryKey))
	if err != nil {
		// The host keeps the entry cache_request validated for the
		// exchange's cache_serve however the store lost it
		// (wasm/abi/README.md, cache_request); a host whose exchange
		// cannot (host.EntryHolder) leaves nothing to serve, and the 304
		// answers conditionals the client never sent, so say so rather
		// than pretend.
		return c.report(h, httpcache.CacheStatus{Fwd: "stale", FwdStatus: 304, Detail: "entry-lost"})
	}
	// The stored ETag is the served response's own: the entry may be one
	// only the exchange still holds, which cache_lookup does not see.
	if stored := h.Get("ETag"); etag != "" && stored != "" && etag != stored {
		// §4.3.4: a 304 naming another representation updates nothing. The
		// client asked unconditionally, so it gets the stored response this
		// once, and the entry goes so the next request fetches afresh.
		sdk.CachePurge([]byte(st.EntryKey))
		return c.report(h, httpcache.CacheStatus{Fwd: "stale", FwdStatus: 304, Detail: "validator-mismatch"})
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
	c.resp.reset(h)
	p := httpcache.ReadPolicy(&c.resp)
	// The current response is the stored GET response, so it is stored
	// again even when a HEAD revalidated it (§4.3.5).
	return c.store(req, resp, st, p, "GET", status, 304)
}

// authorized reports whether the request carried credentials (RFC 9111
// §3.5). The auth plugin strips the credentials it verified before this
// plugin sees the request; the identity it forwards says the request was
// authenticated all the same.
func authorized(req sdk.Request) bool {
	if _, ok := req.Header().Lookup("Authorization"); ok {
		return true
	}
	_, ok := req.Value(abi.IdentityMethod) // set on every request the auth plugin admitted
	return ok
}

// store decides storability and freshness of the current response and
// stores it, then adds Cache-Status. fwdStatus is what the origin answered
// (304 when the current response is a freshened stored one).
//
// The decision comes first, from the method, the status and the
// directives already read, and asks the host for more only where it can
// still change: Authorization matters only to a response that does not
// override it, Vary only to one that would be stored, and dates only once
// it is stored. A response that cannot be stored (no-store is the common
// miss) costs no date or list parsing.
func (c *cache) store(req sdk.Request, resp sdk.Response, st *httpcache.State, p httpcache.ResponsePolicy, method string, status, fwdStatus int) sdk.Action {
	h := resp.Header()
	if c.stripCookies && p.SetCookie {
		p.CC.PrivateFields = append(p.CC.PrivateFields, "Set-Cookie")
	}
	rqd := httpcache.Directives{NoStore: st.NoStore}
	why := httpcache.Storable(method, status, rqd, p, false, false)
	if why == httpcache.OKStore || why == httpcache.WhyNoFreshness {
		// Storable ranks Authorization and Vary: * before freshness.
		auth := !p.CC.Public && !p.CC.MustRevalidate && p.CC.SMaxAge == httpcache.Absent && authorized(req)
		var star bool
		names := ""
		if auth || why == httpcache.OKStore {
			names, star = httpcache.VaryNames(c.resp.Values("Vary"))
		}
		why = httpcache.Storable(method, status, rqd, p, auth, star)
		if why == httpcache.OKStore {
			return c.put(req, resp, st, p, names, status, fwdStatus)
		}
	}
	return c.report(h, httpcache.CacheStatus{Fwd: st.Fwd, FwdStatus: fwdStatus, Detail: why})
}

// put stores a storable response with its freshness (RFC 9111 §4.2) and
// metadata, then adds Cache-Status. names is its normalised Vary.
func (c *cache) put(req sdk.Request, resp sdk.Response, st *httpcache.State, p httpcache.ResponsePolicy, names string, status, fwdStatus int) sdk.Action {
	h := resp.Header()
	why := httpcache.OKStore
	p.ReadTimes(&c.resp)
	now := sdk.Now()
	lifetime, _ := httpcache.Freshness(p, status, now, c.heurPct, c.heurMax)
	ia := httpcache.InitialAge(p, time.UnixMilli(st.ReqTime), now)
	m := httpcache.Meta{
		InitialAge: ia.Milliseconds(), Lifetime: lifetime.Milliseconds(),
		NoCache: p.CC.NoCache, MustRevalidate: httpcache.RevalidateOnStale(p.CC),
		SWR: max(p.CC.SWR, 0), SIE: max(p.CC.SIE, 0),
		ETag: h.Get("ETag"), LastMod: h.Get("Last-Modified"), VaryNames: names,
	}
	fresh := max(lifetime-ia, 0)
	if m.NoCache {
		fresh = 0
	}
	keep := time.Duration(max(m.SWR, m.SIE)) * time.Second
	if m.ETag != "" || m.LastMod != "" {
		keep = max(keep, c.keepStale)
	}
	if fresh+keep <= 0 {
		why = httpcache.WhyNotUseful
	} else {
		key := httpcache.Key(req.Scheme(), req.Host(), req.Path(), req.RawQuery())
		if names != "" {
			m.Variant = httpcache.Variant(names, req.Header())
			switch {
			case st.Primary && st.PrimaryNames == names && st.PrimaryGen != "" && m.Variant != st.PrimaryVar:
				m.Gen = st.PrimaryGen
				key = httpcache.VariantKey(key, m.Gen, m.Variant)
			case st.Primary && st.PrimaryNames == names && st.PrimaryGen != "" && primaryGen(key) == st.PrimaryGen:
				// The primary again, still in place: its variants stay.
				m.Gen = st.PrimaryGen
			default:
				// A primary purged or invalidated while this response was
				// fetched must not come back with its generation: that
				// would make every variant filed under it reachable again.
				m.Gen = newGen()
			}
		}
		tagList := httpcache.Tags(c.resp.Values("Surrogate-Key"), c.resp.Values("Cache-Tag"), abi.MaxTags)
		// The host stores the response as it is at the call: without
		// the fields a qualified no-cache or private names, which the
		// client of this request still gets (after the others now).
		kept := withheld(h, p.Omitted())
		err := sdk.CacheStore([]byte(key), m.Encode(), fresh, min(keep, httpcache.MaxLifetime), tagList...)
		for _, f := range kept {
			for _, v := range f.vals {
				_ = h.Add(f.name, v)
			}
		}
		switch {
		case errors.Is(err, sdk.ErrTooLarge):
			// A body the host does not hold whole (the edge streams it).
			why = "too-large"
		case err != nil:
			why = "store-failed"
			sdk.Warn("cache: store failed", "error", err.Error())
		default:
			c.stores.Record(1)
		}
	}
	ttl := httpcache.TTLSeconds(lifetime, ia)
	return c.report(h, httpcache.CacheStatus{Fwd: st.Fwd, FwdStatus: fwdStatus, Stored: why == httpcache.OKStore, TTL: ttl, HasTTL: true, Detail: why})
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

// primaryGen is the generation of the primary entry stored under key
// now, "" when there is none.
func primaryGen(key string) string {
	_, b, ok := sdk.CacheLookup([]byte(key))
	if !ok {
		return ""
	}
	m, _ := httpcache.DecodeMeta(b)
	return m.Gen
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
	sdk.CachePurge([]byte(httpcache.Key(scheme, host, path, query)))
	for _, name := range [...]string{"Location", "Content-Location"} {
		if v := h.Get(name); v != "" {
			if k, ok := httpcache.SameOriginKey(scheme, host, path, query, v); ok {
				sdk.CachePurge([]byte(k))
			}
		}
	}
}

// headerLines is a message header as httpcache.Headers: its field lines as
// views of one buffer reused from call to call, where sdk.Header.Values
// makes a string of each. The buffer only grows during a call, so a view
// stays valid until reset (a moved array is not written again).
type headerLines struct {
	h     sdk.Header
	buf   []byte
	lines []string
}

func (f *headerLines) reset(h sdk.Header) { f.h, f.buf, f.lines = h, f.buf[:0], f.lines[:0] }

// Values implements httpcache.Headers.
func (f *headerLines) Values(name string) []string {
	start, from := len(f.lines), len(f.buf)
	f.buf, _ = f.h.AppendValues(f.buf, name)
	f.lines = httpcache.AppendLines(f.lines, f.buf[from:])
	return f.lines[start:len(f.lines):len(f.lines)]
}

// view is b as a string without a copy, for bytes nothing writes while
// the string is in use.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func init() { sdk.Register(&cache{}) }

func main() {}
