package host

import (
	"fmt"
	"testing"
	"time"
)

func TestKeyScope(t *testing.T) {
	for key, want := range map[string]Scope{
		"": ScopePOP, "ratelimit\x00a\x00ki": ScopePOP, "@other:x": ScopePOP, "@region": ScopePOP,
		"@region:ratelimit": ScopeRegion, "@global:ratelimit": ScopeGlobal,
	} {
		if got := KeyScope([]byte(key)); got != want {
			t.Errorf("KeyScope(%q) = %d, want %d", key, got, want)
		}
	}
}

// TestSharedCharge: what other POPs spent counts against a shared key, up
// to two periods ahead; a POP key is never shared.
func TestSharedCharge(t *testing.T) {
	g, clk := newTestGCRA(1024)
	s := NewShared(g)
	key := []byte("@global:k")
	s.Charge(key, 10, time.Second, 9) // 9 of 10 spent elsewhere
	if ok, _ := s.Take(key, 10, time.Second, 10, 1); !ok {
		t.Fatal("the 10th unit refused")
	}
	if ok, r := s.Take(key, 10, time.Second, 10, 1); ok {
		t.Fatalf("an 11th unit allowed: %+v", r)
	}
	s.Charge(key, 10, time.Second, 1_000_000)
	clk.advance(2 * time.Second)
	if ok, _ := s.Take(key, 10, time.Second, 10, 1); !ok {
		t.Fatal("a huge charge locked the key past two periods")
	}
}

// TestSharedUsage: only shared keys' allowed takes are kept for the
// exchange, and only while it runs.
func TestSharedUsage(t *testing.T) {
	g, _ := newTestGCRA(1024)
	s := NewShared(g)
	s.Take([]byte("@region:z"), 10, time.Second, 10, 1) // not syncing: not kept
	s.SetSyncing(true)
	for range 3 {
		s.Take([]byte("@region:a"), 10, time.Second, 2, 1) // the third is refused
	}
	s.Take([]byte("@global:b"), 10, time.Second, 10, 4)
	s.Take([]byte("pop"), 10, time.Second, 10, 1)
	got := map[string]Usage{}
	s.Drain(func(sc Scope, key string, u Usage) { got[key] = u })
	want := map[string]Usage{"@region:a": {10, time.Second, 2}, "@global:b": {10, time.Second, 4}}
	if len(got) != len(want) || got["@region:a"] != want["@region:a"] || got["@global:b"] != want["@global:b"] {
		t.Fatalf("drained %v, want %v", got, want)
	}
	s.Drain(func(sc Scope, key string, u Usage) { t.Errorf("drained %q again", key) })
	s.Drain(func(Scope, string, Usage) {})
	if len(s.usage) != 0 {
		t.Errorf("idle keys kept: %d", len(s.usage))
	}
}

