// HTTP caching semantics across a hop of the regional cache tier: the
// targeted cache fields travel to the asker, a revalidation the asking
// cache makes is absorbed by the owner, and an object too large for an
// envelope is remembered so that its misses go straight to the origin.

package edge

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// HeaderDel keeps the targeted cache fields (RFC 9213: Wedge-Cache-Control,
// CDN-Cache-Control) on the response of a tier ask, where the cache step
// would consume them: the answer stays inside the CDN, and the asker's
// cache must judge it by them as the owner's did. The asker's cache
// consumes them before its client sees the response.
func (x *exchange) HeaderDel(m abi.Msg, name []byte) {
	if x.hop != "" && m == abi.MsgResponse && targetedField(b2s(name)) {
		return
	}
	x.MemExchange.HeaderDel(m, name)
}

// targetedField reports whether name is one of this cache's targeted
// cache fields.
func targetedField(name string) bool {
	for _, t := range httpcache.TargetList {
		if strings.EqualFold(name, t) {
			return true
		}
	}
	return false
}

// tierCondValue, on an ask, says that the request's validators are the
// asking cache's own, set from its stale entry (not its client's): the
// owner answers from its own entry and says 304 when they still match.
const tierCondValue = "wedge-tier-cond"

// ownValidators reports whether the request's conditionals are the ones
// the cache step set from its stale entry: it forwarded to validate
// one (the state names the entry) and the client sent none of its own.
func ownValidators(st *httpcache.State) bool { return st.EntryKey != "" && !st.ClientCond }

// Foreground implements host.Foreground: on an ask that validates the
// asker's stale entry, a stale entry of the owner's is validated before it
// answers (cache_request then forwards with the owner's validators),
// never served while it is revalidated in the background: the asker would
// freshen its entry with a copy as old as its own and stay a version
// behind.
func (x *exchange) Foreground() bool { return x.foreground }

// takeCond takes tierCondValue off an ask and reports whether it was there.
func takeCond(r *wire.Request) bool {
	for i, f := range r.Values {
		if string(f.Name) == tierCondValue {
			copy(r.Values[i:], r.Values[i+1:])
			r.Values[len(r.Values)-1] = wire.Field{}
			r.Values = r.Values[:len(r.Values)-1]
			return true
		}
	}
	return false
}

// askerValidators are the validators an asking cache sent, taken off the
// request so that the owner's step looks it up unconditionally: it then
// serves its fresh entry, or validates its own with its own validators.
type askerValidators struct {
	inm []string
	ims string
}

// take moves the conditionals off x's request.
func (v *askerValidators) take(x *exchange) {
	h := &x.Req.Header
	v.inm = h.Values("If-None-Match")
	v.ims, _ = h.Get("If-Modified-Since")
	h.Del("If-None-Match")
	h.Del("If-Modified-Since")
}

// answer304 makes x's response a 304 when it is a 200 the asker's
// validators match (RFC 9110 §13.1): the fields RFC 9110 §15.4.5 keeps,
// with the targeted ones, and no body. The asker freshens its entry.
func (v *askerValidators) answer304(x *exchange) {
	r := &x.Resp
	etag, _ := r.Header.Get("ETag")
	lastMod, _ := r.Header.Get("Last-Modified")
	if r.Status != fasthttp.StatusOK || !httpcache.NotModified(v.inm, v.ims, etag, lastMod) {
		return
	}
	fields := r.Header.Fields[:0]
	for _, f := range r.Header.Fields {
		if httpcache.KeepOn304(f.Name) || targetedField(f.Name) {
			fields = append(fields, f)
		}
	}
	r.Header.Fields = fields
	r.Status = fasthttp.StatusNotModified
	r.Body = nil
}

// tooLargeText is the failure an owner answers when the response does not
// fit an envelope; errTierTooLarge is ask's error for it.
const tooLargeText = "tier: too large for an envelope"

var errTierTooLarge = errors.New("edge: tier: " + tooLargeText)

// Bounds of bigKeys: how long a key is remembered and how many are.
const (
	bigKeyTTL = 5 * time.Minute
	bigKeyMax = 4096
)

// bigKeys are cache keys whose responses were too large for an envelope:
// their misses skip the tier for bigKeyTTL and stream from the origin,
// rather than fetch the object twice (the tier's fetch fails after the
// origin produced it, then the fallback's). Bounded: when full and nothing
// expired, it starts over.
type bigKeys struct {
	mu sync.Mutex
	m  map[string]time.Time // key: when it is forgotten
}

// has reports whether key was too large lately.
func (b *bigKeys) has(key []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.m[string(key)]
	if ok && time.Now().After(until) {
		delete(b.m, string(key))
		ok = false
	}
	return ok
}

// add remembers key as too large.
func (b *bigKeys) add(key []byte) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]time.Time{}
	}
	if len(b.m) >= bigKeyMax {
		for k, until := range b.m {
			if now.After(until) {
				delete(b.m, k)
			}
		}
		if len(b.m) >= bigKeyMax {
			clear(b.m)
		}
	}
	b.m[string(key)] = now.Add(bigKeyTTL)
}

// upstreamTooLarge reports whether an origin's answer is the failure its
// proxy gives an exchange that does not take a streamed body, as the
// tier's fetch does not, when the upstream's body does not fit an
// envelope (origin/proxy.go).
func upstreamTooLarge(w *wire.Response) bool {
	return string(w.Error) == "upstream response too large"
}

// isTooLarge reports whether a tier fetch failed for the response's size.
func isTooLarge(err error) bool {
	return errors.Is(err, errTierTooLarge) || errors.Is(err, wire.ErrTooLarge)
}
