//go:build !race

package main

import (
	"testing"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// TestHitPathAllocs holds an allowed request to zero allocations: the
// plugin's request phase natively (the guest's code, which allocates the
// same as Wasm: a guest allocation is guest GC time) against the real host
// functions and an exchange reused as the edge reuses its own, RateLimit
// fields included. BenchmarkTakeWasm shows the same for the host as Wasm.
func TestHitPathAllocs(t *testing.T) {
	for _, c := range benchConfigs {
		t.Run(c.name, func(t *testing.T) {
			rl := &ratelimit{}
			h := sdktest.New(t, rl, []byte(c.config))
			var call host.Call
			prev := hostcall.SetHost(&call)
			defer hostcall.SetHost(prev)
			x := benchExchange()
			req := x.Req
			request := func() {
				nextRequest(x, req)
				call.Reset(h.Env, abi.PhaseRequest, x)
				if act := rl.OnRequest(sdk.Request{}, sdk.Response{}); act != sdk.Continue {
					t.Fatalf("action %d: %s", act, call.ErrorMessage())
				}
				call.Release()
			}
			request() // warm: scratch buffers and the limiter's key
			if n := testing.AllocsPerRun(200, request); n != 0 {
				t.Errorf("%v allocations per request, want 0", n)
			}
			if c.name != "value-noheaders" {
				if v, _ := x.Resp.Header.Get("RateLimit"); v == "" {
					t.Errorf("no RateLimit field on the answer: %v", x.Resp.Header.Fields)
				}
			}
		})
	}
}
