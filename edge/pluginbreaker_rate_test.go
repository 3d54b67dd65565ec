package edge

import (
	"testing"
	"time"
)

// TestReviewBreakerSporadicTimeouts: a version at 1000 requests a second
// whose calls run out of their deadline once in 2000 (0.05%, a GC pause or
// a neighbour's stall: well within any rollout gate) opens its breaker,
// which then fails every request for open_for, counted as the version's
// failures: 5 timeouts turn into thousands of failure answers (503s where
// it fails closed) and an error rate that rolls a healthy canary back.
func TestReviewBreakerSporadicTimeouts(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{}) // the defaults: 5 in 10 s, open 5 s
	timeouts, failed := 0, 0
	for i := range 20000 { // 20 s at 1000/s
		var err error
		if i%2000 == 1999 {
			err = errOvertime
			timeouts++
		}
		if called, _ := f.call(err); !called {
			failed++
		}
		f.advance(time.Millisecond)
	}
	if failed > 0 {
		t.Fatalf("%d timeouts in 20000 calls (%.2f%%) made the breaker skip %d calls (each a failure for the gates, a 503 where fail-closed); opens %v",
			timeouts, 100*float64(timeouts)/20000, failed, value(f.s.opens))
	}
}
