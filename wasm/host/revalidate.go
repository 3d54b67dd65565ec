package host

import (
	"bytes"
	"sync"
	"time"
)

// Revalidator is implemented by a [Cache] that admits background
// revalidations (cache_revalidate): one per key at a time, and a bounded
// number in all, so a burst of stale hits costs the origin one request per
// entry and a slow origin cannot pile up fetches on the node. A Cache
// without it makes cache_revalidate return ErrUnavailable.
type Revalidator interface {
	// BeginRevalidation admits a revalidation of key. ok is false when key
	// is being revalidated already or the bound is reached; otherwise
	// release must be called once the revalidation is done or dropped.
	BeginRevalidation(key []byte) (release func(), ok bool)
}

// Revalidation is a background revalidation a plugin asked for with
// cache_revalidate: a copy of the request and its values as they were at the
// call. The runner of the chain takes it from the exchange
// ([MemExchange.TakeRevalidation]) once the response is written; if the
// request phase answered it sends Req to the origin and runs the response
// phase of the plugins that ran on the request, on [Revalidation.Exchange];
// either way it calls Done.
type Revalidation struct {
	Key  string
	Req  Request
	Vals Values

	once    sync.Once
	release func()
}

// Exchange is a fresh exchange holding the copied request and values, for
// the origin's response and the response phases.
func (r *Revalidation) Exchange() *MemExchange {
	return &MemExchange{Req: r.Req, Vals: r.Vals}
}

// Done ends the revalidation, so its key can be revalidated again. Calling
// it more than once is harmless.
func (r *Revalidation) Done() {
	r.once.Do(func() {
		if r.release != nil {
			r.release()
		}
	})
}

// newRevalidation copies req and vals: the exchange they belong to is
// reused for the next request before the revalidation runs.
func newRevalidation(key []byte, req *Request, vals *Values, release func()) *Revalidation {
	r := &Revalidation{Key: string(key), Req: *req, release: release}
	r.Req.Header.Fields = append([]HeaderField(nil), req.Header.Fields...)
	r.Req.Body = bytes.Clone(req.Body)
	for i := range vals.Len() {
		k, v, flags := vals.At(i)
		r.Vals.Set(k, v, flags)
	}
	return r
}

// DefaultMaxRevalidations bounds the background revalidations a MemCache
// admits at once.
const DefaultMaxRevalidations = 64

// revalidationLease is how long an admitted revalidation holds its key at
// most: longer than any origin deadline, so it only matters when a runner
// never calls Done (a bug, or a plugin run outside a chain runner), which
// would otherwise keep the key from ever being revalidated in the
// background again.
const revalidationLease = time.Minute

// revalidations is MemCache's admission state.
type revalidations struct {
	mu       sync.Mutex
	max      int
	inFlight map[string]time.Time // key -> end of its lease
}

// SetMaxRevalidations sets how many background revalidations the cache
// admits at once (DefaultMaxRevalidations by default; at least 1). Call it
// before the cache is used.
func (m *MemCache) SetMaxRevalidations(n int) {
	m.reval.mu.Lock()
	m.reval.max = max(n, 1)
	m.reval.mu.Unlock()
}

// BeginRevalidation implements [Revalidator].
func (m *MemCache) BeginRevalidation(key []byte) (release func(), ok bool) {
	rv := &m.reval
	now := time.Now()
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if end, ok := rv.inFlight[string(key)]; ok && now.Before(end) {
		return nil, false
	}
	if len(rv.inFlight) >= rv.max {
		for k, end := range rv.inFlight { // at most max entries
			if !now.Before(end) {
				delete(rv.inFlight, k)
			}
		}
		if len(rv.inFlight) >= rv.max {
			return nil, false
		}
	}
	k, end := string(key), now.Add(revalidationLease)
	rv.inFlight[k] = end
	return func() {
		rv.mu.Lock()
		if rv.inFlight[k].Equal(end) { // not a later lease of the same key
			delete(rv.inFlight, k)
		}
		rv.mu.Unlock()
	}, true
}

// Revalidating is the number of background revalidations admitted and not
// yet done.
func (m *MemCache) Revalidating() int {
	m.reval.mu.Lock()
	defer m.reval.mu.Unlock()
	return len(m.reval.inFlight)
}
