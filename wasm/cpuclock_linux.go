//go:build linux

package wasm

import "golang.org/x/sys/unix"

// haveThreadClock says whether deadlines can count CPU time (see
// instance.overtime); without a thread clock they run on the wall clock.
const haveThreadClock = true

// threadCPU is the CPU time the calling thread has used, in nanoseconds. It
// is a system call (some 0.2 us here, more than a whole plugin call), so the
// call path reads it only once a call has outlasted a quarter of its deadline.
func threadCPU() (int64, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0, false
	}
	return ts.Nano(), true
}
