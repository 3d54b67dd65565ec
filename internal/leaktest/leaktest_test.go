package leaktest

import (
	"testing"
	"time"
)

// parked blocks until release is closed: a goroutine with a known frame.
func parked(release <-chan struct{}) { <-release }

// TestStacks finds a goroutine by a function on its stack, not the
// caller's own goroutine, and nothing once that goroutine has returned.
func TestStacks(t *testing.T) {
	if left := Stacks("leaktest.TestStacks"); len(left) != 0 {
		t.Fatalf("the caller's own goroutine was counted:\n%s", left[0])
	}
	release, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); parked(release) }()
	for deadline := time.Now().Add(time.Minute); len(Stacks("leaktest.parked")) != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the parked goroutine was never found")
		}
	}
	close(release)
	<-done
	Check(t, time.Minute, "leaktest.parked")
}
