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
//	  - path: /socket.io/
//	    origin: app
//	    timeout: 60s
//	    chain: [{file: auth.wasm}]
//
// A chain step may set the plugin's deadline (CPU time per call, default
// 100ms) and memory_bytes (linear memory per instance, default and at most
// 64 MiB) for that route, and its breaker (a version whose calls keep
// running out of the deadline is not called on the route for a while, its
// requests getting the failure's answer); see PluginConfig and
// PluginBreakerConfig. A route's timeout replaces its origin's as the
// budget of its requests, for applications that hold requests on purpose,
// such as socket.io's long polls; see RouteConfig.Timeout.
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
// # Streamed bodies
//
// An answer the origin streams (a body larger than an envelope holds, of
// unknown length past it, or server-sent events) goes to the client as it
// comes, flushed piece by piece, and the cache stores it once it has gone
// by whole, up to 16 MiB, gathering it within limits.max_write_bytes. With Limits.StreamThreshold set, request bodies
// past it, and chunked ones, stream to the origin too, bounded by the
// route's RouteConfig.MaxBodyBytes rather than by memory. Plugins see
// the first 64 KiB of a streamed request body and none of a streamed
// response's, with the body's full length, and cannot replace either
// (wasm/abi/README.md, "Streamed bodies"). See stream.go.
//
// # HTTP/2 and HTTP/3
//
// ServeTLS completes each TLS handshake itself and hands a connection that
// negotiated h2 to net/http's HTTP/2 server, any other to fasthttp as
// before; with tls.http3 enabled it serves HTTP/3 (quic-go) on the same
// port over UDP and advertises it with Alt-Svc. Both HTTP/2 and HTTP/3
// requests run through the one request path: frontDoor (frontdoor.go)
// turns each into a fasthttp.RequestCtx, runs the handler HTTP/1.1
// requests run, and writes its response out. Limits are HTTP/1.1's, plus
// HTTP2Config and HTTP3Config.
//
// # Behind an L4 load balancer
//
// With proxy_protocol (ProxyProtocolConfig, proxyproto.go) the HTTP and
// TLS listeners read the PROXY protocol header (v1 or v2, with
// github.com/pires/go-proxyproto) that a trusted load balancer opens each
// connection with, before TLS, and the client it names is the client
// everywhere: ratelimit's ip key, a canary split by address, the access
// log, the X-Forwarded-For, Forwarded and X-Real-Ip the application gets,
// over HTTP/1.1 and HTTP/2 alike. A trusted peer must send one within
// read_timeout; anyone else must not; a connection that breaks its rule
// is closed unanswered and counted in wedge_edge_proxy_protocol_refused_total.
//
// # Behind an L7 load balancer or CDN
//
// With trusted_proxies (Config.TrustedProxies, realip.go) a request whose
// peer (the connection's address, or the PROXY header's) is a trusted
// proxy stands for the client its X-Forwarded-For names: the fields'
// addresses walked right to left past the trusted ones, as nginx's
// real_ip_recursive and Envoy's trusted hops do, a malformed element
// ending the walk at the nearest hop. That client is the client
// everywhere the PROXY header's is; the application's X-Forwarded-For is
// the chain as received plus the peer (wire.Request.Peer). From any other
// peer the field names nobody.
//
// # WebSocket
//
// A GET asking to upgrade to websocket runs its route's request phase,
// then, unless a plugin answered, becomes a tunnel to the application
// through the origin service, on connections of its own (tunnel.go has
// the whole story). Its limits are limits.websocket (WebSocketLimits); a
// reload or a release (SetReleases) drains, with close frames 1001, the
// tunnels whose handshake would now take another route, origin address or
// plugin version or config, and keeps the others open; Shutdown drains
// them all within drain_timeout.
//
// # Regional cache tier
//
// The POPs of a region share their caches: each cache key has one owner
// among the region's live POPs (rendezvous hashing over their names,
// edge/internal/rendezvous; the membership comes from the fleet agent
// through Node.SetPeers), and a miss for a key another POP owns asks that
// POP before the origin (tier.go). A request is tiered when its route
// says tier: region, it is a GET and not a WebSocket handshake, a chain
// step's cache_request forwarded it with a state that may be stored, no
// request body streams in, and the node has peers. The ask is a signed
// envelope, the origin link's (origin/wire), sealed with tier.key and sent
// to the owner's tier listener (tier.listen, tier_serve.go), carrying the
// request as the chain left it and four values: the route's name (the
// owner finds the route by it, not by host and path, which later steps
// may have rewritten), the cache step's index and plugin name (refused
// unless the owner's route has that plugin at that index), the hop
// (region or shield) and the asker's purge position. The owner runs that
// one step on it (the plugins before it ran at the asker, those after it
// run their response phase there), so its cache answers a hit or stores
// what it fetches, and names itself NAME-tier (or NAME-shield) in
// Cache-Status: a client sees "wedge-tier; hit, wedge; fwd=uri-miss;
// stored". The owner's fetches, its own clients' misses and its peers'
// asks alike, collapse (tier_collapse.go): concurrent requests alike in
// method, key, forwarded values and the fields a response commonly
// varies on share one, from the owner of the key in the route's shield
// region if it names one (never for a shield's own ask, which goes to the
// origin, so asks cannot loop), else from the origin. A follower takes
// the leader's answer only if it is for any client (not private or
// no-store, no Set-Cookie, no Vary: *) and the fields its Vary names are
// the same in both requests; else it fetches on its own. A request never
// joins a fetch that began before a purge the owner applied since of its
// key, of any tag or of everything (MemCache.KeyPurgedSince). Every
// failure of an ask (a dead or hung owner, its breaker open, a failure
// envelope, a response too large for an envelope) falls back to the
// origin at once, within what is left of the request's budget: an ask
// gets half of it, at most 2 s (the owner's fetch may take the rest of it,
// the value wedge-tier-budget: an origin slower than the ask is fetched by
// the asker's fallback too, and the owner's copy fills its cache), and a
// peer's breaker opens on its first
// refused connect or on half of 3 asks in 10 s failing, timeouts
// included. So a dead owner costs a refused connect, a hung one a few
// asks' waits, and neither a failed request. A peer's client is closed
// when its peer leaves and its last ask is done. An owner that has not
// yet applied a purge its asker has waits up to a second for it, else
// refuses; an asker that applies a purge of the key, or of a tag the
// answer carries, while its ask is out drops the answer and asks the
// origin, so that neither hands back a purged object. Nor does a fetch a
// purge lands during store its answer (the owner's, or any POP's own
// fill): each takes the cache's purge position as it goes to the origin
// (host.MemCache.Purges, which every purge moves: the fleet's, the admin
// API's, a plugin's), and the cache does not store an answer fetched
// before a purge of its key or of one of its tags (MemCache.PurgedSince,
// which keeps the last purge's position for each of 65,536 buckets of
// hashes); the requests waiting for the fetch get it, and a request after
// a purge of its key, of any tag or of everything does not join it. tier.listen and tier.key are read at start: a reload
// does not change them. Peers are no origins: they have no origin metrics.
// Metrics:
// wedge_tier_requests_total{result} at the asker,
// wedge_tier_asks_total{result} and wedge_tier_collapsed_total at the
// owner.
//
// HTTP caching holds across the hop (tier_http.go). The targeted cache
// fields (Wedge-Cache-Control, CDN-Cache-Control) stay on an ask's answer
// and in every entry a cache stores (for its own clients, for an ask, or
// by a revalidation), so the asking cache judges the answer by them as the
// owner did; a cache consumes them before a client sees the response, on
// a hit too. An asking cache's validation of its stale entry is marked as
// its own (the value wedge-tier-cond): the owner looks the request up
// unconditionally (serving its fresh entry, or validating or fetching and
// storing its own; a stale entry is validated then, never served while it
// is revalidated in the background: host.Foreground) and answers 304 when the asker's validators match, so
// the asker freshens its entry (taking the owner's Cache-Status member,
// which says what the owner did) and the owner keeps its own current; a
// client's own conditionals pass through as
// before. A stale-while-revalidate hit's background revalidation is
// tiered as a miss is. A key whose response was too large for an
// envelope is remembered (up to 4,096 keys, for 5 minutes) at the POP
// that found it so, so that its misses stream from the origin at once
// rather than fetch the object twice. The owner's Cache-Status member
// stays in what the asker stores and is served again on the asker's hits,
// as RFC 9211 passes upstream caches' members along: it tells how the
// response was first obtained.
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
// # Tracing
//
// The node takes part in W3C Trace Context (trace.go): a valid
// traceparent from the client is continued with its tracestate; more than
// one, or a malformed one, starts a new trace and drops the tracestate.
// Plugins and the origin read it as the traceparent field. With
// TracingConfig set, a request without one starts a new trace too, and the
// node records a server span per request (route, status, Cache-Status, the
// versions that ran, the request ID), one per plugin call and a client
// span per origin call (trace_origin.go), sampled by a ratio of trace ids
// (a client's sampled flag does not override it unless
// TrustClientSampling), and sends them over OTLP/HTTP in batches; the
// traceparent it sends on names its span, or its origin call's. Off, a
// valid traceparent passes unchanged and none is added. Either way a
// request not sampled allocates nothing for it.
//
// # Overload
//
// Overload protection (overload.go, OverloadConfig) answers what the node
// cannot take with a fast 503 and Retry-After before any plugin runs. While
// the CPU is behind (busy for a whole window with work waiting for it:
// process CPU time against GOMAXPROCS, and the runtime's scheduling delay)
// it sheds a share of requests at random, just enough to keep work from
// queueing; an adaptive concurrency limit bounds the requests in flight
// (waiting on origins). An origin with a latency_target has a limit of
// its own on its latency (originlimit.go): past it, a request the chain
// sends there gets the 503 instead, as does one that finds all of the
// origin's max_conns connections busy (long polls) for 100 ms. /ready
// reports the shedding; the admin and tier listeners are never limited.
//
// A client that hangs up while its request waits on an origin (a long poll
// given up) is noticed once the request has waited 50 ms: the edge watches
// the client's connection on the netpoller (connwatch.Hangup), and on its
// EOF or reset closes the request's connection to the origin, whose
// service cancels the handler's context and closes its own connection to
// the application. Over TLS a client's close_notify alert comes before the
// close; on Linux the close behind it is seen too. Over HTTP/2 and HTTP/3
// it watches the request's stream instead (its context, which the server
// ends when the client resets the stream or the connection closes), so a
// client that cancels one request gives it up alike and its other streams
// go on. The request counts as the origin client's
// exchanges_total{outcome="cancelled"} and is logged 499, not as an origin
// failure. A request whose body streams is not watched.
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
