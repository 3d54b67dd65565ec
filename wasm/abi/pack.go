package abi

import (
	"bytes"
	"encoding/binary"
)

// AppendList appends item and its NUL terminator to dst. Items must not
// contain NUL; header names and values never do (RFC 9110 forbids it).
func AppendList(dst, item []byte) []byte {
	dst = append(dst, item...)
	return append(dst, 0)
}

// NextItem splits the first item off a list: for list "a\x00b\x00" it returns
// "a" and "b\x00". ok is false when list is empty. A final item without its
// NUL terminator is returned as is, so a list truncated by a short buffer
// yields its complete items and then the partial one; callers that probed the
// size first never see that.
func NextItem(list []byte) (item, rest []byte, ok bool) {
	if len(list) == 0 {
		return nil, nil, false
	}
	// bytes.IndexByte, not a loop: Go's Wasm port implements it in
	// assembly, where a byte loop in a Go guest costs a few ns a byte (a
	// bearer token's list went through two such loops on every request).
	if i := bytes.IndexByte(list, 0); i >= 0 {
		return list[:i], list[i+1:], true
	}
	return list, nil, true
}

// RateResultSize is the size of the record ratelimit_take writes.
const RateResultSize = 24

// RateResult is the outcome of ratelimit_take, written to guest memory as
// three little-endian int64: remaining, reset_ms, retry_after_ms.
type RateResult struct {
	// Remaining is how many more units of cost the key may take right now.
	Remaining int64
	// ResetMs is the time until the key is back to its full burst.
	ResetMs int64
	// RetryAfterMs is, when denied, the time until the same take would be
	// allowed; 0 when allowed.
	RetryAfterMs int64
}

// Put writes r to b, which must hold RateResultSize bytes.
func (r RateResult) Put(b []byte) {
	_ = b[RateResultSize-1]
	binary.LittleEndian.PutUint64(b[0:], uint64(r.Remaining))
	binary.LittleEndian.PutUint64(b[8:], uint64(r.ResetMs))
	binary.LittleEndian.PutUint64(b[16:], uint64(r.RetryAfterMs))
}

// ReadRateResult decodes a record written by Put.
func ReadRateResult(b []byte) RateResult {
	_ = b[RateResultSize-1]
	return RateResult{
		Remaining:    int64(binary.LittleEndian.Uint64(b[0:])),
		ResetMs:      int64(binary.LittleEndian.Uint64(b[8:])),
		RetryAfterMs: int64(binary.LittleEndian.Uint64(b[16:])),
	}
}

// CacheInfoSize is the size of the header cache_lookup writes before the
// entry's metadata.
const CacheInfoSize = 16

// CacheInfo is what the host knows about a cache entry: written by
// cache_lookup as two little-endian int64 ahead of the plugin's metadata.
type CacheInfo struct {
	// AgeMs is the time since the entry was stored, by the host's clock.
	AgeMs int64
	// TTLMs is the freshness lifetime left: positive while fresh, zero or
	// negative once the entry is in its stale window.
	TTLMs int64
}

// Put writes i to b, which must hold CacheInfoSize bytes.
func (i CacheInfo) Put(b []byte) {
	_ = b[CacheInfoSize-1]
	binary.LittleEndian.PutUint64(b[0:], uint64(i.AgeMs))
	binary.LittleEndian.PutUint64(b[8:], uint64(i.TTLMs))
}

// ReadCacheInfo decodes a header written by Put.
func ReadCacheInfo(b []byte) CacheInfo {
	_ = b[CacheInfoSize-1]
	return CacheInfo{
		AgeMs: int64(binary.LittleEndian.Uint64(b[0:])),
		TTLMs: int64(binary.LittleEndian.Uint64(b[8:])),
	}
}
