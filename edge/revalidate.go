package edge

import "github.com/talowa/wedge/wasm/host"

// revalidate starts the background revalidation the request phase asked
// for (cache_revalidate, wasm/abi/README.md), once the response to x is
// written: host.RunRevalidation sends the copy of the request to the
// route's origin (through the regional cache tier on a tiered route)
// and runs the response phases of the plugins that ran on x,
// x.chain.held[:x.flow.Ran()], on the answer, on a goroutine of its own,
// so the client's response never waits for it. A revalidation of a
// request that was not answered (host.Flow drops it), or of a generation
// retired since (a reload or shutdown), is dropped; the next stale request
// asks again.
//
// The cache store admitted it already (one per key, a bounded number in
// all: host.MemCache), so goroutines here are bounded the same way.
// It holds a reference on the request's generation, which keeps the plugin
// versions and the origin open until it is done.
func (n *Node) revalidate(x *exchange, g *generation) {
	rv := x.flow.Revalidation(&x.MemExchange)
	if rv == nil {
		return
	}
	if !g.ref() {
		rv.Done()
		return
	}
	// The step that asked for it is the cache that answered, the last that
	// ran: on a tiered route the copy asks the key's owner in its place,
	// as a miss would (tier.go).
	c := &requestChain{n: n, rt: x.chain.rt, held: make([]*loaded, x.flow.Ran()), cacheStep: x.flow.Ran(), peer: x.chain.peer}
	copy(c.held, x.chain.held)
	go func() {
		defer g.unref()
		defer rv.Done()
		host.RunRevalidation(c, rv.Exchange())
	}()
}
