package edge

import (
	"testing"
	"time"
)

// TestReviewBreakerStaleProbeKeepsClosed: a probe replaced after OpenFor
// (its deadline is longer than open_for, or it waited for an instance)
// that ends after its replacement closed the breaker is stale: one
// timeout of it must not open a closed breaker that needs Failures.
func TestReviewBreakerStaleProbeKeepsClosed(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 5, OpenFor: Duration(time.Second)})
	for range 5 {
		f.call(errOvertime)
	}
	f.want(t, breakerOpen, 1, 0)
	f.advance(time.Second)
	c1, p1 := f.allow() // the first probe, slow
	if !c1 || p1 == 0 {
		t.Fatal("no first probe")
	}
	f.advance(time.Second)
	c2, p2 := f.allow() // its replacement
	if !c2 || p2 == 0 {
		t.Fatal("no replacement probe")
	}
	f.done(p2, nil) // the replacement ends in time: closed
	f.want(t, breakerClosed, 1, 0)
	f.done(p1, errOvertime) // the stale first probe runs out of its deadline
	if s := f.state.Load(); s != breakerClosed {
		t.Fatalf("a stale probe's single timeout moved a closed breaker to state %d (opens %v): closed needs %d timeouts in the window",
			s, value(f.s.opens), 5)
	}
}
