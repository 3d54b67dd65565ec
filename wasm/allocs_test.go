//go:build !race

package wasm_test

import (
	"testing"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestCallAllocs holds the call path to zero host allocations: pool
// checkout, the guest call with its context, deadline and metrics.
func TestCallAllocs(t *testing.T) {
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1))
	p := wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "noop", Version: "1", Binary: guest(t, "noop")})
	x := &host.MemExchange{}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := p.OnRequest(x); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per call, want 0", n)
	}
}
