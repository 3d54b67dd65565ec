package host

import (
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// testClock is a manual clock for GCRA, in ns since the limiter's epoch.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) now() int64              { return c.ns.Load() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *testClock) advanceMs(ms int64)      { c.advance(time.Duration(ms) * time.Millisecond) }
func (c *testClock) String() string          { return time.Duration(c.now()).String() }
func newTestGCRA(maxKeys int) (*GCRA, *testClock) {
	g := NewGCRA(maxKeys)
	clk := &testClock{}
	clk.ns.Store(int64(time.Hour)) // any start; a TAT of 0 must not look "in the future"
	g.now = clk.now
	return g, clk
}

// gcraBound is the exact key bound NewGCRA(maxKeys) keeps: makeRoom leaves a
// full shard with perShard-1 keys before the insert, so no shard ever holds
// more than perShard = max(maxKeys/64, 16) keys.
func gcraBound(maxKeys int) int { return gcraShards * max(maxKeys/gcraShards, 16) }

type rateStep struct {
	advanceMs int64 // before the take
	cost      int32
	allowed   bool
	want      abi.RateResult
}

func TestGCRASequences(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name         string
		limit, burst int32
		period       time.Duration
		steps        []rateStep
	}{
		{
			// The README's worked example: T = 100ms, tolerance 200ms.
			name: "readme example", limit: 10, period: time.Second, burst: 2,
			steps: []rateStep{
				{0, 1, true, abi.RateResult{Remaining: 1, ResetMs: 100}},
				{0, 1, true, abi.RateResult{Remaining: 0, ResetMs: 200}},
				{0, 1, false, abi.RateResult{Remaining: 0, ResetMs: 200, RetryAfterMs: 100}},
			},
		},
		{
			name: "refill over time", limit: 10, period: time.Second, burst: 2,
			steps: []rateStep{
				{0, 1, true, abi.RateResult{Remaining: 1, ResetMs: 100}},
				{0, 1, true, abi.RateResult{Remaining: 0, ResetMs: 200}},
				// 40ms later TAT is 160ms ahead: the next unit needs 60ms more.
				{40, 1, false, abi.RateResult{Remaining: 0, ResetMs: 160, RetryAfterMs: 60}},
				// A denied take spent nothing: at +100ms one unit is back.
				{60, 1, true, abi.RateResult{Remaining: 0, ResetMs: 200}},
				// +150ms: TAT 50ms ahead, one unit free, a second one 50ms off.
				{150, 1, true, abi.RateResult{Remaining: 0, ResetMs: 150}},
				// Long after the TAT: back to the full burst.
				{10_000, 1, true, abi.RateResult{Remaining: 1, ResetMs: 100}},
			},
		},
		{
			name: "cost 0 peeks", limit: 10, period: time.Second, burst: 3,
			steps: []rateStep{
				{0, 0, true, abi.RateResult{Remaining: 3, ResetMs: 0}},
				{0, 0, true, abi.RateResult{Remaining: 3, ResetMs: 0}}, // the peek spent nothing
				{0, 3, true, abi.RateResult{Remaining: 0, ResetMs: 300}},
				{0, 0, true, abi.RateResult{Remaining: 0, ResetMs: 300}}, // a peek at an empty bucket passes
				{0, 1, false, abi.RateResult{Remaining: 0, ResetMs: 300, RetryAfterMs: 100}},
			},
		},
		{
			name: "cost above burst", limit: 10, period: time.Second, burst: 2,
			steps: []rateStep{
				{0, 5, false, abi.RateResult{Remaining: 2, ResetMs: 0, RetryAfterMs: 300}},
				{0, 2, true, abi.RateResult{Remaining: 0, ResetMs: 200}}, // nothing was spent
			},
		},
		{
			name: "cost of several units", limit: 100, period: time.Second, burst: 10,
			steps: []rateStep{
				{0, 4, true, abi.RateResult{Remaining: 6, ResetMs: 40}},
				{0, 4, true, abi.RateResult{Remaining: 2, ResetMs: 80}},
				{0, 4, false, abi.RateResult{Remaining: 2, ResetMs: 80, RetryAfterMs: 20}},
				{5, 4, false, abi.RateResult{Remaining: 2, ResetMs: 75, RetryAfterMs: 15}},
				{15, 4, true, abi.RateResult{Remaining: 0, ResetMs: 100}},
			},
		},
		{
			// T = 333333333ns: times round up to the next millisecond.
			name: "uneven interval", limit: 3, period: time.Second, burst: 1,
			steps: []rateStep{
				{0, 1, true, abi.RateResult{Remaining: 0, ResetMs: 334}},
				{0, 1, false, abi.RateResult{Remaining: 0, ResetMs: 334, RetryAfterMs: 334}},
				{333, 1, false, abi.RateResult{Remaining: 0, ResetMs: 1, RetryAfterMs: 1}},
				{1, 1, true, abi.RateResult{Remaining: 0, ResetMs: 334}},
			},
		},
		{
			// period/limit under 1ns: the interval is clamped to 1ns.
			name: "interval under a nanosecond", limit: math.MaxInt32, period: time.Millisecond, burst: 2,
			steps: []rateStep{
				{0, 1, true, abi.RateResult{Remaining: 1, ResetMs: 1}},
				{0, 1, true, abi.RateResult{Remaining: 0, ResetMs: 1}},
				{0, 1, false, abi.RateResult{Remaining: 0, ResetMs: 1, RetryAfterMs: 1}},
			},
		},
		{
			// burst*T is 547 years, past int64 nanoseconds: the window is
			// capped at gcraMaxWindow (~73 years) instead of overflowing
			// into a negative tolerance that denied every take.
			name: "window past int64 nanoseconds", limit: 1, period: day, burst: 200_000,
			steps: []rateStep{
				{0, 1, true, abi.RateResult{Remaining: gcraMaxWindow/int64(day) - 1, ResetMs: day.Milliseconds()}},
			},
		},
		{
			// cost*T is far past int64 nanoseconds: it must not wrap into an allowed take.
			name: "huge cost", limit: 1, period: 400 * day, burst: 1,
			steps: []rateStep{
				{0, math.MaxInt32, false, abi.RateResult{Remaining: 1, ResetMs: 0, RetryAfterMs: ceilMs(gcraMaxWindow - int64(400*day))}},
				{0, 1, true, abi.RateResult{Remaining: 0, ResetMs: (400 * day).Milliseconds()}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clk := newTestGCRA(1024)
			key := []byte("k:" + tc.name)
			for i, st := range tc.steps {
				clk.advanceMs(st.advanceMs)
				ok, r := g.Take(key, tc.limit, tc.period, tc.burst, st.cost)
				if ok != st.allowed || r != st.want {
					t.Errorf("step %d (cost %d at +%s): got %v %+v, want %v %+v", i, st.cost, clk, ok, r, st.allowed, st.want)
				}
				if ok && r.RetryAfterMs != 0 {
					t.Errorf("step %d: allowed take with RetryAfterMs %d", i, r.RetryAfterMs)
				}
				if !ok && r.RetryAfterMs < 1 {
					t.Errorf("step %d: denied take with RetryAfterMs %d", i, r.RetryAfterMs)
				}
			}
		})
	}
}

// TestGCRARetryAfterIsExact checks RetryAfterMs against the limiter itself:
// the take is denied 1ms before it and allowed at it.
func TestGCRARetryAfterIsExact(t *testing.T) {
	for _, tc := range []struct {
		limit, burst, cost int32
		period             time.Duration
	}{
		{10, 2, 1, time.Second},
		{10, 5, 3, time.Second},
		{7, 3, 2, time.Second},
		{1, 1, 1, time.Minute},
	} {
		t.Run(fmt.Sprintf("%d/%s burst %d cost %d", tc.limit, tc.period, tc.burst, tc.cost), func(t *testing.T) {
			g, clk := newTestGCRA(1024)
			key := []byte("k")
			for { // exhaust
				if ok, _ := g.Take(key, tc.limit, tc.period, tc.burst, tc.cost); !ok {
					break
				}
			}
			_, r := g.Take(key, tc.limit, tc.period, tc.burst, tc.cost)
			clk.advanceMs(r.RetryAfterMs - 1)
			if ok, _ := g.Take(key, tc.limit, tc.period, tc.burst, tc.cost); ok {
				t.Fatalf("allowed 1ms before RetryAfterMs %d", r.RetryAfterMs)
			}
			clk.advanceMs(1)
			if ok, r2 := g.Take(key, tc.limit, tc.period, tc.burst, tc.cost); !ok {
				t.Fatalf("denied at RetryAfterMs %d: %+v", r.RetryAfterMs, r2)
			}
		})
	}
}

func TestGCRAIndependentKeys(t *testing.T) {
	g, _ := newTestGCRA(1024)
	a, b := []byte("tenant-a"), []byte("tenant-b")
	if ok, _ := g.Take(a, 1, time.Minute, 1, 1); !ok {
		t.Fatal("first take of a denied")
	}
	if ok, _ := g.Take(a, 1, time.Minute, 1, 1); ok {
		t.Fatal("second take of a allowed")
	}
	ok, r := g.Take(b, 1, time.Minute, 1, 1)
	if !ok || r.Remaining != 0 || r.ResetMs != 60_000 {
		t.Fatalf("b after a was exhausted: %v %+v, want a full bucket of its own", ok, r)
	}
	if n := g.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

// TestGCRAPeekDoesNotInsert: a peek at an absent key stores nothing, so a
// flood of peeks cannot push live keys out.
func TestGCRAPeekDoesNotInsert(t *testing.T) {
	g, _ := newTestGCRA(0)
	for i := range 100 {
		if ok, r := g.Take([]byte(strconv.Itoa(i)), 1, time.Second, 4, 0); !ok || r.Remaining != 4 {
			t.Fatalf("peek %d: %v %+v", i, ok, r)
		}
	}
	if n := g.Len(); n != 0 {
		t.Fatalf("Len after peeks = %d, want 0", n)
	}
}

func TestGCRAKeyBound(t *testing.T) {
	for _, maxKeys := range []int{0, 100, 1024, 4096, 10_000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			g, _ := newTestGCRA(maxKeys)
			bound := gcraBound(maxKeys)
			flood := 5 * bound
			var key []byte
			for i := range flood {
				key = strconv.AppendInt(key[:0], int64(i), 36)
				// A long period: no key expires during the flood.
				if ok, _ := g.Take(key, 1, time.Hour, 1, 1); !ok {
					t.Fatalf("fresh key %d denied: a full shard must drop keys, not deny", i)
				}
				if i%1000 == 0 {
					if n := g.Len(); n > bound {
						t.Fatalf("after %d keys Len = %d > bound %d", i+1, n, bound)
					}
				}
			}
			n := g.Len()
			if n > bound {
				t.Fatalf("Len = %d > bound %d", n, bound)
			}
			// Every shard received ~5*perShard keys, so each is full.
			if n < bound*9/10 {
				t.Errorf("Len = %d, want close to the bound %d", n, bound)
			}
			// The last key inserted is still tracked.
			if ok, _ := g.Take(key, 1, time.Hour, 1, 1); ok {
				t.Error("the newest key was dropped")
			}
		})
	}
}

