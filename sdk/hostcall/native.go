//go:build !wasip1

package hostcall

import (
	"sync/atomic"

	"github.com/talowa/wedge/wasm/abi"
)

var current atomic.Pointer[abi.Host]

// SetHost installs the host that native builds call, returning the previous
// one. It exists for sdk/sdktest; one host serves the whole process, so
// tests that install different hosts must not run in parallel.
func SetHost(h abi.Host) (previous abi.Host) {
	var old *abi.Host
	if h == nil {
		old = current.Swap(nil)
	} else {
		old = current.Swap(&h)
	}
	if old == nil {
		return nil
	}
	return *old
}

func native() abi.Host {
	h := current.Load()
	if h == nil {
		panic("hostcall: no host installed: run plugin code natively through sdk/sdktest")
	}
	return *h
}
