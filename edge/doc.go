// Package edge is the Wedge edge node (a POP): a fasthttp server that routes
// each request by host and longest path prefix, runs the route's plugin
// chain (request phase in order, response phase in reverse), and sends what
// no plugin answered to the route's origin service through originclient.
//
// A node is built from a Config (YAML, see LoadConfig):
//
//	listen: 127.0.0.1:8080
//	admin: {listen: 127.0.0.1:9090, token: s3cret}
//	pop: fra1
//	region: eu-west
//	origins:
//	  app: {addr: 127.0.0.1:9000, key: "@origin.key"}
//	routes:
//	  - host: api.example.com
//	    path: /
//	    origin: app
//	    chain:
//	      - {file: auth.wasm, config: {realm: api}, deadline: 20ms}
//	      - {file: cache.wasm, failure: open, memory_bytes: 33554432}
//
// A chain step may set the plugin's deadline (CPU time per call, default
// 100ms) and memory_bytes (linear memory per instance, default and at most
// 64 MiB) for that route; see PluginConfig.
//
// Routing matches the path as fasthttp normalizes it (percent-decoded, "//",
// "." and ".." resolved), while plugins and the origin get the path as sent.
// A request whose path normalizes to something else is answered 400, so no
// route is chosen for one resource while the origin serves another
// (/public/../admin).
//
// # Responses
//
// A response keeps the Date it has: the origin's, or on a cache hit the
// stored one, whose age the cache's Age gives. One without gets the
// node's, when it arrives from the origin, so the cache stores that one.
// Bodies go to the server as they are, never copied per connection; those
// not shared with the cache count against limits.max_write_bytes until the
// client has them, and past it a response is refused with 503.
//
// # Reload
//
// A reload builds a complete new generation (origins, loaded plugins,
// router) and swaps it in with one atomic store. A request acquires every
// plugin of its chain before running any, so both of its phases run on one
// version, and holds its generation, so the old generation's plugins and
// origin connections close when its last request is done (or its last
// background revalidation, which a cache hit may leave running after its
// response is written: revalidate.go). If anything in the new config fails to load, the node
// keeps serving the old one.
//
// # Why
//
// Plugins see the request through host.MemExchange, a copy of the fasthttp
// request. The copy keeps the exchange semantics exactly those the
// conformance kit and sdktest check; its strings go into storage the
// pooled exchange reuses (MemExchange.CopyString), so a warm request
// allocates nothing for it (TestServeHitAllocs), and what outlives the
// request (a stored response, a revalidation) the exchange copies out.
//
// fasthttp runs with ReduceMemoryUsage, so an idle keep-alive connection
// holds no read or write buffer, only its goroutine; it waits for the next
// request with a 1-byte read. The connection under it (lineEndConn, the
// bare-LF guard) serves that read from one read() of what has arrived,
// into a buffer it takes only once the socket is readable, so a request
// costs one read() rather than two and idle connections cost the same.
package edge
