package host

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// Limiter is the rate-limit host store.
type Limiter interface {
	// Take spends cost units of key's allowance: limit units per period, with
	// bursts of up to burst units.
	Take(key []byte, limit int32, period time.Duration, burst, cost int32) (allowed bool, r abi.RateResult)
}

// GCRA is a [Limiter] implementing the generic cell rate algorithm: per key it
// stores one number, the theoretical arrival time (TAT) of the next unit.
// A key whose TAT has passed is back at its full burst, which is exactly the
// state of an absent key, so such keys are dropped as they are met.
//
// Keys are spread over shards, each a map under its own mutex, so unrelated
// keys rarely contend. A shard holds at most max(maxKeys/shards, 16) keys: under a
// flood of unique keys it drops live keys rather than grow without bound,
// which can only make the limiter more lenient, never wrongly deny.
type GCRA struct {
	seed     maphash.Seed
	perShard int
	epoch    time.Time
	// now, when set, replaces the monotonic clock (ns since epoch). Tests set
	// it to control time; nil in production, which reads time.Since(epoch).
	now    func() int64
	shards [gcraShards]gcraShard
}

const gcraShards = 64

type gcraShard struct {
	mu sync.Mutex
	// tat holds ns since epoch. The value is a pointer so that a take on a
	// known key updates it in place: assigning m[string(key)] would allocate
	// the key string on every take.
	tat map[string]*int64
	_   [40]byte // keep neighbouring shards off one cache line
}

// gcraMaxWindow caps burst*T and cost*T (~73 years), so that no sum of them
// with a TAT overflows int64 nanoseconds; a longer window behaves as this one.
const gcraMaxWindow = 1 << 61

// mulWindow returns a*b for non-negative a and b, capped at gcraMaxWindow.
func mulWindow(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > gcraMaxWindow {
		return gcraMaxWindow
	}
	return int64(lo)
}

// NewGCRA returns a limiter tracking up to maxKeys keys.
func NewGCRA(maxKeys int) *GCRA {
	g := &GCRA{seed: maphash.MakeSeed(), perShard: max(maxKeys/gcraShards, 16), epoch: time.Now()}
	for i := range g.shards {
		g.shards[i].tat = map[string]*int64{}
	}
	return g
}

// Take implements Limiter.
func (g *GCRA) Take(key []byte, limit int32, period time.Duration, burst, cost int32) (bool, abi.RateResult) {
	if limit <= 0 || burst <= 0 || cost < 0 {
		return false, abi.RateResult{} // the host validates first; this keeps direct callers safe
	}
	interval := int64(period) / int64(limit) // emission interval T
	if interval <= 0 {
		interval = 1
	}
	tolerance := mulWindow(interval, int64(burst)) // how far TAT may run ahead of now
	now := g.clock()

	s := &g.shards[maphash.Bytes(g.seed, key)%gcraShards]
	s.mu.Lock()
	p := s.tat[string(key)]
	tat := now
	if p != nil && *p > now {
		tat = *p
	}
	next := tat + mulWindow(int64(cost), interval)
	if next-now > tolerance {
		s.mu.Unlock()
		return false, abi.RateResult{
			// A peer's charge may run a key past its burst: none left,
			// not a negative count (RateLimit's r is never negative).
			Remaining:    max(tolerance-(tat-now), 0) / interval,
			ResetMs:      ceilMs(tat - now),
			RetryAfterMs: max(ceilMs(next-tolerance-now), 1),
		}
	}
	switch {
	case p != nil:
		*p = next
	case cost > 0: // a peek at an absent key leaves it absent, at its full burst
		g.makeRoom(s, now)
		p = new(int64)
		*p = next
		s.tat[string(key)] = p
	}
	s.mu.Unlock()
	return true, abi.RateResult{
		Remaining: (tolerance - (next - now)) / interval,
		ResetMs:   ceilMs(next - now),
	}
}

// clock is the time in ns since g.epoch.
func (g *GCRA) clock() int64 {
	if g.now != nil {
		return g.now()
	}
	return int64(time.Since(g.epoch))
}

// makeRoom drops a few expired keys before an insert, so expiry costs O(1)
// per new key instead of a periodic sweep; if the shard is still full it
// drops an arbitrary key.
func (g *GCRA) makeRoom(s *gcraShard, now int64) {
	g.dropExpired(s, now)
	for k := range s.tat {
		if len(s.tat) < g.perShard {
			return
		}
		delete(s.tat, k)
	}
}

// dropExpired drops the expired keys among a few of s's, without evicting
// a live one as makeRoom may.
func (g *GCRA) dropExpired(s *gcraShard, now int64) {
	checked := 0
	for k, tat := range s.tat {
		if *tat < now {
			delete(s.tat, k)
		}
		if checked++; checked == 8 {
			return
		}
	}
}

// Len is the number of keys tracked.
func (g *GCRA) Len() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

func ceilMs(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	return (ns + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}
