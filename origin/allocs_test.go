//go:build !race

package origin

import "testing"

// TestServerExchangeAllocs holds the steady-state exchange to its budget:
// the handler's context, which must not outlive the exchange's own
// references, and the goroutine the handler runs on.
func TestServerExchangeAllocs(t *testing.T) {
	be := newBenchExchange(t)
	be.run()
	be.check(t)
	if n := testing.AllocsPerRun(200, be.run); n > 2 {
		t.Errorf("%v allocations per exchange, budget 2", n)
	}
	be.check(t)
}
