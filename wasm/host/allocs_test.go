//go:build !race

package host

import (
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

// TestHotPathsDoNotAllocate: the host functions a plugin calls on every
// request allocate nothing once warm.
func TestHotPathsDoNotAllocate(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	c := f.call
	long := "X-A-Header-Name-Longer-Than-Thirty-Two-Bytes"
	f.ex.Req.Header.Add(long, "long")
	f.ex.Vals.Set([]byte("user"), []byte("alice"), 0)
	esKey := keyForms(abi.AlgES256)[0]
	es := f.env.Keys.Register(abi.AlgES256, esKey.format, esKey.data)
	rsKey := keyForms(abi.AlgRS256)[0]
	rs := f.env.Keys.Register(abi.AlgRS256, rsKey.format, rsKey.data)
	msg := []byte("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9")
	mac := fixtureMAC(msg)
	esSig, rsSig := sign(t, abi.AlgES256, msg), sign(t, abi.AlgRS256, msg)
	mc := NewMemCache(1 << 20)
	mc.Set([]byte("/cached"), testEntry(time.Hour, 0, "body", "tag"))
	f.env.Cache = mc
	buf := make([]byte, 256)
	var rr [abi.RateResultSize]byte
	// Arguments are built once, as a guest passes views of its memory: a
	// []byte("...") in the closure would allocate, since it escapes through
	// the Exchange, Cache and Limiter interfaces.
	b := func(s string) []byte { return []byte(s) }
	xa, longName, absent, user, existing, cached := b("x-a"), b(long), b("absent"), b("user"), b("existing"), b("/cached")

	for _, tc := range []struct {
		name string
		fn   func() int32
		want int32
	}{
		{"HeaderGet", func() int32 { return c.HeaderGet(abi.MsgRequest, xa, buf) }, 1},
		{"HeaderGet long name", func() int32 { return c.HeaderGet(abi.MsgRequest, longName, buf) }, 4},
		{"HeaderGet miss", func() int32 { return c.HeaderGet(abi.MsgRequest, absent, buf) }, abi.ErrNotFound},
		{"Verify HS256", func() int32 { return c.Verify(0, msg, mac) }, 1},
		{"Verify HS256 bad", func() int32 { return c.Verify(0, msg, rr[:]) }, 0},
		{"Verify ES256 cache hit", func() int32 { return c.Verify(es, msg, esSig) }, 1},
		{"Verify RS256 cache hit", func() int32 { return c.Verify(rs, msg, rsSig) }, 1},
		{"RatelimitTake", func() int32 { return c.RatelimitTake(existing, 1_000_000, 1000, 1_000_000, 1, rr[:]) }, 1},
		{"ValueGet", func() int32 { return c.ValueGet(user, buf) }, 5},
		{"ValueGet miss", func() int32 { return c.ValueGet(absent, buf) }, abi.ErrNotFound},
		{"CacheLookup hit", func() int32 { return c.CacheLookup(cached, buf) }, abi.CacheInfoSize + 4},
		{"StatusGet", func() int32 { return c.StatusGet() }, 0},
		{"Digest", func() int32 { return c.Digest(abi.DigestSHA256, msg, buf) }, 32},
		{"Digest keyed", func() int32 { return c.Digest(abi.DigestKeyed, msg, buf) }, 32},
		{"HeaderValues", func() int32 { return c.HeaderValues(abi.MsgRequest, xa, buf) }, 2},
		{"HeaderNames", func() int32 { return c.HeaderNames(abi.MsgRequest, buf) }, int32(len("X-A\x00" + long + "\x00"))},
		{"MetricRecord", func() int32 { return c.MetricRecord(0, 1) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 3 { // warm up: key creation, hash pool, scratch, verify cache
				if got := tc.fn(); got != tc.want {
					t.Fatalf("= %d, want %d", got, tc.want)
				}
			}
			if a := testing.AllocsPerRun(200, func() { tc.fn() }); a != 0 {
				t.Errorf("%.1f allocations per call", a)
			}
		})
	}

	for _, tc := range []struct {
		name string
		key  string
		ok   bool
	}{{"MemCache.Get hit", "/cached", true}, {"MemCache.Get miss", "/absent", false}} {
		t.Run(tc.name, func(t *testing.T) {
			k := []byte(tc.key)
			if _, ok := mc.Get(k); ok != tc.ok {
				t.Fatalf("Get = %v", ok)
			}
			if a := testing.AllocsPerRun(200, func() { mc.Get(k) }); a != 0 {
				t.Errorf("%.1f allocations per call", a)
			}
		})
	}

	t.Run("GCRA.Take existing key", func(t *testing.T) {
		g := NewGCRA(1024) // the real clock
		k := []byte("existing")
		g.Take(k, 1_000_000, time.Second, 1_000_000, 1)
		if a := testing.AllocsPerRun(200, func() { g.Take(k, 1_000_000, time.Second, 1_000_000, 1) }); a != 0 {
			t.Errorf("%.1f allocations per call", a)
		}
	})
}
