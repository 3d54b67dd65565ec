package host

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strconv"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// Call is the host side of one guest call: it implements [abi.Host] for the
// phase it was reset to. The runtime keeps one Call per instance and reuses
// it, so nothing here allocates on the request path.
type Call struct {
	env     *Env
	phase   abi.Phase
	ex      Exchange
	errMsg  []byte
	scratch []byte
	tokens  tokenScratch // token_verify's parse state
	creq    cacheRequest // cache_request's views of the request
	// The call's header writes so far, against maxHeaderWrites and
	// maxHeaderWriteBytes.
	hdrWrites, hdrBytes int
}

var _ abi.Host = (*Call)(nil)

// Reset prepares c for a call of phase on ex (nil in the configure phase).
func (c *Call) Reset(env *Env, phase abi.Phase, ex Exchange) {
	c.env, c.phase, c.ex = env, phase, ex
	c.errMsg = c.errMsg[:0]
	c.hdrWrites, c.hdrBytes = 0, 0
}

// Release drops the references c holds to the exchange, so a pooled instance
// does not keep a finished request alive.
func (c *Call) Release() { c.ex = nil }

// ErrorMessage is the message the guest set with error_set during this call.
func (c *Call) ErrorMessage() string { return string(c.errMsg) }

// Phase is the phase c was reset to.
func (c *Call) Phase() abi.Phase { return c.phase }

func (c *Call) inExchange() bool { return c.ex != nil }

// copyOut implements "buffer + limit, returns the full length".
func copyOut(buf, data []byte) int32 {
	copy(buf, data)
	return int32(len(data))
}

func validMsg(m abi.Msg) bool { return m == abi.MsgRequest || m == abi.MsgResponse }

// writable reports whether message m may change in this phase: the request
// until it leaves for the origin, the response always.
func (c *Call) writable(m abi.Msg) bool {
	return m == abi.MsgResponse || c.phase == abi.PhaseRequest
}

// ConfigRead implements abi.Host.
func (c *Call) ConfigRead(buf []byte) int32 { return copyOut(buf, c.env.Config) }

// ErrorSet implements abi.Host.
func (c *Call) ErrorSet(msg []byte) int32 {
	if len(msg) > abi.MaxErrorLen {
		msg = msg[:abi.MaxErrorLen]
	}
	c.errMsg = append(c.errMsg[:0], msg...)
	return 0
}

// FieldGet implements abi.Host.
func (c *Call) FieldGet(field int32, buf []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if !abi.ValidField(field) {
		return abi.ErrInvalid
	}
	return copyOut(buf, c.ex.Field(field))
}

// FieldSet implements abi.Host.
func (c *Call) FieldSet(field int32, value []byte) int32 {
	if !abi.ValidField(field) || !abi.FieldWritable(field) {
		return abi.ErrInvalid
	}
	if c.phase != abi.PhaseRequest {
		return abi.ErrPhase
	}
	if len(value) > maxFieldLen {
		return abi.ErrTooLarge
	}
	if !validField(field, value) {
		return abi.ErrInvalid
	}
	c.ex.SetField(field, value)
	return 0
}

// StatusGet implements abi.Host.
func (c *Call) StatusGet() int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	return int32(c.ex.Status())
}

// StatusSet implements abi.Host.
func (c *Call) StatusSet(code int32) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if code < 200 || code > 599 {
		return abi.ErrInvalid
	}
	c.ex.SetStatus(int(code))
	return 0
}

// HeaderGet implements abi.Host.
func (c *Call) HeaderGet(msg int32, name []byte, buf []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if !validMsg(msg) {
		return abi.ErrInvalid
	}
	v, ok := c.ex.HeaderGet(msg, name)
	if !ok {
		return abi.ErrNotFound
	}
	return copyOut(buf, v)
}

// HeaderValues implements abi.Host.
func (c *Call) HeaderValues(msg int32, name []byte, buf []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if !validMsg(msg) {
		return abi.ErrInvalid
	}
	c.scratch = c.ex.AppendHeaderValues(c.scratch[:0], msg, name)
	return copyOut(buf, c.scratch)
}

