package host

import (
	"sync"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// Cache is the response cache host store. Freshness policy belongs to the
// plugin (package httpcache: the cache plugin stores with it, cache_request
// looks up with it); the store keeps entries for TTL plus Stale, within a
// byte bound.
type Cache interface {
	Get(key []byte) (*CacheEntry, bool)
	Set(key []byte, e *CacheEntry)
	// Purge removes one key; PurgeTag every entry carrying tag. Both return
	// how many entries they removed.
	Purge(key []byte) int
	PurgeTag(tag []byte) int
}

// CacheEntry is one stored response with the plugin's metadata.
type CacheEntry struct {
	Response *StoredResponse
	Meta     []byte
	Tags     []string
	Stored   time.Time
	// TTL is the freshness lifetime; Stale the window after it during which
	// the entry is still kept (for stale-while-revalidate and stale-if-error).
	TTL, Stale time.Duration
}

func (e *CacheEntry) weight(key string) uint32 {
	n := len(key) + len(e.Meta) + e.Response.Size()
	for _, t := range e.Tags {
		n += len(t) + 16
	}
	return uint32(min(n, 1<<31))
}

// MemCache is a [Cache] in memory: bounded by bytes (W-TinyLFU eviction from
// otter), per-entry expiry, and a tag index for PurgeTag.
type MemCache struct {
	c *otter.Cache[string, *CacheEntry]

	mu   sync.Mutex
	tags map[string]map[string]*CacheEntry // tag -> key -> entry that carries it

	reval revalidations // background revalidations in flight (revalidate.go)
}

// NewMemCache returns a cache that holds at most maxBytes of entries.
func NewMemCache(maxBytes uint64) *MemCache {
	m := &MemCache{tags: map[string]map[string]*CacheEntry{},
		reval: revalidations{max: DefaultMaxRevalidations, inFlight: map[string]time.Time{}}}
	m.c = otter.Must(&otter.Options[string, *CacheEntry]{
		MaximumWeight: maxBytes,
		Weigher:       func(k string, e *CacheEntry) uint32 { return e.weight(k) },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *CacheEntry]) time.Duration {
			return e.Value.TTL + e.Value.Stale
		}),
		// Atomic, so the index never names an entry the cache no longer has
		// for longer than the deletion itself. It only takes m.mu, never
		// calls the cache, as otter requires (so does Set's Compute function;
		// m.mu is never held while calling the cache).
		OnAtomicDeletion: func(ev otter.DeletionEvent[string, *CacheEntry]) { m.unindex(ev.Key, ev.Value) },
	})
	return m
}

// Get implements Cache.
func (m *MemCache) Get(key []byte) (*CacheEntry, bool) {
	// The lookup does not retain the key, so it may alias key's bytes.
	return m.c.GetIfPresent(unsafe.String(unsafe.SliceData(key), len(key)))
}

// Set implements Cache.
func (m *MemCache) Set(key []byte, e *CacheEntry) {
	k := string(key)
	if len(e.Tags) == 0 {
		m.c.Set(k, e)
		return
	}
	// Index under the key's bucket lock, which the replaced entry's deletion
	// event also runs under: two stores of one key racing cannot leave the
	// index naming the loser while the cache holds the winner. Index before
	// the write: if the entry is evicted at once, unindex finds it.
	m.c.Compute(k, func(*CacheEntry, bool) (*CacheEntry, otter.ComputeOp) {
		m.index(k, e)
		return e, otter.WriteOp
	})
}

func (m *MemCache) index(key string, e *CacheEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range e.Tags {
		keys := m.tags[t]
		if keys == nil {
			keys = map[string]*CacheEntry{}
			m.tags[t] = keys
		}
		keys[key] = e
	}
}

func (m *MemCache) unindex(key string, e *CacheEntry) {
	if len(e.Tags) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range e.Tags {
		if keys := m.tags[t]; keys[key] == e {
			delete(keys, key)
			if len(keys) == 0 {
				delete(m.tags, t)
			}
		}
	}
}

// Purge implements Cache.
func (m *MemCache) Purge(key []byte) int {
	if _, ok := m.c.Invalidate(string(key)); ok {
		return 1
	}
	return 0
}

// PurgeTag implements Cache.
func (m *MemCache) PurgeTag(tag []byte) int {
	m.mu.Lock()
	var keys []string
	for k := range m.tags[string(tag)] {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := m.c.Invalidate(k); ok {
			n++
		}
	}
	return n
}

// PurgeAll empties the cache: what a POP does when it cannot know which
// purges it missed (edge/fleet's purge.go).
func (m *MemCache) PurgeAll() int {
	n := m.c.EstimatedSize()
	m.c.InvalidateAll()
	return n
}

// WeightedSize is the bytes the cache accounts for now.
func (m *MemCache) WeightedSize() uint64 { return m.c.WeightedSize() }

// Len is the number of entries.
func (m *MemCache) Len() int { return m.c.EstimatedSize() }
