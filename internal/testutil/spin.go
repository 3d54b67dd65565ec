package testutil

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// SpinCPUs keeps every CPU the process may use busy, four spinning
// goroutines per GOMAXPROCS, until the stop it returns is called or the
// test ends: how a test makes a node's CPU fall behind.
func SpinCPUs(t testing.TB) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for !done.Load() {
				// Spins; the runtime preempts it every 10ms.
			}
		})
	}
	stop = sync.OnceFunc(func() {
		done.Store(true)
		wg.Wait()
	})
	t.Cleanup(stop)
	return stop
}