// HeaderNames implements abi.Host.
func (c *Call) HeaderNames(msg int32, buf []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if !validMsg(msg) {
		return abi.ErrInvalid
	}
	c.scratch = c.ex.AppendHeaderNames(c.scratch[:0], msg)
	return copyOut(buf, c.scratch)
}

// checkHeaderWrite validates a header mutation, a removal when remove is
// set. Removal is a flag, not a nil value: the engine hands an empty value
// over as nil, and an empty value is a write all the same, its name's bytes
// and its field counting against the call's budget like any other.
func (c *Call) checkHeaderWrite(msg int32, name, value []byte, remove bool) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if !validMsg(msg) || !abi.ValidHeaderName(name) || isReservedHeader(name) {
		return abi.ErrInvalid
	}
	if len(value) > maxHeaderValueLen {
		return abi.ErrTooLarge
	}
	if !abi.ValidHeaderValue(value) {
		return abi.ErrInvalid
	}
	if !c.writable(msg) {
		return abi.ErrPhase
	}
	if !remove {
		if c.hdrWrites++; c.hdrWrites > maxHeaderWrites {
			return abi.ErrTooLarge
		}
		if c.hdrBytes += len(name) + len(value); c.hdrBytes > maxHeaderWriteBytes {
			return abi.ErrTooLarge
		}
	}
	return 0
}

// HeaderSet implements abi.Host.
func (c *Call) HeaderSet(msg int32, name []byte, value []byte) int32 {
	if e := c.checkHeaderWrite(msg, name, value, false); e != 0 {
		return e
	}
	c.ex.HeaderSet(msg, name, value)
	return 0
}

// HeaderAdd implements abi.Host.
func (c *Call) HeaderAdd(msg int32, name []byte, value []byte) int32 {
	if e := c.checkHeaderWrite(msg, name, value, false); e != 0 {
		return e
	}
	c.ex.HeaderAdd(msg, name, value)
	return 0
}

// HeaderRemove implements abi.Host.
func (c *Call) HeaderRemove(msg int32, name []byte) int32 {
	if e := c.checkHeaderWrite(msg, name, nil, true); e != 0 {
		return e
	}
	c.ex.HeaderDel(msg, name)
	return 0
}

// BodyRead implements abi.Host.
func (c *Call) BodyRead(msg int32, offset int32, buf []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if !validMsg(msg) || offset < 0 {
		return abi.ErrInvalid
	}
	body := c.ex.Body(msg)
	n := int32(len(body))
	if size, ok := c.ex.StreamedLength(msg); ok {
		// The host holds only a prefix of the body (abi.StreamedPrefix
		// of a request, none of a response): a read past it is refused
		// rather than given as the end of the body, and the length is
		// the whole body's, so a plugin never takes a part for it.
		if int64(offset)+int64(len(buf)) > int64(len(body)) {
			return abi.ErrTooLarge
		}
		n = abi.BodyLengthUnknown
		if size >= 0 && size < abi.BodyLengthUnknown {
			n = int32(size)
		}
	}
	if int(offset) < len(body) {
		copy(buf, body[offset:])
	}
	return n
}

// BodySet implements abi.Host.
func (c *Call) BodySet(msg int32, body []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if !validMsg(msg) {
		return abi.ErrInvalid
	}
	if len(body) > c.env.maxBody() {
		return abi.ErrTooLarge
	}
	if !c.writable(msg) {
		return abi.ErrPhase
	}
	if _, ok := c.ex.StreamedLength(msg); ok {
		// Replacing a body the plugin has not seen whole would drop or
		// cut the rest of it.
		return abi.ErrTooLarge
	}
	c.ex.SetBody(msg, body)
	return 0
}

// ValueGet implements abi.Host.
func (c *Call) ValueGet(key []byte, buf []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	v, ok := c.ex.Values().Get(key)
	if !ok {
		return abi.ErrNotFound
	}
	return copyOut(buf, v)
}

