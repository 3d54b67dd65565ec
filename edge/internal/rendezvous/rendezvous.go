// Package rendezvous picks which member of a set owns a key, by rendezvous
// (highest random weight) hashing: every member gets a weight for the key,
// and the heaviest owns it. It is how the POPs of a region agree, each on
// its own and with no coordination, on which of them owns a cache key.
//
// # Why
//
// Rendezvous hashing moves the fewest keys when the set changes: a member
// that leaves gives away exactly the keys it owned, spread over the rest,
// and one that joins takes about 1/N of the keys, only from the others,
// with no ring, virtual nodes or tuning. Its cost, one hash per member and
// key, is small for a region's handful of POPs. Weights hash the members'
// names, not their addresses, so a POP that restarts on another port keeps
// its keys; and the hash is fixed (FNV-1a, then a 64-bit mixer), never
// seeded per process, since every POP must compute the same owner.
package rendezvous

// Set is a fixed set of members. It is immutable: a change of membership
// builds a new Set, which may then be swapped in atomically.
type Set struct {
	names []string
	seeds []uint64 // hash of each member's name
}

// New returns the set of the given members, which must be distinct. The
// owner Owner returns is an index into names.
func New(names ...string) *Set {
	s := &Set{names: append([]string(nil), names...), seeds: make([]uint64, len(names))}
	for i, n := range names {
		s.seeds[i] = mix(fnv(n))
	}
	return s
}

// Len is the number of members.
func (s *Set) Len() int { return len(s.names) }

// Name is member i's name.
func (s *Set) Name(i int) string { return s.names[i] }

// Owner returns the index of the member that owns key, -1 if the set is
// empty. It does not allocate.
func (s *Set) Owner(key []byte) int { return s.owner(fnv(key)) }

// OwnerString is Owner for a key held as a string.
func (s *Set) OwnerString(key string) int { return s.owner(fnv(key)) }

func (s *Set) owner(h uint64) int {
	best, bestW := -1, uint64(0)
	for i, seed := range s.seeds {
		w := mix(h ^ seed)
		// Equal weights (a 2^-64 chance) go to the smaller name, so
		// every POP breaks the tie the same way whatever its order.
		if best < 0 || w > bestW || w == bestW && s.names[i] < s.names[best] {
			best, bestW = i, w
		}
	}
	return best
}

// fnv is the 64-bit FNV-1a hash of b.
func fnv[K ~string | ~[]byte](b K) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(b); i++ {
		h ^= uint64(b[i])
		h *= 1099511628211
	}
	return h
}

// mix is the finalizer of SplitMix64: it spreads every input bit over the
// whole word, which FNV alone does poorly for short keys and which a
// highest-weight comparison needs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
