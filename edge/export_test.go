package edge

import "github.com/valyala/fasthttp"

// Handler is the node's request handler, for the allocation test and the
// benchmark that run a request through it without a connection.
func (n *Node) Handler() fasthttp.RequestHandler { return n.srv.Handler }
