package main

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU reports the process's CPU time per op (cpu-ns/op), the
// guest's GC and the host's included, which a busy neighbour does not
// inflate the way it does wall time. Defer the function it returns.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() { b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
