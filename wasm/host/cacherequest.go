package host

import (
	"strconv"
	"time"
	"unsafe"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// cache_request: the request phase of the cache plugin (plugins/cache),
// run natively with the policy the plugin's response phase uses
// (package httpcache). The plugin still decides whether a request is
// looked up at all (method, config) and under which name the cache reports;
// this file does the byte-level work a Go guest is 12-15x slower at: key
// building, metadata decoding, directive parsing, freshness arithmetic,
// header rendering. Every step mirrors what the plugin did itself before,
// so an entry stored by the plugin is found and judged the same way.

// cacheRequest is the scratch cache_request builds in, kept per Call so a
// hit allocates nothing. buf and lines only grow during a call: a string
// handed out stays valid until the next call even when a later append
// moves the array (the old one is not written again).
type cacheRequest struct {
	buf       []byte   // request values, copied out of the exchange
	lines     []string // views into buf, one per field line
	out       []byte   // what is written to the exchange
	key, vkey []byte
	// variant is built apart from buf: AppendVariant reads the request's
	// values through Values, which appends them to buf.
	variant []byte
}

// requestHeaders is the request header as httpcache.Headers: field lines
// as views of the Call's scratch.
type requestHeaders Call

// Values implements httpcache.Headers.
func (h *requestHeaders) Values(name string) []string {
	return (*Call)(h).headerLines(abi.MsgRequest, name)
}

// responseHeaders is requestHeaders for the response.
type responseHeaders Call

// Values implements httpcache.Headers.
func (h *responseHeaders) Values(name string) []string {
	return (*Call)(h).headerLines(abi.MsgResponse, name)
}

// headerLines returns the field lines of name in message m as views of
// the Call's scratch.
func (c *Call) headerLines(m abi.Msg, name string) []string {
	r := &c.creq
	start, from := len(r.lines), len(r.buf)
	r.buf = c.ex.AppendHeaderValues(r.buf, m, view(name))
	r.lines = httpcache.AppendLines(r.lines, r.buf[from:])
	return r.lines[start:len(r.lines):len(r.lines)]
}

// get is the first value of name, copied into the scratch.
func (h *requestHeaders) get(name string) (string, bool) {
	v, ok := h.ex.HeaderGet(abi.MsgRequest, view(name))
	if !ok {
		return "", false
	}
	return h.keep(v), true
}

// keep copies b into the scratch: the exchange's views last until its next call only.
func (h *requestHeaders) keep(b []byte) string {
	r := &h.creq
	from := len(r.buf)
	r.buf = append(r.buf, b...)
	return bytesView(r.buf[from:])
}

func bytesView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// The request header fields a background revalidation must not carry: the
// copy is a plain revalidation of the whole stored response, whatever this
// client asked (its answer is served from the entry).
var clientConditionals = [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range", "If-Range"}

// Upgrading is implemented by an Exchange whose request may be a protocol
// upgrade, such as the WebSocket handshakes the edge tunnels. Plugins see
// such a request as a plain GET (Upgrade and Connection are hop-by-hop), so
// the host keeps the cache out of it: no stored response answers a
// handshake, and its answer is not stored.
type Upgrading interface{ Upgrading() bool }

// CacheForwarding is implemented by an Exchange that wants to know which
// plugin looked a request up in the cache and forwarded it: the edge's
// regional cache tier (edge/tier.go) asks the POP that owns the key in
// that plugin's place. CacheRequest calls CacheForwarded each time it
// saves a forwarding state (the state, in the values under
// httpcache.StateKey, says whether it may be stored).
type CacheForwarding interface{ CacheForwarded() }

// Foreground is implemented by an Exchange whose answer must not be a
// stale entry served while it is revalidated in the background: the
// edge's regional cache tier, for an ask in which the asking cache
// validates its own stale entry (edge/tier_http.go), which a stale copy
// could not freshen. cache_revalidate answers ErrUnavailable when
// Foreground is true, so that cache_request validates in the foreground.
type Foreground interface{ Foreground() bool }

// EntryHolder is implemented by an Exchange that keeps the entry
// cache_request forwarded a validation of (MemExchange does, and so the
// edge's): cache_serve of its key serves it for the rest of the exchange
// when the store no longer has it, so that the response phase freshens it
// with the origin's 304; a purge, an eviction or the end of its keep
// window while the origin answered left an unconditional request with the
// origin's bare 304 to validators the client never sent. Storing it again
// is still up to the store: a purge since the fetch began keeps it out
// (MemCache.Set).
type EntryHolder interface {
	HoldEntry(key []byte, e *CacheEntry)
	HeldEntry(key []byte) (*CacheEntry, bool)
}

// CacheRequest implements abi.Host.
func (c *Call) CacheRequest(name []byte) int32 {
	if c.phase != abi.PhaseRequest {
		return abi.ErrPhase
	}
	if len(name) == 0 || len(name) > abi.MaxValueKeyLen || !abi.ValidToken(name) {
		return abi.ErrInvalid
	}
	method := c.ex.Field(abi.FieldMethod)
	get := string(method) == "GET"
	if !get && string(method) != "HEAD" {
		return abi.ErrInvalid // the plugin looks up GET and HEAD only
	}
	r := &c.creq
	r.buf, r.lines = r.buf[:0], r.lines[:0]
	h := (*requestHeaders)(c)

	st := httpcache.State{Mode: httpcache.ModeForward}
	if u, ok := c.ex.(Upgrading); ok && u.Upgrading() {
		st.NoStore, st.Fwd = true, "bypass"
		return c.cacheForward(&st, httpcache.Directives{}, name)
	}
	ccLines := h.Values("Cache-Control")
	rq := httpcache.ParseCacheControl(ccLines, false)
	if len(ccLines) == 0 && httpcache.PragmaNoCache(h.Values("Pragma")) {
		rq.NoCache = true // RFC 9111 §5.4: Pragma counts only without Cache-Control
	}
	st.NoStore, st.ReqSIE = rq.NoStore, max(rq.SIE, 0)
	inm := h.Values("If-None-Match") // empty exactly when absent
	ims, hasIMS := h.get("If-Modified-Since")
	st.ClientCond = len(inm) > 0 || hasIMS

	scheme := h.keep(c.ex.Field(abi.FieldScheme))
	host := h.keep(c.ex.Field(abi.FieldHost))
	path := h.keep(c.ex.Field(abi.FieldPath))
	query := h.keep(c.ex.Field(abi.FieldRawQuery))
	r.key = httpcache.AppendKey(r.key[:0], scheme, host, path, query)
	e, m, ok := c.cacheEntry(r.key)
	if !ok {
		st.Fwd = "uri-miss"
		return c.cacheForward(&st, rq, name)
	}
	st.Primary, st.PrimaryNames, st.PrimaryVar, st.PrimaryGen = true, m.VaryNames, m.Variant, m.Gen
	entry := r.key
	if m.VaryNames != "" {
		r.variant = httpcache.AppendVariant(r.variant[:0], m.VaryNames, h)
		if v := bytesView(r.variant); v != m.Variant {
			r.vkey = httpcache.AppendVariantKey(r.vkey[:0], bytesView(r.key), m.Gen, v)
			entry = r.vkey
			ve, vm, ok := c.cacheEntry(entry)
			// The metadata, not the key, proves the match: keys of long
			// variants are digests.
			if !ok || vm.Variant != v || vm.VaryNames != m.VaryNames || vm.Gen != m.Gen {
				st.Fwd = "vary-miss"
				return c.cacheForward(&st, rq, name)
			}
			e, m = ve, vm
		}
	}
	age := time.Duration(m.InitialAge+c.env.now().Sub(e.Stored).Milliseconds()) * time.Millisecond
	d := httpcache.Reuse(&m, age, rq)
	if d == httpcache.UseFresh || d == httpcache.UseStale || d == httpcache.UseStaleSWR {
		var rg, ifRange string
		var hasRange, hasIfRange bool
		if get { // RFC 9110 §14.2: Range is for GET only
			if rg, hasRange = h.get("Range"); hasRange {
				ifRange, hasIfRange = h.get("If-Range")
			}
		}
		detail, flags := "", int32(0)
		switch {
		case d == httpcache.UseStale:
			detail = "max-stale"
		case d == httpcache.UseStaleSWR && get:
			detail = "stale-while-revalidate"
			var bg bool
			if flags, bg = c.cacheBackground(&st, entry, e, &m); !bg {
				d = httpcache.Validate // the host cannot: this request revalidates
			}
		case d == httpcache.UseStaleSWR:
			// HEAD is served stale without a revalidation: the stored
			// response is a GET's, and the next GET asks for one.
			detail = "stale-while-revalidate"
		}
		if d != httpcache.Validate {
			return flags | c.cacheServe(e, &m, &st, age, name, detail, inm, ims, rg, hasRange, ifRange, hasIfRange)
		}
	}
	switch d {
	case httpcache.Validate:
		st.Fwd = "stale"
	case httpcache.ValidateByReq:
		st.Fwd = "request"
	}
	if rq.OnlyIfCached {
		return c.cacheForward(&st, rq, name)
	}
	st.EntryKey = bytesView(entry)
	if h, ok := c.ex.(EntryHolder); ok {
		h.HoldEntry(entry, e)
	}
	if !st.ClientCond {
		// §4.3.1: validate with the stored validators. A client's own
		// conditionals are left alone: its 304 is then passed through.
		c.setValidators(&m)
	}
	return c.cacheForward(&st, rq, name)
}

// CacheResponse implements abi.Host: the response phase of the cache
// plugin for a response that will not be stored, the common miss
// (no-store, private, an uncacheable status), settled natively with
// httpcache.Settle; anything else is left untouched for the plugin.
func (c *Call) CacheResponse(name []byte, options int32) int32 {
	if c.phase != abi.PhaseResponse {
		return abi.ErrPhase
	}
	if len(name) == 0 || len(name) > abi.MaxValueKeyLen || !abi.ValidToken(name) || options&^httpcache.ResponseOptions != 0 {
		return abi.ErrInvalid
	}
	v, ok := c.ex.Values().Get(view(httpcache.StateKey))
	if !ok {
		// A hit, or another plugin answered before the cache ran.
		c.stripTargeted(options)
		return httpcache.Settled
	}
	r := &c.creq
	r.buf, r.lines = append(r.buf[:0], v...), r.lines[:0]
	st, ok := httpcache.DecodeState(bytesView(r.buf)) // views of r.buf, which only grows from here
	if !ok || st.Mode == httpcache.ModeHit || st.Mode == httpcache.ModeAnswer {
		c.stripTargeted(options)
		return httpcache.Settled
	}
	method := (*requestHeaders)(c).keep(c.ex.Field(abi.FieldMethod))
	status := int(c.ex.Status())
	p := httpcache.ReadPolicy((*responseHeaders)(c))
	detail, settled := httpcache.Settle(&st, method, status, p, options&httpcache.StripSetCookie != 0)
	if !settled {
		return 0
	}
	c.stripTargeted(options)
	r.out = httpcache.CacheStatus{Name: bytesView(name), Fwd: st.Fwd, FwdStatus: status, Detail: detail}.Append(r.out[:0])
	c.ex.HeaderAdd(abi.MsgResponse, cacheStatusName, r.out)
	return httpcache.Settled
}

// stripTargeted consumes the targeted field named for this cache, as the
// plugin does; RFC 9213 §3 lets CDN-Cache-Control go on downstream unless
// configured otherwise. A hit strips them too: an entry the regional cache
// tier stored at the POP owning its key keeps them (edge/tier_http.go: a
// tier ask's exchange ignores the deletes, so that the asking cache judges
// the answer by them), and no client sees them.
func (c *Call) stripTargeted(options int32) {
	c.ex.HeaderDel(abi.MsgResponse, wedgeCCName)
	if options&httpcache.StripCDN != 0 {
		c.ex.HeaderDel(abi.MsgResponse, cdnCCName)
	}
}

// cacheEntry looks key up and decodes the plugin's metadata; an entry
// another version wrote is a miss.
func (c *Call) cacheEntry(key []byte) (*CacheEntry, httpcache.Meta, bool) {
	if c.env.Cache == nil {
		return nil, httpcache.Meta{}, false
	}
	e, ok := c.env.Cache.Get(key)
	if !ok {
		return nil, httpcache.Meta{}, false
	}
	m, ok := httpcache.DecodeMeta(e.Meta) // e.Meta is immutable: m may share it
	return e, m, ok
}

// cacheForward sends the request on, or answers only-if-cached without a
// usable entry with a 504 (RFC 9111 §5.2.1.7).
func (c *Call) cacheForward(st *httpcache.State, rq httpcache.Directives, name []byte) int32 {
	if !rq.OnlyIfCached {
		if e := c.saveCacheState(st); e != 0 {
			return e
		}
		if f, ok := c.ex.(CacheForwarding); ok {
			f.CacheForwarded()
		}
		return httpcache.Forward
	}
	st.Mode = httpcache.ModeAnswer
	if e := c.saveCacheState(st); e != 0 {
		return e
	}
	r := &c.creq
	r.out = httpcache.CacheStatus{Name: bytesView(name), Detail: "only-if-cached"}.Append(r.out[:0])
	c.ex.HeaderAdd(abi.MsgResponse, cacheStatusName, r.out)
	c.ex.HeaderSet(abi.MsgResponse, contentTypeName, textPlain)
	c.ex.SetStatus(504)
	c.ex.SetBody(abi.MsgResponse, gatewayTimeoutBody)
	return httpcache.Answered
}

var (
	cacheStatusName    = []byte("Cache-Status")
	contentTypeName    = []byte("Content-Type")
	textPlain          = []byte("text/plain; charset=utf-8")
	gatewayTimeoutBody = []byte("Gateway Timeout: not in cache\n")
	ageName            = []byte("Age")
	inmName            = []byte("If-None-Match")
	imsName            = []byte("If-Modified-Since")
	wedgeCCName        = []byte(httpcache.TargetList[0])
	cdnCCName          = []byte(httpcache.TargetList[1])
)

// saveCacheState stores st for the response phase. request_time (RFC 9111
// §4.2.3) is taken here, as the request leaves for the origin.
func (c *Call) saveCacheState(st *httpcache.State) int32 {
	st.ReqTime = c.env.now().UnixMilli()
	r := &c.creq
	r.out = st.AppendTo(r.out[:0])
	return c.ex.Values().Set(view(httpcache.StateKey), r.out, 0)
}

// setValidators makes the request conditional on the stored validators.
func (c *Call) setValidators(m *httpcache.Meta) {
	if m.ETag != "" {
		c.ex.HeaderSet(abi.MsgRequest, inmName, view(m.ETag))
	}
	if m.LastMod != "" {
		c.ex.HeaderSet(abi.MsgRequest, imsName, view(m.LastMod))
	}
}

// cacheBackground schedules the revalidation of a stale-while-revalidate
// hit (RFC 5861 §3) with a copy of the request made a plain revalidation
// and the forwarding state saved for it; then it marks the request's own
// state as a hit, so its response phase passes the stale answer through.
// ok is false when the host cannot revalidate in the background: st and
// the request are then set up to revalidate in the foreground. e is the
// stale entry found under entry.
func (c *Call) cacheBackground(st *httpcache.State, entry []byte, e *CacheEntry, m *httpcache.Meta) (flags int32, ok bool) {
	for _, n := range clientConditionals {
		c.ex.HeaderDel(abi.MsgRequest, view(n))
	}
	c.setValidators(m)
	bg := *st // the copy's state: the client's answer is served with st
	bg.Fwd, bg.EntryKey, bg.ClientCond = "stale", bytesView(entry), false
	if c.saveCacheState(&bg) != 0 {
		*st = bg
		return 0, false
	}
	switch c.cacheRevalidate(entry, e) {
	case abi.ErrUnavailable:
		*st = bg
		return 0, false
	case 1:
		flags = httpcache.Revalidating
	}
	// Scheduled or skipped (a revalidation is under way already): either
	// way this request is a hit.
	c.ex.Values().Set(view(httpcache.StateKey), view(httpcache.HitState), 0)
	return flags, true
}

// cacheServe answers from entry e: Age is the current age (RFC 9111
// §4.2.3, §5.1); a client's matching conditional gets a 304 (§4.3.2), a
// Range on a stored 200 a 206 or 416 (RFC 9110 §14.2), after the
// conditionals (§13.2.2). A hit saves no state: the response phase passes
// a response without one through.
func (c *Call) cacheServe(e *CacheEntry, m *httpcache.Meta, st *httpcache.State, age time.Duration, name []byte, detail string,
	inm []string, ims, rg string, hasRange bool, ifRange string, hasIfRange bool) int32 {
	c.ex.LoadResponse(e.Response)
	r := &c.creq
	r.out = strconv.AppendInt(r.out[:0], int64(age/time.Second), 10)
	c.ex.HeaderSet(abi.MsgResponse, ageName, r.out)
	ttl := httpcache.TTLSeconds(time.Duration(m.Lifetime)*time.Millisecond, age)
	r.out = httpcache.CacheStatus{Name: bytesView(name), Hit: true, TTL: ttl, HasTTL: true, Detail: detail}.Append(r.out[:0])
	c.ex.HeaderAdd(abi.MsgResponse, cacheStatusName, r.out)
	const flags = httpcache.Answered | httpcache.Hit
	// Preconditions apply only to what would be a 2xx (RFC 9110 §13.2.1),
	// and a 304 stands for a 200 (§15.4.5): a stored 404 or 301 is sent
	// as it is, whatever validators the client holds.
	if st.ClientCond && e.Response.Status/100 == 2 && httpcache.NotModified(inm, ims, m.ETag, m.LastMod) {
		// The 304 keeps only the fields RFC 9110 §15.4.5 lists; the host
		// recomputes framing for the empty body.
		from := len(r.buf)
		r.buf = c.ex.AppendHeaderNames(r.buf, abi.MsgResponse)
		for rest := r.buf[from:]; ; {
			n, next, ok := abi.NextItem(rest)
			if !ok {
				break
			}
			if !httpcache.KeepOn304(bytesView(n)) && !isReservedHeader(n) {
				c.ex.HeaderDel(abi.MsgResponse, n)
			}
			rest = next
		}
		c.ex.SetStatus(304)
		c.ex.SetBody(abi.MsgResponse, nil)
		return flags
	}
	if hasRange && e.Response.Status == 200 && httpcache.RangeAllowed(ifRange, hasIfRange, m.ETag) {
		if s := c.RangeApply(view(rg)); s < 0 {
			return s
		}
	}
	return flags
}
