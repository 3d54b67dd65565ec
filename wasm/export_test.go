package wasm

import (
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/internal/wasmbin"
)

// HoldCompile claims the compile of bin (as prepare instruments it) in r's
// shared compilation cache, as a compile does, until the returned func is
// called: a test holds it to see other runtimes' compiles of bin wait,
// instead of racing to observe them while one runs.
func (r *Runtime) HoldCompile(bin []byte) (release func()) {
	if !r.cfg.unprotected {
		var err error
		if bin, err = wasmbin.Instrument(bin, abi.HostModule, abi.HostYield, fuelPerYield); err != nil {
			panic(err)
		}
	}
	return r.ccache.claim(bin)
}