// ValueSet implements abi.Host.
func (c *Call) ValueSet(key []byte, value []byte, flags int32) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if flags&^abi.ValueForward != 0 {
		return abi.ErrInvalid
	}
	// Forwarded values reach the origin: keep them to what a header could
	// carry, whatever the transport does with them.
	if flags&abi.ValueForward != 0 && (!abi.ValidToken(key) || !abi.ValidHeaderValue(value)) {
		return abi.ErrInvalid
	}
	return c.ex.Values().Set(key, value, flags)
}

// cached returns the entry under key, or the Errno of why not.
func (c *Call) cached(key []byte) (*CacheEntry, int32) {
	if !c.inExchange() {
		return nil, abi.ErrPhase
	}
	if c.env.Cache == nil {
		return nil, abi.ErrUnavailable
	}
	e, ok := c.env.Cache.Get(key)
	if !ok {
		return nil, abi.ErrNotFound
	}
	return e, 0
}

// CacheLookup implements abi.Host.
func (c *Call) CacheLookup(key []byte, buf []byte) int32 {
	e, errno := c.cached(key)
	if e == nil {
		return errno
	}
	n := abi.CacheInfoSize + len(e.Meta)
	if len(buf) >= abi.CacheInfoSize {
		age := c.env.now().Sub(e.Stored)
		abi.CacheInfo{AgeMs: age.Milliseconds(), TTLMs: (e.TTL - age).Milliseconds()}.Put(buf)
		copy(buf[abi.CacheInfoSize:], e.Meta)
	}
	return int32(n)
}

// CacheStore implements abi.Host.
func (c *Call) CacheStore(key []byte, meta []byte, ttlMs int64, staleMs int64, tags []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if c.env.Cache == nil {
		return abi.ErrUnavailable
	}
	if ttlMs < 0 || staleMs < 0 || ttlMs > maxCacheMs || staleMs > maxCacheMs || len(key) == 0 {
		return abi.ErrInvalid
	}
	if len(key) > abi.MaxCacheKeyLen || len(meta) > abi.MaxCacheMetaLen {
		return abi.ErrTooLarge
	}
	if st := c.ex.Status(); st < 200 || st > 599 {
		return abi.ErrInvalid // a response without a status is no response to serve
	}
	var tagList []string
	for rest := tags; ; {
		item, r, ok := abi.NextItem(rest)
		if !ok {
			break
		}
		if len(tagList) == abi.MaxTags {
			return abi.ErrTooLarge
		}
		if len(item) == 0 {
			return abi.ErrInvalid
		}
		tagList = append(tagList, string(item))
		rest = r
	}
	e := &CacheEntry{
		Response: c.ex.StoreResponse(),
		Meta:     append([]byte(nil), meta...),
		Tags:     tagList,
		Stored:   c.env.now(),
		TTL:      time.Duration(ttlMs) * time.Millisecond,
		Stale:    time.Duration(staleMs) * time.Millisecond,
	}
	if _, ok := c.ex.StreamedLength(abi.MsgResponse); ok {
		if s, ok := c.ex.(BodyStreamer); !ok || !s.StoreAfter(c.env.Cache, key, e) {
			return abi.ErrTooLarge
		}
		return 0
	}
	c.env.Cache.Set(key, e)
	return 0
}

// BodyStreamer is an Exchange whose response body streams past the host
// rather than lie in the response (the edge's, for a large body): the
// cache stores such a response once its body has gone by whole. Without
// it a streamed response is not stored.
type BodyStreamer interface {
	// StoreAfter takes e, whose Response has no body yet, to set under
	// key in cache once the body has streamed whole and fitted the
	// exchange's bound; false if it cannot (a length known to be past it).
	StoreAfter(cache Cache, key []byte, e *CacheEntry) bool
}

// CacheServe implements abi.Host. A key the store no longer has serves
// the entry the exchange holds under it (EntryHolder). cache_lookup does
// not see that entry: what a plugin decides from the store (a Vary
// generation, a stale-if-error) must see the purge.
func (c *Call) CacheServe(key []byte) int32 {
	e, errno := c.cached(key)
	if errno == abi.ErrNotFound {
		if h, ok := c.ex.(EntryHolder); ok {
			if held, ok := h.HeldEntry(key); ok {
				e, errno = held, 0
			}
		}
	}
	if e == nil {
		return errno
	}
	c.ex.LoadResponse(e.Response)
	return int32(e.Response.Status)
}

