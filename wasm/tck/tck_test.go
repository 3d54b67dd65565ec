package tck_test

import (
	"log/slog"
	"testing"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/tck"
	"github.com/talowa/wedge/wasm/tck/tcktest"
)

// TestConformanceWasm runs the kit as a Wasm plugin in the runtime.
func TestConformanceWasm(t *testing.T) { tcktest.RunWasm(t) }

// TestConformanceWasmRust runs the kit's guest in Rust (rustguest), built
// on the Rust SDK's host calls, to the same standard: every check passes,
// and as many as the Go guest's.
func TestConformanceWasmRust(t *testing.T) {
	rust := tcktest.RunWasmGuest(t, tcktest.RustGuestDir(t))
	if goKit := tcktest.RunWasm(t); rust != goKit {
		t.Errorf("%d checks passed in the Rust kit, %d in the Go kit", rust, goKit)
	}
}

// TestConformanceNative runs the same kit natively through sdktest: the SDK's
// native build must behave exactly like the Wasm one.
func TestConformanceNative(t *testing.T) {
	lg := &tcktest.Logs{}
	h := sdktest.New(t, &tck.Plugin{}, tcktest.Config(t, tck.Assigned{}))
	h.Env.Log = slog.New(lg)
	h.Env.MaxBodySize = tck.MaxBodySize
	var got host.Request
	h.Origin = func(r *host.Request) host.Response {
		got = *r
		return tcktest.OriginResponse()
	}
	tcktest.Check(t, tcktest.Harness(h.Do(tcktest.Request()), &got, h.Env.Cache, h.Registry, lg, nil))
}
