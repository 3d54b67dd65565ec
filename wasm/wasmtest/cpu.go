package wasmtest

import (
	"syscall"
	"testing"
)

// ReportCPU reports the CPU time the process used per benchmark op, as
// cpu-ns/op: the guest's GC and the host's included. On a shared machine a
// benchmark's wall time counts the time it waited for a core; its CPU time
// does not. Defer the function it returns:
//
//	defer wasmtest.ReportCPU(b)()
func ReportCPU(b *testing.B) func() {
	start := processCPU(b)
	return func() { b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op") }
}

func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
