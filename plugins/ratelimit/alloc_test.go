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

// TestRefusePathAllocs holds a refused request to zero allocations as
// TestHitPathAllocs does an allowed one: the 429, its fields and its
// problem body are built from what Configure prepared, in reused buffers.
func TestRefusePathAllocs(t *testing.T) {
	for _, c := range refuseConfigs {
		t.Run(c.name, func(t *testing.T) {
			rl := &ratelimit{}
			h := sdktest.New(t, rl, []byte(c.config))
			var call host.Call
			prev := hostcall.SetHost(&call)
			defer hostcall.SetHost(prev)
			x := benchExchange()
			req := x.Req
			ex := &reusedBody{MemExchange: x}
			request := func(want sdk.Action) {
				nextRequest(x, req)
				call.Reset(h.Env, abi.PhaseRequest, ex)
				if act := rl.OnRequest(sdk.Request{}, sdk.Response{}); act != want {
					t.Fatalf("action %d, want %d: %s", act, want, call.ErrorMessage())
				}
				call.Release()
			}
			request(sdk.Continue) // spends the allowance
			request(sdk.Answer)   // warm: scratch buffers
			if n := testing.AllocsPerRun(200, func() { request(sdk.Answer) }); n != 0 {
				t.Errorf("%v allocations per refused request, want 0", n)
			}
			if x.Resp.Status != 429 || len(x.Resp.Body) == 0 {
				t.Errorf("answer %d %q, want a 429 with a problem body", x.Resp.Status, x.Resp.Body)
			}
			for _, f := range []string{"Retry-After", "RateLimit", "RateLimit-Policy", "Content-Type"} {
				if v, _ := x.Resp.Header.Get(f); v == "" {
					t.Errorf("no %s on the answer: %v", f, x.Resp.Header.Fields)
				}
			}
		})
	}
}

// reusedBody keeps an answer's body in storage reused from request to
// request, so that the test counts the plugin's allocations only:
// MemExchange, the edge's too, clones every body (the edge hands it to
// fasthttp uncopied, to be written after the exchange is back in its
// pool), one allocation per answer that is the host's, not the plugin's.
type reusedBody struct {
	*host.MemExchange
	buf []byte
}

func (x *reusedBody) SetBody(m abi.Msg, b []byte) {
	if m != abi.MsgResponse {
		x.MemExchange.SetBody(m, b)
		return
	}
	x.buf = append(x.buf[:0], b...)
	x.Resp.Body = x.buf
}
