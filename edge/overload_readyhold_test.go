package edge

import (
	"testing"
	"time"
)

// TestReadyHoldFromTheShedSampled: TestReadyHoldFromTheShed's case where
// the first to see the sheds after the traffic stopped is not a /ready
// poll but the next request's sample. shedding() dates such sheds no later
// than the sample that was due after them; sample() dated them at itself,
// so a request 2 s after the last shed (ready_hold 1 s) put /ready back to
// 503 "overloaded" for a whole ready_hold, though nothing was shed for 2 s
// (a load balancer that polls less often than requests come then pulled a
// node that was not shedding).
func TestReadyHoldFromTheShedSampled(t *testing.T) {
	o, _ := newOverload(OverloadConfig{ReadyHold: Duration(time.Second), TargetDelay: Duration(time.Hour), QueueDelay: Duration(time.Hour)})
	now := sinceStart()
	o.sample(now)
	// The last sample 2 s ago, a shed just after it, then no request
	// (and no /ready poll) until the one that samples now.
	o.next.Add(-int64(2 * time.Second))
	o.shedN.Add(1)
	o.sample(sinceStart())
	if why, shedding := o.shedding(); shedding {
		t.Fatalf("/ready 2 s after the last shed (ready_hold 1 s), the first request since sampled: %q", why)
	}
}
