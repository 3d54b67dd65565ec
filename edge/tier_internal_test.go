package edge

import (
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
	r.AddValue([]byte(tierStepValue), []byte("cache"))
	r.AddValue([]byte(tierHopValue), []byte(hopShield))
	r.AddValue([]byte("tenant"), []byte("t1"))
	r.AddValue([]byte(tierPurgeValue), []byte("42"))
	step, hop, purge, ok := takeTierValues(&r)
	if !ok || step != "cache" || hop != hopShield || purge != 42 {
		t.Fatalf("got %q %q %d %v", step, hop, purge, ok)
	}
	if len(r.Values) != 2 || string(r.Values[0].Value) != "alice" || string(r.Values[1].Value) != "t1" {
		t.Fatalf("values left: %q", r.Values)
	}
	for _, bad := range [][3]string{
		{"", hopRegion, "1"},
		{"cache", "elsewhere", "1"},
		{"cache", hopRegion, "-1"},
		{"cache", hopRegion, ""},
	} {
		var r wire.Request
		r.AddValue([]byte(tierStepValue), []byte(bad[0]))
		r.AddValue([]byte(tierHopValue), []byte(bad[1]))
		r.AddValue([]byte(tierPurgeValue), []byte(bad[2]))
		if _, _, _, ok := takeTierValues(&r); ok {
			t.Errorf("%q taken", bad)
		}
	}
}

// FuzzTakeTierValues: whatever values an ask carries, taking the tier
// values off never panics, leaves none of them, and keeps the others.
func FuzzTakeTierValues(f *testing.F) {
	f.Add([]byte("cache"), []byte("region"), []byte("0"), []byte("user"))
	f.Add([]byte(""), []byte("shield"), []byte("18446744073709551615"), []byte(tierStepValue))
	f.Add([]byte("x"), []byte("region"), []byte("99999999999999999999"), []byte(""))
	f.Fuzz(func(t *testing.T, step, hop, purge, other []byte) {
		var r wire.Request
		r.AddValue(other, step)
		r.AddValue([]byte(tierStepValue), step)
		r.AddValue([]byte(tierHopValue), hop)
		r.AddValue([]byte(tierPurgeValue), purge)
		r.AddValue(other, hop)
		takeTierValues(&r)
		for _, v := range r.Values {
			switch string(v.Name) {
			case tierStepValue, tierHopValue, tierPurgeValue:
				t.Fatalf("%q left", v.Name)
			}
		}
		if tier := string(other) == tierStepValue || string(other) == tierHopValue || string(other) == tierPurgeValue; !tier && len(r.Values) != 2 {
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
