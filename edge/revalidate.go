package edge

import (
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
)

// revalidate starts the background revalidation the request phase asked
// for (cache_revalidate, wasm/abi/README.md), once the response to x is
// written: the copy of the request goes to the route's origin and the
// response phases of the plugins that ran on x, x.held[:ran], run on the
// answer in reverse chain order, on a goroutine of its own, so the client's
// response never waits for it. A revalidation of a request that was not
// answered, or of a generation retired since (a reload or shutdown), is
// dropped; the next stale request asks again.
//
// The cache store admitted it already (one per key, a bounded number in
// all: host.MemCache), so goroutines here are bounded the same way.
// It holds a reference on the request's generation, which keeps the plugin
// versions and the origin open until it is done.
func (n *Node) revalidate(x *exchange, g *generation, rt *route, ran int, answered bool) {
	rv := x.TakeRevalidation()
	if rv == nil {
		return
	}
	if !answered || !g.acquire() {
		rv.Done()
		return
	}
	held := make([]*loaded, ran)
	copy(held, x.held[:ran])
	go func() {
		defer g.release()
		defer rv.Done()
		bx := rv.Exchange()
		var wreq wire.Request
		var wresp wire.Response
		rt.origin.exchange(n, &bx.Req, &bx.Vals, &wreq, &wresp, &bx.Resp)
		for i := len(held) - 1; i >= 0; i-- {
			if err := held[i].m.OnResponse(bx); err != nil {
				n.pluginError(rt, held[i].m, abi.PhaseResponse, err)
			}
		}
	}()
}
