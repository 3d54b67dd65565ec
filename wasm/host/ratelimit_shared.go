package host

import (
	"bytes"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// Scope is how far a rate-limit key's allowance reaches: one POP (the
// default), every POP of the POP's region, or every POP.
type Scope uint8

// Scopes, named in a key by its prefix (see [KeyScope]).
const (
	ScopePOP Scope = iota
	ScopeRegion
	ScopeGlobal
	numScopes
)

// Key prefixes naming a shared scope. A plugin puts one in front of a key
// to share its allowance (wasm/abi/README.md, ratelimit_take); the ABI's
// signatures stay as they are.
const (
	RegionPrefix = "@region:"
	GlobalPrefix = "@global:"
)

// KeyScope is the scope a key names by its prefix.
func KeyScope(key []byte) Scope {
	switch {
	case len(key) == 0 || key[0] != '@':
		return ScopePOP
	case bytes.HasPrefix(key, []byte(RegionPrefix)):
		return ScopeRegion
	case bytes.HasPrefix(key, []byte(GlobalPrefix)):
		return ScopeGlobal
	}
	return ScopePOP
}

// Shared is the node's [Limiter]: a [GCRA] that also keeps the usage of
// region and global keys for an exchange (edge/limitsync) to publish, and
// takes the usage other POPs published as charges on the same keys. The
// local GCRA decides every take, so a shared key costs a request no more
// than a map update besides the take; its allowance is the scope's,
// reduced by what other POPs spent, as far as their batches have arrived.
//
// Without an exchange a shared key is a per-POP key. When the exchange
// loses the control plane it sets a share n for a scope: each POP then
// enforces limit/n (the period is stretched n times and the burst divided
// by n), n being the number of POPs last seen in the scope, so a cut-off
// POP keeps its part of the limit and never runs without one. The key's
// state carries over: what was spent before counts.
type Shared struct {
	g       *GCRA
	syncing atomic.Bool
	share   [numScopes]atomic.Int32 // 0 or 1: the whole limit; n: limit/n

	mu    sync.Mutex
	usage map[string]*Usage // units spent here since the last Drain, by key

	dropped [2]atomic.Uint64 // by Dropped's what: keys not kept, charges not taken
}

// MaxUsageKeys bounds the shared keys whose usage is kept between two
// Drains: a new key past it is still decided here but not published (and
// counted by Dropped).
const MaxUsageKeys = 1 << 16

// MaxChargePeriod caps the period Charge believes a peer's entry: a charge
// moves a key at most two of these (2 h) ahead, whatever limit and period
// the entry claims.
const MaxChargePeriod = time.Hour

// What Dropped counts.
const (
	DroppedUsage  = 0 // a new key's usage not kept: MaxUsageKeys reached
	DroppedCharge = 1 // a charge to a new key not taken: its shard is full
)

// Usage is what one POP spent from one shared key in one interval.
type Usage struct {
	Limit  int32
	Period time.Duration
	Units  int64
}

// NewShared wraps g.
func NewShared(g *GCRA) *Shared {
	return &Shared{g: g, usage: map[string]*Usage{}}
}

// GCRA is the limiter s decides with.
func (s *Shared) GCRA() *GCRA { return s.g }

// Take implements Limiter.
func (s *Shared) Take(key []byte, limit int32, period time.Duration, burst, cost int32) (bool, abi.RateResult) {
	sc := KeyScope(key)
	if sc == ScopePOP {
		return s.g.Take(key, limit, period, burst, cost)
	}
	p := period
	if n := s.share[sc].Load(); n > 1 {
		// Saturating: a year's period times thousands of POPs overflowed
		// to a negative period, which enforced no limit at all.
		p, burst = time.Duration(mulWindow(int64(period), int64(n))), max(burst/n, 1)
	}
	ok, r := s.g.Take(key, limit, p, burst, cost)
	if ok && cost > 0 && s.syncing.Load() {
		s.mu.Lock()
		u := s.usage[string(key)] // no allocation: the lookup's conversion is elided
		if u == nil && len(s.usage) < MaxUsageKeys {
			u = &Usage{} // once per key per Drain
			s.usage[string(key)] = u
		}
		if u != nil {
			u.Limit, u.Period, u.Units = limit, period, u.Units+int64(cost)
		}
		s.mu.Unlock()
		if u == nil {
			s.dropped[DroppedUsage].Add(1)
		}
	}
	return ok, r
}

// SetSyncing turns the keeping of usage for an exchange on or off.
func (s *Shared) SetSyncing(on bool) {
	s.syncing.Store(on)
	if !on {
		s.mu.Lock()
		clear(s.usage)
		s.mu.Unlock()
	}
}

// SetShare makes each POP enforce limit/n of sc's keys; n <= 1 restores
// the whole limit.
func (s *Shared) SetShare(sc Scope, n int) {
	s.share[sc].Store(int32(min(max(n, 1), 1<<16)))
}

// Share is the divisor SetShare last set for sc.
func (s *Shared) Share(sc Scope) int { return max(int(s.share[sc].Load()), 1) }

// Drain calls f with each shared key spent since the last Drain and the
// units spent, then starts counting afresh in a new map, so takes wait for
// no more than the swap while f runs. A key in constant use allocates once
// per Drain, not per take. f may call s; Drain must not run concurrently
// with itself.
func (s *Shared) Drain(f func(sc Scope, key string, u Usage)) {
	s.mu.Lock()
	usage := s.usage
	s.usage = make(map[string]*Usage, len(usage))
	s.mu.Unlock()
	for k, u := range usage {
		f(KeyScope([]byte(k)), k, *u)
	}
}

// Dropped is how many times what (DroppedUsage, DroppedCharge) was dropped
// for want of room.
func (s *Shared) Dropped(what int) uint64 { return s.dropped[what].Load() }

// Charge spends units of key's allowance (limit per period) that another
// POP spent: unlike Take it always succeeds, running the key past its
// burst if need be, so the next takes here wait for it. A charge moves the
// key at most two periods ahead of now, the period capped at
// MaxChargePeriod: more than that is a peer's bug or a forgery, not usage,
// and must not lock a client out for longer. Nor does a charge ever move a
// key back: one that this POP's own takes ran further ahead (a day's
// quota spent here) keeps its place, and the client gets back nothing it
// spent. A charge never evicts a live key: one to a new key whose shard is
// full is dropped (Dropped).
func (s *Shared) Charge(key []byte, limit int32, period time.Duration, units int64) {
	if limit <= 0 || period <= 0 || units <= 0 {
		return
	}
	g := s.g
	interval := max(int64(period)/int64(limit), 1)
	now := g.clock()
	ceiling := now + 2*int64(min(period, MaxChargePeriod))
	sh := &g.shards[maphash.Bytes(g.seed, key)%gcraShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := sh.tat[string(key)]
	if p == nil {
		if len(sh.tat) >= g.perShard {
			g.dropExpired(sh, now)
		}
		if len(sh.tat) >= g.perShard {
			s.dropped[DroppedCharge].Add(1)
			return
		}
		p = new(int64)
		sh.tat[string(key)] = p
	}
	tat := max(*p, now)
	*p = max(*p, min(tat+mulWindow(units, interval), ceiling))
}
