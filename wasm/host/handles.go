package host

import "sync/atomic"

// handles holds what a plugin version registers at configure time (keys,
// token policies, metrics), a handle being an index. The request path
// reads it without a lock; registrations, serialised by the owner's mutex,
// append to a copy, so a handle once returned keeps its meaning.
type handles[T any] struct{ p atomic.Pointer[[]T] }

// all returns what is registered so far.
func (h *handles[T]) all() []T {
	if p := h.p.Load(); p != nil {
		return *p
	}
	return nil
}

// get returns the item of handle i; ok is false for a handle never returned.
func (h *handles[T]) get(i int32) (v T, ok bool) {
	all := h.all()
	if i < 0 || int(i) >= len(all) {
		return v, false
	}
	return all[i], true
}

// add registers v and returns its handle. The caller holds the owner's
// mutex and has checked the ABI's bound on the count.
func (h *handles[T]) add(v T) int32 {
	cur := h.all()
	next := append(cur[:len(cur):len(cur)], v)
	h.p.Store(&next)
	return int32(len(next) - 1)
}
