package host

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
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

	// purges is the purge position (Purges): moved by every purge, under
	// mu, before it removes anything. purged holds, for each of
	// purgeSlots buckets of key and tag hashes, the position of the last
	// purge of one that falls in it, and purgedAll and purgedTag those of
	// the last purge of everything and of any tag: so a fetch that began
	// before some can tell whether one named its key or a tag of its
	// answer (Set), at the cost of one look each. A purge of one page
	// must not keep every fetch in flight from being stored, and a
	// bucket another purge shares costs a store, never a stale one. (A
	// ring of the last 1,024 purges did this before: plugin purges, a
	// busy site's writes invalidating their URLs, filled it while one
	// fetch was out, and then no fetch of any key was stored or shared.)
	purges               atomic.Uint64
	purged               [purgeSlots]uint64 // guarded by mu
	purgedAll, purgedTag uint64             // guarded by mu
	seed                 maphash.Seed

	reval revalidations // background revalidations in flight (revalidate.go)
}

// NewMemCache returns a cache that holds at most maxBytes of entries.
func NewMemCache(maxBytes uint64) *MemCache {
	m := &MemCache{tags: map[string]map[string]*CacheEntry{},
		reval: revalidations{max: DefaultMaxRevalidations, inFlight: map[string]time.Time{}}}
	m.purges.Store(1) // 0 is a StoredResponse's "fetched at no known position"
	m.seed = maphash.MakeSeed()
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

// Set implements Cache. A response fetched at a known purge position
// (StoredResponse.Fetched) is not stored once a purge of its key or of
// one of its tags has begun since (PurgedSince): the fetch may have been
// answered before the purge, and storing it after would bring back what
// the purge removed.
func (m *MemCache) Set(key []byte, e *CacheEntry) {
	k := string(key)
	if len(e.Tags) == 0 && e.Response.Fetched == 0 {
		m.c.Set(k, e)
		return
	}
	// Under the key's bucket lock, which the replaced entry's deletion
	// event and a purge's removal of the key also run under, and under mu,
	// which PurgeTag moves the position and reads the index under: a
	// purge either finds the entry (indexed before the write: if it is
	// evicted at once, unindex finds it too) and removes it, or has
	// recorded itself, and the entry is not stored. Two stores of one key
	// racing cannot leave the index naming the loser while the cache
	// holds the winner.
	m.c.Compute(k, func(old *CacheEntry, _ bool) (*CacheEntry, otter.ComputeOp) {
		f := e.Response.Fetched
		if len(e.Tags) == 0 && f == m.purges.Load() {
			// Nothing to index and no purge since the fetch: a purge of
			// the key that moves the position now removes it after this,
			// under the same bucket lock.
			return e, otter.WriteOp
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if f != 0 && m.purgedSince(f, k, e.Tags) {
			return old, otter.CancelOp
		}
		m.indexLocked(k, e)
		return e, otter.WriteOp
	})
}

// purgeSlots is the buckets of MemCache.purged: 512 KiB, in which an
// unrelated purge falls in a fetch's key's bucket once in 65,536.
const purgeSlots = 1 << 16

// What a purge names (fence).
const (
	purgeKey = iota
	purgeTag
	purgeAll
)

func (m *MemCache) keyHash(key string) uint64 { return maphash.String(m.seed, key) }

// tagHash is a tag's, told from a key's by a leading NUL (keys start with
// their format's name).
func (m *MemCache) tagHash(tag string) uint64 {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteByte(0)
	h.WriteString(tag)
	return h.Sum64()
}

// fence moves the purge position for a purge of what (purgeKey,
// purgeTag: of the key or tag whose hash is h; purgeAll), under mu, and
// returns where the fetch of the exchange that purged, begun at fetched,
// stands after it (OwnPurger.PurgeOwn): past this purge when it is the
// only one since.
func (m *MemCache) fence(what int, h, fetched uint64) uint64 {
	pos := m.purges.Add(1)
	switch what {
	case purgeAll:
		m.purgedAll = pos
	case purgeTag:
		m.purgedTag = pos
		fallthrough
	default:
		m.purged[h%purgeSlots] = pos
	}
	if fetched != 0 && fetched+1 == pos {
		return pos
	}
	return fetched
}

// PurgedSince reports whether a purge since position fetched named key or
// one of tags, or everything (a hash's bucket another purge shares also
// counts): then what was fetched at fetched must not be stored or handed
// on.
func (m *MemCache) PurgedSince(fetched uint64, key string, tags []string) bool {
	if fetched == m.purges.Load() {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.purgedSince(fetched, key, tags)
}

// KeyPurgedSince is PurgedSince for a fetch whose tags are not known yet
// (one still at the origin): any tag's purge counts. A request that would
// share such a fetch (edge/tier_collapse.go) waits for it unless a purge
// since could cover its answer; with every plugin purge moving the
// position (a POST's invalidation of its URL), checking the position
// alone sent a request to the origin after any write to any page.
func (m *MemCache) KeyPurgedSince(fetched uint64, key []byte) bool {
	if fetched == m.purges.Load() {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.purgedAll > fetched || m.purgedTag > fetched || m.purged[m.keyHash(string(key))%purgeSlots] > fetched
}

func (m *MemCache) purgedSince(fetched uint64, key string, tags []string) bool {
	if m.purgedAll > fetched || m.purged[m.keyHash(key)%purgeSlots] > fetched {
		return true
	}
	for _, t := range tags {
		if m.purged[m.tagHash(t)%purgeSlots] > fetched {
			return true
		}
	}
	return false
}

// Purges is the cache's purge position: it moves with every purge
// (Purge, PurgeTag, their Own forms, PurgeAll), so a fetch that took it
// as it began can tell whether one began while it was out
// (StoredResponse.Fetched). Never 0.
func (m *MemCache) Purges() uint64 { return m.purges.Load() }

func (m *MemCache) indexLocked(key string, e *CacheEntry) {
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

// Purge implements Cache. Every purge moves the purge position first,
// so that a fetch in progress as it lands does not store its answer
// (Set): a plugin's too, or a GET at the origin while a POST's answer
// invalidated its URL (RFC 9111 section 4.4) stored what it fetched
// before the POST, for as long as that was fresh.
func (m *MemCache) Purge(key []byte) int {
	n, _ := m.PurgeOwn(key, 0)
	return n
}

// PurgeTag implements Cache, as Purge does.
func (m *MemCache) PurgeTag(tag []byte) int {
	n, _ := m.PurgeTagOwn(tag, 0)
	return n
}

// OwnPurger is a [Cache] whose purges keep fetches in progress from
// storing (MemCache): a plugin's purge (cache_purge) says where its own
// exchange's fetch began, so that the exchange may store what it fetched
// after purging.
type OwnPurger interface {
	// PurgeOwn is Purge for the exchange whose fetch began at purge
	// position fetched (0: none). It returns how many entries it
	// removed and the position that fetch stands at now: this purge's,
	// if no other began since the fetch did; fetched otherwise, which
	// this purge then keeps out as it does every other fetch.
	PurgeOwn(key []byte, fetched uint64) (int, uint64)
	// PurgeTagOwn is PurgeTag as PurgeOwn is Purge.
	PurgeTagOwn(tag []byte, fetched uint64) (int, uint64)
}

var _ OwnPurger = (*MemCache)(nil)

// PurgeOwn implements OwnPurger.
func (m *MemCache) PurgeOwn(key []byte, fetched uint64) (int, uint64) {
	m.mu.Lock()
	fetched = m.fence(purgeKey, m.keyHash(string(key)), fetched)
	m.mu.Unlock()
	if _, ok := m.c.Invalidate(string(key)); ok {
		return 1, fetched
	}
	return 0, fetched
}

// PurgeTagOwn implements OwnPurger.
func (m *MemCache) PurgeTagOwn(tag []byte, fetched uint64) (int, uint64) {
	m.mu.Lock()
	fetched = m.fence(purgeTag, m.tagHash(string(tag)), fetched)
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
	return n, fetched
}

// PurgeAll empties the cache: what a POP does when it cannot know which
// purges it missed (edge/fleet's purge.go). It moves the purge position,
// as Purge does.
func (m *MemCache) PurgeAll() int {
	m.mu.Lock()
	m.fence(purgeAll, 0, 0)
	m.mu.Unlock()
	n := m.c.EstimatedSize()
	m.c.InvalidateAll()
	return n
}

// WeightedSize is the bytes the cache accounts for now.
func (m *MemCache) WeightedSize() uint64 { return m.c.WeightedSize() }

// Len is the number of entries.
func (m *MemCache) Len() int { return m.c.EstimatedSize() }
