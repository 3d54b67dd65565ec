package main

import (
	"testing"
	"time"
)

// TestTickerPacesBelowAMillisecond: the dispatcher's ticker falls due every
// 100 us. time.Sleep could not pace it so: with nothing else to run, the
// runtime waits for a timer in epoll_wait, whose timeout is whole
// milliseconds. The check counts the ticks the kernel says fell due, not
// the gaps between wake-ups, so a busy machine that wakes the test late
// cannot fail it: late reads return several ticks at once.
func TestTickerPacesBelowAMillisecond(t *testing.T) {
	const tick = 100 * time.Microsecond
	start := time.Now()
	tk, err := newTicker(start, tick)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.stop()
	var due uint64
	var before time.Duration
	for due < 50 {
		before = time.Since(start)
		n, err := tk.wait()
		if err != nil {
			t.Fatal(err)
		}
		due += n
	}
	// Every tick that fell due before the last read began was counted by it.
	if want := uint64(before/tick) - 1; due < want {
		t.Fatalf("%d ticks of %v fell due in %v, want at least %d", due, tick, before, want)
	}
}