// CachePurge implements abi.Host.
func (c *Call) CachePurge(kind int32, match []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if c.env.Cache == nil {
		return abi.ErrUnavailable
	}
	// The purge keeps every fetch in progress from storing its answer,
	// the exchange's own excepted: a plugin may store what its exchange
	// fetched after purging (OwnPurger).
	var none uint64
	at := &none
	if f, ok := c.ex.(FetchPositioner); ok {
		at = f.FetchPosition()
	}
	op, own := c.env.Cache.(OwnPurger)
	var n int
	switch {
	case kind == abi.PurgeKey && own:
		n, *at = op.PurgeOwn(match, *at)
	case kind == abi.PurgeKey:
		n = c.env.Cache.Purge(match)
	case kind == abi.PurgeTag && own:
		n, *at = op.PurgeTagOwn(match, *at)
	case kind == abi.PurgeTag:
		n = c.env.Cache.PurgeTag(match)
	default:
		return abi.ErrInvalid
	}
	return int32(n)
}

// FetchPositioner is an Exchange that carries the purge position its
// response's fetch began at (MemExchange.Fetched, which StoreResponse
// hands the cache), for cache_purge to move past the exchange's own
// purges.
type FetchPositioner interface{ FetchPosition() *uint64 }

// CacheRevalidate implements abi.Host.
func (c *Call) CacheRevalidate(key []byte) int32 { return c.cacheRevalidate(key, nil) }

// cacheRevalidate is CacheRevalidate; stale, when not nil, is the entry
// the caller found stale under key. A revalidation of key that ended
// between that lookup and this one's admission stored what this one would
// fetch: the entry stored under key is then another, and none starts (the
// origin was asked twice for one stale entry).
func (c *Call) cacheRevalidate(key []byte, stale *CacheEntry) int32 {
	if c.phase != abi.PhaseRequest {
		return abi.ErrPhase
	}
	rv, ok := c.env.Cache.(Revalidator)
	if !ok {
		return abi.ErrUnavailable // no cache, or one that cannot admit them
	}
	if f, ok := c.ex.(Foreground); ok && f.Foreground() {
		return abi.ErrUnavailable
	}
	if len(key) == 0 {
		return abi.ErrInvalid
	}
	if len(key) > abi.MaxCacheKeyLen {
		return abi.ErrTooLarge
	}
	release, ok := rv.BeginRevalidation(key)
	if !ok {
		return 0
	}
	if stale != nil {
		if e, _ := c.env.Cache.Get(key); e != stale {
			release()
			return 0
		}
	}
	if !c.ex.Revalidate(key, release) {
		release()
		return 0
	}
	return 1
}

// RangeApply implements abi.Host.
func (c *Call) RangeApply(value []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if len(value) > maxHeaderValueLen {
		return abi.ErrTooLarge
	}
	status := c.ex.Status()
	size := int64(len(c.ex.Body(abi.MsgResponse)))
	if status != 200 || size == 0 {
		// Only a whole representation has ranges; an empty one has no
		// range a Content-Range can name (RFC 9110 §14.1.1).
		return int32(status)
	}
	kind, first, last := parseRange(value, size)
	switch kind {
	case rangeSatisfiable:
		c.scratch = append(c.scratch[:0], "bytes "...)
		c.scratch = strconv.AppendInt(c.scratch, first, 10)
		c.scratch = append(c.scratch, '-')
		c.scratch = strconv.AppendInt(c.scratch, last, 10)
		status = 206
		c.ex.SliceResponseBody(int(first), int(last)+1)
	case rangeUnsatisfiable:
		c.scratch = append(c.scratch[:0], "bytes *"...)
		status = 416
		c.ex.SliceResponseBody(0, 0)
	default:
		return int32(status)
	}
	c.scratch = append(c.scratch, '/')
	c.scratch = strconv.AppendInt(c.scratch, size, 10)
	c.ex.HeaderSet(abi.MsgResponse, contentRange, c.scratch)
	c.ex.SetStatus(status)
	return int32(status)
}

