package edge

import (
	"bytes"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/wire"
)

// TestTierStatus: the first member of a Cache-Status field line is named
// for the tier, whether a token or a quoted string.
func TestTierStatus(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"wedge; hit", "wedge-tier; hit"},
		{"wedge", "wedge-tier"},
		{"wedge; fwd=uri-miss; stored, other; hit", "wedge-tier; fwd=uri-miss; stored, other; hit"},
		{`"my cache"; hit`, `"my cache-tier"; hit`},
		{`"unterminated`, `"unterminated`},
		{"", "-tier"},
	} {
		if got := string(appendTierStatus(nil, []byte(c.in), "-tier")); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// TestTakeTierValues: the tier values come off the request, the others
// stay in order; a missing or malformed one is refused.
func TestTakeTierValues(t *testing.T) {
	var r wire.Request
	r.AddValue([]byte("user"), []byte("alice"))
	r.AddValue([]byte(tierRouteValue), []byte("r0"))
	r.AddValue([]byte(tierStepValue), []byte("2:cache"))
	r.AddValue([]byte(tierHopValue), []byte(hopShield))
	r.AddValue([]byte("tenant"), []byte("t1"))
	r.AddValue([]byte(tierPurgeValue), []byte("42"))
	v, ok := takeTierValues(&r)
	if want := (tierValues{step: tierStep{route: "r0", index: 2, name: "cache"}, hop: hopShield, purge: 42}); !ok || v != want {
		t.Fatalf("got %+v %v", v, ok)
	}
	if len(r.Values) != 2 || string(r.Values[0].Value) != "alice" || string(r.Values[1].Value) != "t1" {
		t.Fatalf("values left: %q", r.Values)
	}
	for _, bad := range [][4]string{
		{"r0", "0:", hopRegion, "1"},
		{"r0", "cache", hopRegion, "1"},
		{"r0", "-1:cache", hopRegion, "1"},
		{"r0", "99999:cache", hopRegion, "1"},
		{"r0", "0:cache", "elsewhere", "1"},
		{"r0", "0:cache", hopRegion, "-1"},
		{"r0", "0:cache", hopRegion, ""},
	} {
		var r wire.Request
		r.AddValue([]byte(tierRouteValue), []byte(bad[0]))
		r.AddValue([]byte(tierStepValue), []byte(bad[1]))
		r.AddValue([]byte(tierHopValue), []byte(bad[2]))
		r.AddValue([]byte(tierPurgeValue), []byte(bad[3]))
		if _, ok := takeTierValues(&r); ok {
			t.Errorf("%q taken", bad)
		}
	}
	// The budget is optional; one that is sent must be a number, and one
	// too large for a Duration is capped.
	for budget, want := range map[string]time.Duration{"": -1, "-5": -1, "2.5": -1, "1500000": 1500 * time.Millisecond,
		"99999999999999999999": -1, "18446744073709551615": math.MaxInt64 / 1000 * time.Microsecond} {
		var r wire.Request
		r.AddValue([]byte(tierRouteValue), []byte("r0"))
		r.AddValue([]byte(tierStepValue), []byte("0:cache"))
		r.AddValue([]byte(tierHopValue), []byte(hopRegion))
		r.AddValue([]byte(tierPurgeValue), []byte("1"))
		r.AddValue([]byte(tierBudgetValue), []byte(budget))
		v, ok := takeTierValues(&r)
		if ok != (want >= 0) || ok && v.budget != want || len(r.Values) != 0 {
			t.Errorf("budget %q: %v %v, %d values left; want %v", budget, v.budget, ok, len(r.Values), want)
		}
	}
	var noRoute wire.Request
	noRoute.AddValue([]byte(tierStepValue), []byte("0:cache"))
	noRoute.AddValue([]byte(tierHopValue), []byte(hopRegion))
	noRoute.AddValue([]byte(tierPurgeValue), []byte("1"))
	if _, ok := takeTierValues(&noRoute); ok {
		t.Error("an ask naming no route taken")
	}
}

// FuzzTakeTierValues: whatever values an ask carries, taking the tier
// values off never panics, leaves none of them, and keeps the others.
func FuzzTakeTierValues(f *testing.F) {
	f.Add([]byte("r"), []byte("0:cache"), []byte("region"), []byte("0"), []byte("1500000"), []byte("user"))
	f.Add([]byte(""), []byte(":"), []byte("shield"), []byte("18446744073709551615"), []byte("18446744073709551615"), []byte(tierStepValue))
	f.Add([]byte("r"), []byte("70000:x"), []byte("region"), []byte("99999999999999999999"), []byte("-1"), []byte(tierBudgetValue))
	f.Fuzz(func(t *testing.T, route, step, hop, purge, budget, other []byte) {
		var r wire.Request
		r.AddValue(other, step)
		r.AddValue([]byte(tierRouteValue), route)
		r.AddValue([]byte(tierStepValue), step)
		r.AddValue([]byte(tierHopValue), hop)
		r.AddValue([]byte(tierPurgeValue), purge)
		r.AddValue([]byte(tierBudgetValue), budget)
		r.AddValue(other, hop)
		if v, ok := takeTierValues(&r); ok && v.budget < 0 {
			t.Fatalf("budget %q taken as %v", budget, v.budget)
		}
		isTier := func(name string) bool {
			switch name {
			case tierRouteValue, tierStepValue, tierHopValue, tierPurgeValue, tierBudgetValue:
				return true
			}
			return false
		}
		for _, v := range r.Values {
			if isTier(string(v.Name)) {
				t.Fatalf("%q left", v.Name)
			}
		}
		if !isTier(string(other)) && len(r.Values) != 2 {
			t.Fatalf("%d values left, want the 2 others", len(r.Values))
		}
	})
}

// TestWaitPurged: an ask ahead of the owner's purge position waits for
// the owner to catch up, whenever that happens within the wait, and
// gives up at its deadline.
func TestWaitPurged(t *testing.T) {
	tr := &tier{caught: make(chan struct{})}
	tr.setPurged(3)
	if !tr.waitPurged(2, time.Now().Add(time.Hour)) {
		t.Error("an owner ahead waited")
	}
	done := make(chan bool)
	go func() { done <- tr.waitPurged(5, time.Now().Add(time.Hour)) }()
	tr.setPurged(5) // before or during the wait: either way it is seen
	if !<-done {
		t.Error("the wait missed the owner catching up")
	}
	if tr.waitPurged(6, time.Now()) {
		t.Error("an owner behind answered past the deadline")
	}
}

// TestClientIP: the owner hashes an ask's client address as the POP the
// client reached does (net.IP.To4 of the connection's address; an IPv6
// one's /64), so a canary's address split puts the client on the same
// side at both.
func TestClientIP(t *testing.T) {
	for _, s := range []string{"192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", "2001:db8::ffff:1:2:3"} {
		var buf [16]byte
		got := clientIP(netip.MustParseAddr(s), &buf)
		want := net.ParseIP(s) // 16 bytes, as a connection's may be
		if v4 := want.To4(); v4 != nil {
			want = v4
		} else {
			want = want[:8]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %v, want %v", s, got, []byte(want))
		}
	}
}
