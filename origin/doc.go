// Package origin is the origin service: the far end of the edge<->origin
// transport. A Server takes the frames edges POST to wire.Path, checks and
// decodes them with a wire.Codec, runs a Handler with the request's deadline
// and answers with a response frame. The Handler is either an application
// in the origin's own process (a HandlerFunc, or a net/http application
// through HTTP) or a Proxy to HTTP applications behind it. The package
// Example wires a Codec, a Proxy and a Server and runs one exchange through
// them as an edge would.
//
// # Transport
//
// A frame that authenticates and decodes is answered with HTTP 200 and a
// response frame, whatever the application's status. Refusals are plain
// text: 401 for a bad signature, key or timestamp (counted in
// wedge_origin_auth_failures_total), 400 for a malformed frame, compression
// or envelope, 413 for one too large, 503 with Retry-After when MaxInFlight
// exchanges are in progress (counted once a frame has authenticated, so a
// peer without the key takes no slot), 404 for other paths, 405 for other
// methods.
// When the origin answers for the application (502, 503, 504), the envelope
// carries the reason in Error and as a text/plain body, and its Scope says
// whether the failure is that request's alone (wire.ScopeRequest) or the
// origin can serve nothing now (wire.ScopeOrigin: no upstream in rotation,
// or every one refused the connection), the only kind an edge's circuit
// breaker counts.
//
// # Deadlines
//
// Request.Timeout is the edge's remaining budget. The handler's context ends
// at the budget less a margin for the way back (10%, at most 50 ms), capped
// by MaxTimeout; the server then waits half the margin for the handler to
// answer for itself and otherwise answers 504. The handler runs on its own
// goroutine with its own Request and Response, so one that never returns
// holds neither a connection nor a buffer anyone else uses; it holds an
// in-flight slot until it returns, so a wedged application ends in 503s
// rather than in unbounded goroutines. A DeadlineKeeper, such as Proxy,
// returns by its deadline by itself and runs on the connection's goroutine
// instead, with no goroutine or timer per exchange.
//
// The handler's context also ends (context.Canceled) when the edge closes
// the connection while the handler runs, as it does when its client hangs
// up on a request waiting for its answer (a long poll given up): the
// connection is watched once the handler has run 50 ms
// (connwatch.Hangup). Proxy then closes its connection to the upstream,
// so the application sees its own client hang up.
//
// A frame can wait before the server reads it (a stalled origin, a full
// accept queue), and by then its edge may have answered its client 504.
// So the budget is also reckoned from the frame's timestamp: a frame read
// after its timestamp plus its budget is answered 504 ("request expired
// before the origin took it") without running the handler, and counted in
// wedge_origin_errors_total{kind="expired"}; one read in time gets what is
// left of its budget. This compares the edge's clock with the origin's:
// they must agree for the frame timestamp check (wire.Config.Skew) already,
// and here more closely than budgets are long, which NTP gives.
//
// # Proxy
//
// Requests go to the healthy upstream with the fewest in flight plus
// tunnels open (a WebSocket holds an instance as a long poll does), ties
// round robin. A request that was not sent (the dial failed) moves to the next
// upstream whatever its method; one that failed after sending moves only if
// its method is idempotent. Consecutive failures, of checks or of dials for
// requests, take an upstream out of rotation; only passing checks bring it
// back. A request that fails after it was sent does not count: that may be
// one URL's trouble, and taking the upstream out would fail every other
// request.
//
// The requests of an engine.io (socket.io) session, which name it in their
// sid query parameter, go to the upstream whose handshake answer opened
// it, while that one is in rotation: the proxy learns the session IDs from
// those answers (sticky.go). WebSocket handshakes choose the same way.
//
// Responses are read more strictly than fasthttp reads them, so that no
// bytes an application sends become the answer to another request (and be
// cached under its URL at the edge): a header block with a bare CR or LF,
// obs-fold, several differing Content-Lengths, Content-Length together with
// Transfer-Encoding, or a coding other than chunked is answered 502 and its
// connection closed, as is a response followed at once by bytes past its
// end. A 204, a 304 or an answer to HEAD ends at its header (RFC 9112
// §6.3) and is passed on, but the connection is not used again if anything
// follows it. A connection goes back to the pool only with nothing unread,
// and connwatch checks it again before the next request goes out on it,
// for bytes that came later. Informational responses are passed on in the
// envelope (wire.Response.Interim, at most wire.MaxInterim of them), but
// for 100 Continue, which is this hop's, and 101, which the proxy never
// asks for and refuses with 502.
//
// Identical concurrent GET and HEAD requests are collapsed into one upstream
// request. The key covers what responses usually vary on (see varyFields)
// and the forwarded values, but not Vary itself, which only the response
// names; so the leader's answer is handed to the others only when it is one
// a shared cache could store and reuse at once (no private, no-store or
// no-cache, no Set-Cookie, and a lifetime of its own: s-maxage or max-age
// above 0, or Expires, as httpcache.ExplicitlyFresh reads them; an API's
// answer without one may depend on an X-Api-Key or an address the key
// does not hold) and whose Vary names only fields the key covers. Otherwise
// each waiting request goes upstream on its own, as it would have without
// collapsing. Such a key is then remembered (4096 keys at most) and its
// requests go upstream side by side, without waiting behind one another for
// answers they cannot share, until an answer to one of them could be shared
// again: a per-key "hit-for-pass". The origin's own failures (502, 504)
// leave that memory as it is.
//
// # Streamed bodies
//
// A request body an edge streams arrives as a head and chunks, and the
// Proxy sends it on to the upstream as it comes, reading the upstream's
// answer meanwhile: an application that answers before it read the body
// (401 unread, 413 past its limit) has its answer passed on, the rest of
// the body is not sent to it (unless the answer is a 2xx whose body is
// still coming: it may be answering as it reads), and that connection is
// not reused. An edge that takes streamed answers gets an upstream body
// larger than ProxyConfig.StreamThreshold, of unknown length past it, or an
// event stream the same way. The server reads a streamed request body to its end,
// and so checks every chunk of it, before it answers: the answer covers the
// whole body. An in-process Handler gets a streamed body whole, within the
// codec's MaxEnvelope. See stream.go and origin/wire/README.md.
//
// # Tunnels
//
// Handshakes POSTed to wire.TunnelPath (WebSocket upgrades, one connection
// each) are authenticated and decoded like any frame, but must be sealed as
// handshakes (the tunnel flag, inside the MAC), so a request frame captured
// on the link is refused there (401; ServerConfig.LegacyTunnelHandshakes
// takes older edges' during a rolling upgrade), and are handed to the
// Handler if it is a Tunneler, as Proxy is: it sends the handshake to the
// upstream the balancer picks on a new connection and reads the answer as
// strictly as any response (a 101 must switch to websocket). On 101 the
// sealed answer goes back and the server copies bytes both ways between
// the edge's connection and the application's, raw, passing on a half
// close, until both have ended, or ServerConfig.TunnelCloseGrace after
// the first did; anything else is answered as an exchange and the
// connection closed. A handshake frame accepted once is refused (401)
// when it comes again within the codec's Skew: a replay would open a
// session with the captured client's identity (tunnel_replay.go).
// ServerConfig.MaxTunnels bounds the tunnels (503 past it), Shutdown
// closes them, and a Handler that is not a Tunneler gets every handshake
// answered 501. wire's README.md has the protocol.
//
// # Why
//
// The handler runs on a goroutine of its own, not on the fasthttp worker:
// that costs a goroutine start per exchange (about a microsecond) and buys
// the guarantee that the edge hears back before its deadline whatever the
// application does. Go cannot stop a goroutine, so the guarantee has to
// come from not waiting for it. The Proxy needs none of it: every upstream
// request carries the deadline (fasthttp's DoDeadline sets the connection's
// deadlines), so it is a DeadlineKeeper and the miss path skips the
// goroutine and the timer.
//
// Collapsing needs "a follower retries if the answer was not shareable",
// which singleflight cannot express, hence the small flight group here.
package origin