// TestSharedShare: cut off, each POP enforces limit/n, from the state the
// key already had.
func TestSharedShare(t *testing.T) {
	g, clk := newTestGCRA(1024)
	s := NewShared(g)
	s.SetShare(ScopeRegion, 3)
	key := []byte("@region:k")
	n := 0
	for range 100 {
		if ok, _ := s.Take(key, 30, 3*time.Second, 30, 1); ok {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("share of 3 admitted %d at once, want 10 (burst 30/3)", n)
	}
	clk.advance(3 * time.Second)
	if ok, _ := s.Take([]byte("pop"), 1, time.Second, 1, 1); !ok || s.Share(ScopePOP) != 1 {
		t.Fatal("a POP key was affected")
	}
	n = 0
	for range 100 {
		if ok, _ := s.Take(key, 30, 3*time.Second, 30, 1); ok {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("after a period the share admitted %d, want 10", n)
	}
}

func TestSharedTakeAllocs(t *testing.T) {
	s := NewShared(NewGCRA(1024))
	s.SetSyncing(true)
	key := []byte("@region:ratelimit\x00p\x00kalice")
	s.Take(key, 1<<30, time.Second, 1<<30, 1)
	if n := testing.AllocsPerRun(100, func() { s.Take(key, 1<<30, time.Second, 1<<30, 1) }); n != 0 {
		t.Errorf("a take on a known shared key allocates %.1f times", n)
	}
}

// BenchmarkSharedTake is the request-path cost of a region-scoped take
// (GCRA plus the usage kept for the exchange) against a POP-scoped one.
func BenchmarkSharedTake(b *testing.B) {
	for _, key := range []string{"ratelimit\x00p\x00kalice", "@region:ratelimit\x00p\x00kalice"} {
		name := map[Scope]string{ScopePOP: "pop", ScopeRegion: "region"}[KeyScope([]byte(key))]
		b.Run(name, func(b *testing.B) {
			s := NewShared(NewGCRA(1 << 16))
			s.SetSyncing(true)
			k := []byte(key)
			b.ReportAllocs()
			for b.Loop() {
				s.Take(k, 1<<30, time.Second, 1<<30, 1)
			}
		})
	}
}

// TestSharedDrainUnlocked: takes do not wait for f, which encodes a batch.
func TestSharedDrainUnlocked(t *testing.T) {
	s := NewShared(NewGCRA(1024))
	s.SetSyncing(true)
	s.Take([]byte("@region:a"), 10, time.Second, 10, 1)
	n := 0
	s.Drain(func(Scope, string, Usage) {
		n++
		if !s.mu.TryLock() {
			t.Fatal("Drain holds the usage lock while f runs")
		}
		s.mu.Unlock()
	})
	if n != 1 {
		t.Fatalf("drained %d keys, want 1", n)
	}
}

// TestSharedUsageCap: past MaxUsageKeys new keys are decided but not kept,
// and counted.
func TestSharedUsageCap(t *testing.T) {
	s := NewShared(NewGCRA(1024))
	s.SetSyncing(true)
	key := []byte("@global:k00000000")
	for i := range MaxUsageKeys + 10 {
		key = fmt.Appendf(key[:len("@global:k")], "%08d", i)
		if ok, _ := s.Take(key, 10, time.Second, 10, 1); !ok {
			t.Fatalf("take %d refused", i)
		}
	}
	n := 0
	s.Drain(func(Scope, string, Usage) { n++ })
	if n != MaxUsageKeys || s.Dropped(DroppedUsage) != 10 {
		t.Fatalf("kept %d keys, dropped %d; want %d and 10", n, s.Dropped(DroppedUsage), MaxUsageKeys)
	}
}

// TestSharedChargeForged: a peer's entry claiming limit 1 per 400 days
// locks a key for two MaxChargePeriods at most.
func TestSharedChargeForged(t *testing.T) {
	g, clk := newTestGCRA(1024)
	s := NewShared(g)
	key := []byte("@global:victim")
	s.Charge(key, 1, 400*24*time.Hour, 1)
	if ok, _ := s.Take(key, 10, time.Second, 10, 1); ok {
		t.Fatal("the charge did not count")
	}
	clk.advance(2*MaxChargePeriod + time.Millisecond)
	if ok, _ := s.Take(key, 10, time.Second, 10, 1); !ok {
		t.Fatal("a forged charge locked the key past 2 x MaxChargePeriod")
	}
}

// TestSharedChargeFlood: charges to many new keys never evict a live key;
// those that find no room are dropped and counted.
func TestSharedChargeFlood(t *testing.T) {
	g, _ := newTestGCRA(1024)
	s := NewShared(g)
	live := []byte("@global:live")
	for range 10 {
		s.Take(live, 10, time.Minute, 10, 1)
	}
	for i := range 10 * gcraBound(1024) {
		s.Charge(fmt.Appendf(nil, "@global:flood%d", i), 10, time.Minute, 1)
	}
	if ok, _ := s.Take(live, 10, time.Minute, 10, 1); ok {
		t.Fatal("a flood of charges evicted a live key: its burst is back")
	}
	if s.Dropped(DroppedCharge) == 0 || g.Len() > gcraBound(1024) {
		t.Fatalf("dropped %d charges, %d keys kept", s.Dropped(DroppedCharge), g.Len())
	}
}

// TestSharedChargeNeverRefunds: a peer's charge never moves a key back.
// A day's quota spent here ran the key a day ahead; a charge of one unit
// capped two MaxChargePeriods ahead pulled it back, and the client got 18
// of 20 again, batch after batch (92 of a region's 20 a day in 10 s).
func TestSharedChargeNeverRefunds(t *testing.T) {
	g, _ := newTestGCRA(1024)
	s := NewShared(g)
	key := []byte("@region:daily")
	const limit, period = 20, 24 * time.Hour
	for range limit {
		if ok, _ := s.Take(key, limit, period, limit, 1); !ok {
			t.Fatal("the quota refused before it was spent")
		}
	}
	s.Charge(key, limit, period, 1)
	if ok, r := s.Take(key, limit, period, limit, 1); ok || r.Remaining != 0 {
		t.Fatalf("after a peer's charge of one: admitted %v, remaining %d; want the spent quota to stay spent", ok, r.Remaining)
	}
}

// TestSharedShareLongPeriod: a long period's share on a large fleet (a
// year across 300 POPs) saturates rather than overflowing to a negative
// period, which admitted everything.
func TestSharedShareLongPeriod(t *testing.T) {
	g, clk := newTestGCRA(1024)
	s := NewShared(g)
	s.SetShare(ScopeGlobal, 300)
	key := []byte("@global:yearly")
	admitted := 0
	for range 1000 {
		if ok, _ := s.Take(key, 1000, 365*24*time.Hour, 10, 1); ok {
			admitted++
		}
		clk.advance(time.Millisecond) // a request a millisecond
	}
	if admitted != 1 {
		t.Fatalf("a cut-off POP's share of 1000 a year (burst 10, 300 POPs) admitted %d of 1000, want 1", admitted)
	}
}

// TestRemainingNeverNegative: a key a peer ran past its burst has none
// remaining, not a negative count.
func TestRemainingNeverNegative(t *testing.T) {
	g, _ := newTestGCRA(1024)
	s := NewShared(g)
	key := []byte("@region:reg")
	s.Charge(key, 60, 10*time.Second, 30) // half a minute's worth: past the burst of 10
	if ok, r := s.Take(key, 60, 10*time.Second, 10, 1); ok || r.Remaining != 0 {
		t.Fatalf("admitted %v, remaining %d; want refused with 0", ok, r.Remaining)
	}
}