// sameShardKeys returns n distinct keys that hash to one shard of g.
func sameShardKeys(g *GCRA, n int) [][]byte {
	var keys [][]byte
	var shard uint64
	for i := 0; len(keys) < n; i++ {
		k := []byte("key-" + strconv.Itoa(i))
		sh := maphash.Bytes(g.seed, k) % gcraShards
		if len(keys) == 0 {
			shard = sh
		}
		if sh == shard {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestGCRAExpiredKeysDropped(t *testing.T) {
	for _, tc := range []struct {
		expired, want int
	}{
		// makeRoom inspects 8 keys per insert: every one of them expired.
		{expired: 3, want: 1},
		{expired: 8, want: 1},
		{expired: 20, want: 20 - 8 + 1},
	} {
		t.Run(strconv.Itoa(tc.expired), func(t *testing.T) {
			g, clk := newTestGCRA(64 * 64) // 64 per shard: no eviction for room
			keys := sameShardKeys(g, tc.expired+1)
			for _, k := range keys[:tc.expired] {
				g.Take(k, 1, time.Second, 1, 1)
			}
			if n := g.Len(); n != tc.expired {
				t.Fatalf("Len = %d, want %d", n, tc.expired)
			}
			clk.advance(time.Second + 1) // every TAT has passed
			g.Take(keys[tc.expired], 1, time.Second, 1, 1)
			if n := g.Len(); n != tc.want {
				t.Fatalf("Len after an insert = %d, want %d", n, tc.want)
			}
		})
	}
}

// TestGCRAExpiredKeyIsFresh: a key whose TAT passed is at its full burst.
func TestGCRAExpiredKeyIsFresh(t *testing.T) {
	g, clk := newTestGCRA(1024)
	k := []byte("k")
	for range 3 {
		g.Take(k, 3, time.Second, 3, 1)
	}
	clk.advance(time.Second + 1)
	ok, r := g.Take(k, 3, time.Second, 3, 1)
	if !ok || r.Remaining != 2 {
		t.Fatalf("after expiry: %v %+v, want allowed with Remaining 2", ok, r)
	}
}

// TestGCRAConcurrentExact: at one instant, exactly burst takes pass however
// many goroutines race for them.
func TestGCRAConcurrentExact(t *testing.T) {
	g, _ := newTestGCRA(1024)
	const burst, workers, each = 500, 8, 200
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			other := []byte("other-" + strconv.Itoa(w))
			for range each {
				if ok, _ := g.Take([]byte("shared"), 1, time.Hour, burst, 1); ok {
					allowed.Add(1)
				}
				g.Take(other, 1, time.Hour, burst, 1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != burst {
		t.Fatalf("%d takes allowed, want exactly %d", n, burst)
	}
}

func TestGCRADefaultClock(t *testing.T) {
	g := NewGCRA(16)
	if g.now != nil {
		t.Fatal("NewGCRA set a test clock")
	}
	a, b := g.clock(), g.clock()
	if a < 0 || b < a {
		t.Fatalf("clock not monotonic: %d then %d", a, b)
	}
	ok, r := g.Take([]byte("k"), 1, time.Hour, 1, 1)
	if !ok || r.ResetMs < 3_599_000 || r.ResetMs > 3_600_000 {
		t.Fatalf("real clock take: %v %+v", ok, r)
	}
}