var contentRange = []byte("Content-Range")

// RatelimitTake implements abi.Host.
func (c *Call) RatelimitTake(key []byte, limit int32, periodMs int64, burst int32, cost int32, result []byte) int32 {
	if !c.inExchange() {
		return abi.ErrPhase
	}
	if c.env.Limiter == nil {
		return abi.ErrUnavailable
	}
	if limit <= 0 || periodMs <= 0 || periodMs > maxCacheMs || burst <= 0 || cost < 0 || len(result) < abi.RateResultSize {
		return abi.ErrInvalid
	}
	if len(key) > abi.MaxRateKeyLen {
		return abi.ErrTooLarge
	}
	ok, r := c.env.Limiter.Take(key, limit, time.Duration(periodMs)*time.Millisecond, burst, cost)
	r.Put(result)
	if ok {
		return 1
	}
	return 0
}

// KeyRegister implements abi.Host.
func (c *Call) KeyRegister(alg int32, format int32, key []byte) int32 {
	if c.phase != abi.PhaseConfigure {
		return abi.ErrPhase
	}
	return c.env.Keys.Register(alg, format, key)
}

// Verify implements abi.Host.
func (c *Call) Verify(key int32, msg []byte, sig []byte) int32 {
	var r int32
	r, c.scratch = c.env.Keys.Verify(key, msg, sig, c.scratch)
	return r
}

// Digest implements abi.Host.
func (c *Call) Digest(alg int32, msg []byte, buf []byte) int32 {
	var r int32
	r, c.scratch = digest(alg, msg, buf, c.scratch)
	return r
}

// TimeNow implements abi.Host.
func (c *Call) TimeNow() int64 { return c.env.now().UnixNano() }

// RandomFill implements abi.Host.
func (c *Call) RandomFill(buf []byte) int32 {
	_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go 1.24+)
	return 0
}

// Log implements abi.Host.
func (c *Call) Log(level int32, msg []byte, attrs []byte) int32 {
	if len(msg)+len(attrs) > abi.MaxLogLen {
		return abi.ErrTooLarge
	}
	// Count the items before asking the logger, so that an odd list is
	// refused whatever level the host logs at.
	n := 0
	for rest := attrs; ; n++ {
		_, r, ok := abi.NextItem(rest)
		if !ok {
			break
		}
		rest = r
	}
	if n%2 != 0 {
		return abi.ErrInvalid
	}
	lg := c.env.logger()
	if !lg.Enabled(context.Background(), slog.Level(level)) {
		return 0
	}
	ok, dropped := c.env.logs.allow(len(msg) + len(attrs))
	if !ok {
		return 0 // not the plugin's failure: the line is lost, and counted
	}
	if dropped > 0 {
		lg.Warn("plugin log lines dropped: over the log budget", "dropped", dropped, "bytes_per_second", logBytesPerSecond)
	}
	var as []slog.Attr
	for rest := attrs; ; {
		k, r, ok := abi.NextItem(rest)
		if !ok {
			break
		}
		v, r2, _ := abi.NextItem(r)
		as = append(as, slog.String(string(k), string(v)))
		rest = r2
	}
	if c.phase != abi.PhaseConfigure && c.ex != nil {
		if id := c.ex.Field(abi.FieldRequestID); len(id) > 0 {
			as = append(as, slog.String("request_id", string(id)))
		}
	}
	lg.LogAttrs(context.Background(), slog.Level(level), string(msg), as...)
	return 0
}

// MetricDefine implements abi.Host.
func (c *Call) MetricDefine(kind int32, name []byte) int32 {
	if c.phase != abi.PhaseConfigure {
		return abi.ErrPhase
	}
	return c.env.Metrics.Define(kind, name)
}

// MetricRecord implements abi.Host.
func (c *Call) MetricRecord(metric int32, value float64) int32 {
	return c.env.Metrics.Record(metric, value)
}
