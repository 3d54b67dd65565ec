package sdk

import (
	"time"

	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

// CacheInfo is what the host knows about a cached entry.
type CacheInfo = abi.CacheInfo

// CacheLookup returns the entry stored under key: the host's info and the
// metadata the plugin stored with it.
func CacheLookup(key []byte) (info CacheInfo, meta []byte, ok bool) {
	b, n := fetchN(func(b []byte) int32 { return hostcall.CacheLookup(key, b) })
	if n < abi.CacheInfoSize {
		return CacheInfo{}, nil, false
	}
	return abi.ReadCacheInfo(b), append([]byte(nil), b[abi.CacheInfoSize:]...), true
}

// CacheStore stores the current response under key, fresh for ttl and kept
// for stale after that, with the plugin's metadata and tags for purging.
func CacheStore(key, meta []byte, ttl, stale time.Duration, tags ...string) error {
	var list []byte
	for _, t := range tags {
		list = abi.AppendList(list, bytesOf(t))
	}
	return errOf(hostcall.CacheStore(key, meta, ttl.Milliseconds(), stale.Milliseconds(), list))
}

// CacheServe makes the entry under key the current response (the body never
// passes through the plugin) and returns its status.
func CacheServe(key []byte) (status int, err error) {
	r := hostcall.CacheServe(key)
	return int(max(r, 0)), errOf(r)
}

// CacheRevalidate asks the host to revalidate the entry under key in the
// background, with a copy of the request and its values as they are now:
// once the response to this request is written, the host sends the copy to
// the origin and runs the response phase of the plugins that ran on the
// request on the origin's answer. It takes effect only if the request phase
// answers. scheduled is false when the host skipped it (the key is being
// revalidated already, or the node is at its bound): serve the stale
// response all the same, a later request asks again. ErrUnavailable means
// the host cannot revalidate in the background at all.
func CacheRevalidate(key []byte) (scheduled bool, err error) {
	r := hostcall.CacheRevalidate(key)
	return r == 1, errOf(r)
}

// CacheRequest runs the request phase of the RFC 9111 cache in the host
// (cache_request, package wasm/abi/httpcache) for the current GET or HEAD
// request, reporting in Cache-Status under name: a usable entry is answered
// there and then, otherwise the request is set up to go to the origin and
// the state for the response phase is saved under httpcache.StateKey.
// flags are httpcache.Answered, Hit, Forward and Revalidating: return
// Answer when Answered is set, Continue otherwise.
func CacheRequest(name string) (flags int32, err error) {
	r := hostcall.CacheRequest(bytesOf(name))
	return max(r, 0), errOf(r)
}

// CacheResponse settles the response phase of the RFC 9111 cache in the
// host (cache_response) when the response will not be stored: it adds the
// Cache-Status member under name and reports httpcache.Settled. Without
// Settled nothing was changed, and the plugin decides. options are
// httpcache.StripCDN and StripSetCookie.
func CacheResponse(name string, options int32) (flags int32, err error) {
	r := hostcall.CacheResponse(bytesOf(name), options)
	return max(r, 0), errOf(r)
}

// CachePurge removes the entry under key; it reports whether there was one.
func CachePurge(key []byte) bool { return hostcall.CachePurge(abi.PurgeKey, key) > 0 }

// CachePurgeTag removes every entry stored with tag and returns how many.
func CachePurgeTag(tag string) int {
	return int(max(hostcall.CachePurge(abi.PurgeTag, bytesOf(tag)), 0))
}

// RateResult is the outcome of a rate-limit take.
type RateResult = abi.RateResult

// Limit describes an allowance: Count per Period, in bursts of up to Burst
// (at least 1; Count when zero).
type Limit struct {
	Count  int
	Period time.Duration
	Burst  int
}

// Take spends cost units of key's allowance. Keys are shared by every plugin
// on the node: include the policy name in the key. A key beginning
// "@region:" or "@global:" is one allowance for every POP of the edge's
// region, or for every POP (wasm/abi/README.md, ratelimit_take).
func (l Limit) Take(key []byte, cost int) (allowed bool, r RateResult, err error) {
	burst := l.Burst
	if burst == 0 {
		burst = l.Count
	}
	out := rateResult[:]
	res := hostcall.RatelimitTake(key, int32(l.Count), l.Period.Milliseconds(), int32(burst), int32(cost), out)
	if res < 0 {
		return false, RateResult{}, Errno(res)
	}
	return res == 1, abi.ReadRateResult(out), nil
}

// rateResult is where the host writes a take's result: a local array
// would move to the heap on every take, since a pointer passed to a host
// import escapes. A guest runs one call at a time, so one serves all.
var rateResult [abi.RateResultSize]byte
