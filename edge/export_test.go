package edge

import (
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/wasm/host"
)

// Handler is the node's request handler, for the allocation test and the
// benchmark that run a request through it without a connection.
func (n *Node) Handler() fasthttp.RequestHandler { return n.srv.Handler }

// Cache is the node's response cache, for the conformance kit's checks of
// what a plugin stored.
func (n *Node) Cache() *host.MemCache { return n.cache }

// TierClients is how many peers the node has a tier client for, for the
// test that a late SetPeers after Shutdown makes none.
func (n *Node) TierClients() int {
	n.tier.mu.Lock()
	defer n.tier.mu.Unlock()
	return len(n.tier.clients)
}
