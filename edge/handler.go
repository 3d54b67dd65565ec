package edge

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// exchange is the per-request state, pooled: the request and response as
// plugins see them, the chain the request runs and the runner's state.
type exchange struct {
	host.MemExchange
	chain   requestChain
	flow    host.Flow
	loaded  []byte   // the body LoadResponse last put in the response
	scratch []byte   // fromHTTP's, for the texts it formats
	conn    []string // fromHTTP's, the Connection field values
	answer  *[]byte  // the buffer SetBody keeps a plugin's answer in
	served  []byte   // setServed's, the Wedge-Served text (served.go)
	st      stream   // the bodies it streams (stream.go)
	// hop is the suffix a tier ask's Cache-Status members take, "" when
	// not on one (tier.go); status is HeaderAdd's scratch for them.
	hop    string
	status []byte
	// foreground: the tier ask is the asking cache's validation of its
	// stale entry (tier_http.go).
	foreground bool
	// al is the access log's: call times and the line (accesslog.go).
	al accessRecord
	// trace is the request's part in its trace (trace.go).
	trace traceState
}

// maxPooledAnswer is the largest body SetBody keeps in a pooled buffer;
// a larger one gets a buffer of its own, so the pool holds no giants.
const maxPooledAnswer = 64 << 10

var answerPool = sync.Pool{New: func() any { return new([]byte) }}

// SetBody keeps a body a plugin sets on the response in a pooled buffer
// rather than a fresh copy per answer (a 401's or a 429's): the write takes
// the buffer with the body (takeAnswer) and fasthttp gives it back to the
// pool once written (body.Close), since the exchange goes back to its own
// pool before then.
func (x *exchange) SetBody(m abi.Msg, b []byte) {
	if m != abi.MsgResponse || len(b) == 0 || len(b) > maxPooledAnswer {
		x.MemExchange.SetBody(m, b)
		return
	}
	if x.answer == nil {
		x.answer = answerPool.Get().(*[]byte)
	}
	*x.answer = append((*x.answer)[:0], b...)
	x.Resp.Body = *x.answer
}

// takeAnswer hands over the answer buffer when the response's body lies in
// it (a range may have cut it): the write holds it from here on.
func (x *exchange) takeAnswer() *[]byte {
	if x.answer == nil || !within(x.Resp.Body, *x.answer) {
		return nil
	}
	a := x.answer
	x.answer = nil
	return a
}

// LoadResponse records which body is a stored one (the cache's, shared
// with it), which the write does not count as its own.
func (x *exchange) LoadResponse(r *host.StoredResponse) {
	x.MemExchange.LoadResponse(r)
	x.loaded = r.Body
}

// sharedBody reports whether the response's body is a stored one, or a
// part of one (a range): a plugin that set a body after loading one
// replaced it with its own copy.
func (x *exchange) sharedBody() bool {
	if len(x.Resp.Body) == 0 || len(x.loaded) == 0 {
		return false
	}
	return within(x.Resp.Body, x.loaded)
}

// within reports whether the non-empty b lies in buf's bytes.
func within(b, buf []byte) bool {
	if len(b) == 0 || len(buf) == 0 {
		return false
	}
	p, start := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(len(buf))
}

func (x *exchange) reset() {
	x.MemExchange.Reset()
	x.loaded = nil
}

// requestChain is the chain one request runs, as host.Flow runs it: the
// version of each plugin of its route's chain that it holds, the route's
// origin, and the node that logs the failures. A background revalidation
// runs on a copy holding the plugins that ran (revalidate.go).
type requestChain struct {
	n      *Node
	rt     *route
	ctx    *fasthttp.RequestCtx // for interim responses; nil in the background
	held   []*loaded
	failed uint64 // bit i: held[i] failed
	wreq   wire.Request
	wresp  wire.Response
	st     *stream // the request's streamed bodies; nil in the background
	// A WebSocket handshake (tunnel.go): upgrade is set for the request
	// phase, tun holds the origin's connection once it answered 101, from
	// the client its slot was reserved for (tunnelClient).
	upgrade bool
	tun     net.Conn
	from    netip.Addr
	// peer is the trusted proxy the client's address came through
	// (realip.go), for the envelope's Peer; invalid when none did.
	peer netip.Addr
	// The regional cache tier (tier.go): cur is the step whose request
	// phase runs, cacheStep 1 + the one that forwarded a cache lookup (0:
	// none), key the cache key's scratch.
	cur, cacheStep int
	key            []byte
	// al times the calls for the access log; nil when it is off.
	al *accessRecord
	id string // the request's ID, for the log; "" in the background
}

var _ host.Chain = (*requestChain)(nil)

func (c *requestChain) Len() int { return len(c.held) }

func (c *requestChain) OnRequest(i int, ex host.Exchange) (abi.Action, error) {
	c.cur = i
	if c.al != nil {
		defer c.al.called(i, false, c.al.begin())
	}
	return c.rt.chain[i].breakerOf(c.held[i]).onRequest(c.held[i], ex) // pluginbreaker.go
}

// OnResponse runs plugin i's response phase, which a 101 opening a tunnel
// does not get: it has no body, and nothing may store it.
func (c *requestChain) OnResponse(i int, ex host.Exchange) error {
	if c.tun != nil {
		return nil
	}
	if c.al != nil {
		defer c.al.called(i, true, c.al.begin())
	}
	return c.rt.chain[i].breakerOf(c.held[i]).onResponse(c.held[i], ex)
}

// Failed marks the version failed for its health and logs why, unless
// its breaker skipped the call: that was logged once, when it opened.
func (c *requestChain) Failed(i int, phase abi.Phase, err error) {
	c.failed |= 1 << min(i, 63)
	if err != errBreakerOpen {
		c.n.pluginError(c.rt, c.held[i].m, phase, c.id, err)
	}
}

// Origin sends the request as the chain left it to the route's origin; the
// informational responses that came before the answer go to the client
// first.
func (c *requestChain) Origin(x *host.MemExchange) { c.forward(x) }

// forward is Origin, returning the origin client's failure, if any, for
// a sampled request's span of the call (trace_origin.go).
func (c *requestChain) forward(x *host.MemExchange) error {
	if c.al != nil {
		defer c.al.originDone(c.al.begin())
	}
	if c.upgrade {
		c.n.openTunnel(c, x)
		return nil
	}
	timeout := c.rt.timeout
	// The purge position as the fetch begins: the cache does not store
	// its answer if a purge began meanwhile (host.MemCache.Set).
	x.Fetched = c.n.cache.Purges()
	if ok, err := c.tiered(x, &timeout); ok { // tier.go
		return err
	}
	x.Fetched = c.n.cache.Purges() // the fallback's own fetch
	var client net.Conn
	if c.ctx != nil {
		client = c.ctx.Conn()
	}
	err := c.rt.origin.exchange(c.n, c.rt.limit, timeout, c.st, client, &x.Req, &x.Vals, c.peer, &c.wreq, &c.wresp, &x.Resp)
	if c.ctx != nil {
		c.n.interim(c.ctx, &c.wresp)
	}
	return err
}

// done lets go of what the request held, keeping the storage.
func (c *requestChain) done() {
	clear(c.held)
	c.n, c.rt, c.ctx = nil, nil, nil
	c.held, c.failed = c.held[:0], 0
	c.upgrade = false
	c.peer = netip.Addr{}
	c.cacheStep = 0
	c.al = nil
}

// serve is the request path: route, plugin chain (request phase in order),
// origin unless a plugin answered, response phase in reverse, write; the
// chain's phases are host.Flow's, the same runner the tests use.
func (n *Node) serve(ctx *fasthttp.RequestCtx) {
	// The client a trusted proxy names (realip.go), for every step below
	// and the access log: released after the log's line, deferred first.
	var named *realAddr
	if n.cfg.trustedProxies != nil {
		if named = n.realClient(ctx); named != nil {
			defer releaseClient(ctx, named)
		}
	}
	logged := false // the access log's line for this request (accesslog.go)
	if n.alog != nil {
		defer n.alog.finish(ctx, time.Now(), &logged)
	}
	// Before admission: a shed answer keeps the connection open, which
	// for these must close whatever the load.
	if status, msg := lenient(ctx); status != 0 {
		// fasthttp parses these leniently; the framing of what follows on
		// the connection is not to be trusted either.
		n.m.refused.WithLabelValues(strconv.Itoa(status)).Inc()
		ctx.Error(strconv.Itoa(status)+" "+http.StatusText(status)+": "+msg+"\n", status)
		ctx.SetConnectionClose()
		return
	}
	if !n.load.admit(ctx) { // overload.go: shed, answered 503
		return
	}
	defer n.load.done()
	start := time.Now()
	x := n.pool.Get().(*exchange)
	defer n.pool.Put(x)
	x.reset()

	if answeredHere(ctx) {
		return
	}
	if bytes.IndexByte(ctx.Path(), '\\') >= 0 {
		// A backslash, raw or as %5C, is a separator to some origins
		// (/public/..\admin): the route would be /public/'s, the resource
		// /admin. RFC 3986 has no backslash in a path, so refuse it.
		n.m.refused.WithLabelValues("400").Inc()
		ctx.Error("400 Bad Request: backslash in the path\n", fasthttp.StatusBadRequest)
		return
	}
	if !samePath(rawPath(ctx), ctx.Path()) {
		// Routing uses the normalized path, plugins and the origin the path
		// as sent: with dot segments or "//" they name different resources
		// (/public/../admin routes as /admin, an auth plugin sees /public/).
		n.m.refused.WithLabelValues("400").Inc()
		ctx.Error("400 Bad Request: path not in normal form (dot or empty segments)\n", fasthttp.StatusBadRequest)
		return
	}
	g, rt, ok := n.acquire(ctx, x)
	if !ok {
		ctx.Error("503 Service Unavailable: shutting down\n", fasthttp.StatusServiceUnavailable)
		ctx.SetConnectionClose()
		return
	}
	if rt == nil {
		n.m.unrouted.Inc()
		ctx.Error("404 Not Found: no route for this host and path\n", fasthttp.StatusNotFound)
		return
	}
	n.fromHTTP(ctx, x)
	if !n.readBody(ctx, x, rt) { // whole, or streamed: edge/stream.go
		x.chain.done()
		g.unref()
		return
	}
	c := &x.chain
	c.n, c.rt, c.ctx, c.st, c.id = n, rt, ctx, &x.st, x.Req.ID
	if named != nil {
		c.peer = named.peer
	}
	c.upgrade = c.upgrade && wantsTunnel(ctx) // c.upgrade: fromHTTP saw an Upgrade field
	c.al = n.alog.record(x, len(c.held))
	x.flow.Run(n.trace(x, rt, start), x, &x.MemExchange) // trace.go: c, or c with a span per call
	var sent int
	if c.tun != nil {
		sent = n.startTunnel(ctx, c, &x.Resp)
	} else {
		sent = n.write(ctx, &x.Resp, x.sharedBody(), x.takeAnswer())
		if g.cfg.ServedHeader {
			setServed(ctx, x, x.flow.Ran())
		}
		n.send(ctx, x, rt) // a streamed answer's body: edge/stream.go
		// What the client gets: send answers 503 in its place when the
		// node cannot take on another streamed write.
		sent = ctx.Response.StatusCode()
	}
	n.endTrace(x, rt, sent) // trace.go
	d := time.Since(start)
	rt.m.observe(sent, d)
	if n.alog != nil {
		n.alog.routed(ctx, x, rt, start, d)
		logged = true
	}
	// Health goes to the versions that ran: a plugin behind one that
	// answered did not see the request. It takes the chain's status, not
	// a refusal of the write, which is the node's overload and no
	// plugin's doing. Its outcome goes to the versions that produced it
	// (health.go).
	observeChain(rt.chain, c.held[:x.flow.Ran()], c.failed, x.flow.Answered(), x.Resp.Status, d)
	n.revalidate(x, g) // after the write: edge/revalidate.go
	x.st.reset()
	c.done()
	g.unref()
}

// acquire routes the request, takes a reference on its generation (which
// holds the plugin versions and origins of its routes, so both phases run
// on the versions the request started with even if a reload happens
// meanwhile) and picks the version of each plugin it runs. A generation
// retired between loading it and acquiring is retried on the new one; ok is
// false when the current one is retired (Shutdown).
func (n *Node) acquire(ctx *fasthttp.RequestCtx, x *exchange) (_ *generation, _ *route, ok bool) {
	for {
		g := n.gen.Load()
		if !g.ref() {
			if n.gen.Load() == g {
				return nil, nil, false
			}
			continue
		}
		rt := g.router.match(ctx.Host(), ctx.Path())
		if rt == nil {
			g.unref()
			return nil, nil, true
		}
		var pin []byte
		for _, s := range rt.chain {
			if s.canary != nil && pin == nil {
				pin = pinOf(ctx, g.cfg.Admin.Token) // only a canary's step reads it
			}
			x.chain.held = append(x.chain.held, s.choose(ctx, pin))
		}
		return g, rt, true
	}
}

// lenient reports what fasthttp accepts but RFC 9110/9112 do not, or allow
// only as a choice that is safer refused at an edge:
//   - a major version other than 1: fasthttp answers HTTP/2.0 or HTTP/9.9
//     as 1.0; RFC 9112 §2.3 lets a server refuse it with 505; and a minor
//     version past 1, which RFC 9110 §2.5 would have processed as 1.1 but
//     fasthttp takes for 1.0 (chunked refused, no keep-alive, no upgrade):
//     505 too, rather than 1.1 framing read as 1.0's;
//   - a field name that is not a token (RFC 9110 §5.1): fasthttp takes
//     "X A: b" and would pass the name on;
//   - a bare LF ending a field line: RFC 9112 §2.2 allows reading it as a
//     line end, but fasthttp does so only when a CRLF CRLF follows
//     somewhere in its buffer, and a parser before the edge may read the
//     two lines as one field;
//   - obs-fold: RFC 9112 §5.2 allows replacing it with a space, which
//     fasthttp does, or a 400; a fold is how a second field hides in
//     another's value, so refuse it;
//   - userinfo in the Host or an absolute-form target: fasthttp drops it
//     and routes "u@a" as a, where RFC 9112 §3.2 wants a 400 for an
//     invalid Host, and RFC 9110 §4.2.4 an error for userinfo in an
//     http(s) URI (a parser before the edge may read the host as u);
//   - any other Host or absolute-form authority that is not a uri-host
//     and optional port (RFC 3986 §3.2.2; RFC 9112 §3.2 wants a 400):
//     fasthttp takes "kite.test/admin" or a raw non-ASCII name, which a
//     cache key, a log or the origin may read as a host the router did
//     not route (validHost).
//
// It reads the header section as received, the lines fromHTTP passes on as
// one field each, and also answers 431 for more header fields than an
// envelope carries (wire.MaxFields): max_header_bytes bounds bytes, and
// short fields fit past that count in it. Refused here, such a request
// never runs the chain, so it cannot fail later as a 502 that counts
// against plugin health.
func lenient(ctx *fasthttp.RequestCtx) (status int, msg string) {
	if p := ctx.Request.Header.Protocol(); (len(p) != len("HTTP/1.1") || p[5] != '1' || p[7] != '0' && p[7] != '1') && !viaFrontDoor(ctx) {
		return fasthttp.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1"
	}
	if bytes.IndexByte(ctx.Request.Header.Host(), '@') >= 0 || bytes.IndexByte(authority(ctx.Request.Header.RequestURI()), '@') >= 0 {
		return fasthttp.StatusBadRequest, "userinfo in the host"
	}
	if !validHost(ctx.Request.Header.Host()) || !validHost(authority(ctx.Request.Header.RequestURI())) {
		return fasthttp.StatusBadRequest, "invalid host"
	}
	// The header section as received, after the request line, one field
	// per line as fromHTTP passes them on.
	raw := ctx.Request.Header.RawHeaders()
	fields := 0
	for len(raw) > 0 {
		line, rest, crlf, ok := headerLine(raw)
		if !ok {
			break
		}
		if !crlf {
			return fasthttp.StatusBadRequest, "bare LF in the header section"
		}
		if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			return fasthttp.StatusBadRequest, "obsolete line folding"
		}
		if len(line) > 0 {
			if fields++; fields > wire.MaxFields {
				return fasthttp.StatusRequestHeaderFieldsTooLarge, "more header fields than the limit"
			}
			name, value, _ := bytes.Cut(line, []byte{':'})
			if !abi.ValidToken(name) {
				return fasthttp.StatusBadRequest, "field name not a token"
			}
			// RFC 9112 §6.3: a Transfer-Encoding whose final coding is not
			// chunked leaves the body's length unknown. fasthttp refuses
			// codings it does not know but takes identity for no body, and
			// the body's bytes for the next request.
			if len(name) == len("transfer-encoding") && bytes.EqualFold(name, []byte("transfer-encoding")) &&
				!bytes.EqualFold(bytes.TrimSpace(value), []byte("chunked")) {
				return fasthttp.StatusBadRequest, "Transfer-Encoding other than chunked"
			}
		}
		raw = rest
	}
	return 0, ""
}

// validHost reports whether h is a uri-host with an optional port, as
// RFC 3986 §3.2.2 has them: an IP-literal in brackets (its characters:
// unreserved, sub-delims and ':'; a zone is not for HTTP, RFC 9110 §4.2),
// or a reg-name, IPv4address included: unreserved, sub-delims and
// percent-escapes; then ':' and digits. Empty is valid: RFC 9112 §3.2 has
// a request whose target has no authority send an empty Host.
func validHost(h []byte) bool {
	if len(h) > 0 && h[0] == '[' {
		i := bytes.IndexByte(h, ']')
		if i < 0 {
			return false
		}
		for _, c := range h[1:i] {
			if !unreservedByte(c) && !subDelim(c) && c != ':' {
				return false
			}
		}
		h = h[i+1:]
		if len(h) > 0 && h[0] != ':' {
			return false
		}
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == ':':
			for _, d := range h[i+1:] {
				if d < '0' || d > '9' {
					return false
				}
			}
			return true
		case c == '%':
			if i+2 >= len(h) || !isHexByte(h[i+1]) || !isHexByte(h[i+2]) {
				return false
			}
			i += 2
		case !unreservedByte(c) && !subDelim(c):
			return false
		}
	}
	return true
}

func unreservedByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func subDelim(c byte) bool { return strings.IndexByte("!$&'()*+,;=", c) >= 0 }

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// answeredHere answers the requests the edge does not forward:
//   - TRACE, with 501: an application answering it echoes the request,
//     credentials and cookies included, to whatever script sent it
//     (cross-site tracing);
//   - OPTIONS * (RFC 9110 §9.3.7: the server, not a resource), and an
//     OPTIONS whose Max-Forwards is 0 (§7.6.2: this hop is its final
//     recipient), with 200 and no body.
//
// An OPTIONS with a larger Max-Forwards goes on with it decremented
// (fromHTTP): the edge and its origin service are one hop.
func answeredHere(ctx *fasthttp.RequestCtx) bool {
	switch {
	case ctx.IsTrace():
		ctx.Error("501 Not Implemented: TRACE is not served here\n", fasthttp.StatusNotImplemented)
		return true
	case ctx.IsOptions():
		if string(ctx.Request.Header.RequestURI()) != "*" {
			if mf, ok := maxForwards(ctx.Request.Header.RawHeaders()); !ok || mf > 0 {
				return false
			}
		}
		ctx.SetStatusCode(fasthttp.StatusOK)
		return true
	}
	return false
}

// maxForwards is the value of the Max-Forwards field in raw, a header
// section as received; ok is false without one, or with one that is not
// a number (RFC 9110 §7.6.2: 1*DIGIT), which is passed on as it came.
func maxForwards(raw []byte) (n uint64, ok bool) {
	for f := (fields{raw}); ; {
		k, v, ok := f.next()
		if !ok {
			return 0, false
		}
		if strings.EqualFold(b2s(k), "Max-Forwards") {
			n, err := strconv.ParseUint(b2s(v), 10, 64)
			return n, err == nil
		}
	}
}

// authority is the authority of an absolute-form request target, nil for
// any other form.
func authority(target []byte) []byte {
	i := bytes.Index(target, []byte("://"))
	if i <= 0 || bytes.IndexByte(target[:i], '/') >= 0 {
		return nil // origin-form ("/a://b") or no scheme
	}
	a := target[i+3:]
	if j := bytes.IndexAny(a, "/?#"); j >= 0 {
		a = a[:j]
	}
	return a
}

// headerLine cuts the first line off raw, a header section as received
// (RawHeaders): the line without its line end, the rest after it, and
// whether it ended in CRLF rather than a bare LF. ok is false when raw
// holds no line end. lenient and fromHTTP both read the section through
// it, so the lines lenient checks are the fields fromHTTP passes on.
func headerLine(raw []byte) (line, rest []byte, crlf, ok bool) {
	i := bytes.IndexByte(raw, '\n')
	if i < 0 {
		return nil, nil, false, false
	}
	line, rest = raw[:i], raw[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		return line[:len(line)-1], rest, true, true
	}
	return line, rest, false, true
}

// fields walks the fields of a header section as received (RawHeaders),
// in order: next gives each one's name and its value, the blanks around
// it trimmed, and false at the section's end. A line without a name (the
// empty line that ends the section) is skipped: lenient has refused the
// other kinds before anything reads a request's fields through this.
type fields struct{ raw []byte }

func (f *fields) next() (name, value []byte, ok bool) {
	for {
		line, rest, _, more := headerLine(f.raw)
		if !more {
			f.raw = nil
			return nil, nil, false
		}
		f.raw = rest
		if colon := bytes.IndexByte(line, ':'); colon > 0 {
			return line[:colon], bytes.Trim(line[colon+1:], " \t"), true
		}
	}
}

// rawPath is the request's path as received. An absolute-form target may
// have none ("http://a.example?x=1"), which is "/" (RFC 9112 §3.2.2, as in
// an origin-form target), as fasthttp normalizes it.
func rawPath(ctx *fasthttp.RequestCtx) []byte {
	path := ctx.URI().PathOriginal()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if len(path) == 0 {
		return slash
	}
	return path
}

var slash = []byte("/")

// samePath reports whether raw, the path as received, percent-decodes to
// norm, the path fasthttp normalized from it (decoded, with "//", "." and
// ".." resolved). Decoding is fasthttp's: an invalid escape stays as is.
func samePath(raw, norm []byte) bool {
	if string(raw) == string(norm) {
		return true
	}
	j := 0
	for i := 0; i < len(raw); i, j = i+1, j+1 {
		c := raw[i]
		if c == '%' && i+2 < len(raw) {
			if hi, lo := unhex(raw[i+1]), unhex(raw[i+2]); hi < 16 && lo < 16 {
				c, i = hi<<4|lo, i+2
			}
		}
		if j >= len(norm) || norm[j] != c {
			return false
		}
	}
	return j == len(norm)
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 16
}

// fromHTTP copies the client's request into the form plugins see, without
// the fields no plugin or origin should take from a client: hop-by-hop ones,
// Host (the request's host is its own field) and those reserved to Wedge
// (wire.Reserved), which an application behind a CGI-style gateway would
// read as what the edge verified. The strings are copies held in x
// (MemExchange.CopyString), reused by the next request x serves, so the
// copy allocates nothing once x is warm.
func (n *Node) fromHTTP(ctx *fasthttp.RequestCtx, x *exchange) {
	r := &x.Req
	r.Method = x.CopyString(ctx.Method())
	r.Scheme = "http"
	if ctx.IsTLS() {
		r.Scheme = "https"
	}
	r.Host = x.CopyString(ctx.Host())
	r.Path = x.CopyString(rawPath(ctx))
	r.RawQuery = x.CopyString(ctx.URI().QueryString())
	r.Proto = x.CopyString(ctx.Request.Header.Protocol())
	x.scratch = appendAddr(x.scratch[:0], ctx.RemoteAddr())
	r.ClientAddr = x.CopyString(x.scratch)
	x.scratch = strconv.AppendUint(append(x.scratch[:0], n.idBase...), n.reqID.Add(1), 36)
	r.ID = x.CopyString(x.scratch)
	conn := x.conn[:0]
	// The fields as the client sent them, names spelt as sent
	// (DisableHeaderNamesNormalizing), in its order: plugins see the order
	// of first appearance (header_names, wasm/abi/README.md). fasthttp's
	// Header.All puts Host, Content-Type, User-Agent and Cookie first,
	// spells them its way and merges Cookie lines into one. lenient has
	// refused what does not split into lines of name and value.
	for f := (fields{ctx.Request.Header.RawHeaders()}); ; {
		k, v, ok := f.next()
		if !ok {
			break
		}
		name := b2s(k)
		if strings.EqualFold(name, "Connection") {
			conn = append(conn, x.CopyString(v))
		}
		if hopByHop(name) || strings.EqualFold(name, "Host") || wire.Reserved(k) ||
			strings.EqualFold(name, manifest.PinTokenHeader) { // the admin token: canary.go's pinOf
			// wantsTunnel reads the section again only where this is set.
			x.chain.upgrade = x.chain.upgrade || strings.EqualFold(name, "Upgrade")
			continue
		}
		if ctx.IsOptions() && strings.EqualFold(name, "Max-Forwards") {
			// answeredHere answered a 0.
			if mf, err := strconv.ParseUint(b2s(v), 10, 64); err == nil && mf > 0 {
				x.scratch = strconv.AppendUint(x.scratch[:0], mf-1, 10)
				v = x.scratch
			}
		}
		r.Header.Add(x.CopyString(k), x.CopyString(v))
	}
	dropConnectionListed(&r.Header, conn)
	clear(conn)
	x.conn = conn[:0]
	// The body is readBody's (stream.go): it may stream.
}

// appendAddr appends a's text as a.String() has it: "ip:port", "[ip]:port"
// for IPv6, an IPv4 address in IPv6 form as IPv4. A TCP address without a
// zone is formatted without the allocations of TCPAddr.String.
func appendAddr(dst []byte, a net.Addr) []byte {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.Zone != "" {
		return append(dst, a.String()...)
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return append(dst, a.String()...)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(ta.Port)).AppendTo(dst)
}

// write sends the response as the chain left it. Framing is fasthttp's:
// Content-Length comes from the body, and hop-by-hop fields never pass.
// The body goes to fasthttp as it is, never copied: a shared one (stored
// in the cache) costs nothing more, any other counts against the node's
// writes until fasthttp is done with it, and past their limit the
// response is refused. It returns the status sent.
func (n *Node) write(ctx *fasthttp.RequestCtx, r *host.Response, shared bool, own *[]byte) int {
	var cost int64
	if !shared {
		// What the write keeps alive is the whole buffer.
		cost = int64(cap(r.Body))
	}
	if len(r.Body) > 0 && !n.writes.start(cost) {
		n.m.writeRefused.Inc()
		ctx.Error("503 Service Unavailable: too many responses being written to slow clients\n", fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.Set("Retry-After", "5")
		ctx.SetConnectionClose()
		return fasthttp.StatusServiceUnavailable
	}
	status := r.Status
	if status == 0 {
		status = fasthttp.StatusBadGateway
	}
	ctx.SetStatusCode(status)
	var conn []string
	for _, f := range r.Header.Fields {
		if strings.EqualFold(f.Name, "Connection") {
			conn = append(conn, f.Value)
		}
	}
	dropConnectionListed(&r.Header, conn)
	dated := false
	for _, f := range r.Header.Fields {
		if hopByHop(f.Name) {
			continue
		}
		if strings.EqualFold(f.Name, "Date") {
			// The origin's, or the stored one on a hit: a cache does not
			// change it, Age says how old it is (RFC 9110 §6.6.1).
			if !dated {
				setDate(&ctx.Response.Header, f.Value)
				dated = true
			}
			continue
		}
		ctx.Response.Header.Add(f.Name, f.Value)
	}
	switch {
	case len(r.Body) > 0:
		setBody(ctx, r.Body, cost, &n.writes, own)
	case ctx.IsHead():
		// How long a GET's body would be (RFC 9110 §9.3.2), as the origin
		// says: an answer to HEAD has no body to take it from.
		if v, ok := r.Header.Get("Content-Length"); ok {
			if cl, err := strconv.ParseUint(v, 10, 62); err == nil {
				ctx.Response.Header.SetContentLength(int(cl))
			}
		}
	}
	return status
}

// transportError answers requests fasthttp could not parse or accept.
func (n *Node) transportError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := transportClass(err)
	n.m.refused.WithLabelValues(strconv.Itoa(status)).Inc()
	ctx.Error(strconv.Itoa(status)+" "+http.StatusText(status)+": "+msg+"\n", status)
	ctx.SetConnectionClose()
	n.logUnserved(ctx)
}

// logUnserved writes the access-log line of a request answered without
// serve (what parsed of it, which may be nothing: fasthttp could not read
// it, or its header alone refused it), at the time of the answer: fasthttp
// sets ctx.Time only for a request it could read.
//
// Behind a trusted proxy the line names the client its X-Forwarded-For
// names, as serve's lines do (realip.go), not the proxy.
func (n *Node) logUnserved(ctx *fasthttp.RequestCtx) {
	if n.alog != nil {
		if n.cfg.trustedProxies != nil {
			if named := n.realClient(ctx); named != nil {
				defer releaseClient(ctx, named)
			}
		}
		logged := false
		n.alog.finish(ctx, time.Now(), &logged)
	}
}

// transportClass is the answer to a request fasthttp could not parse or
// accept, and the whole of what the node says about it: fasthttp's error
// quotes what the client sent ("invalid header value %q"), credentials
// included, so its text goes neither to the client nor to the log.
func transportClass(err error) (status int, msg string) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, "request body larger than the limit"
	case errors.As(err, &small) || errors.Is(err, fasthttp.ErrSmallReadBuffer):
		return fasthttp.StatusRequestHeaderFieldsTooLarge, "request header larger than the limit"
	case errors.Is(err, errBareLF):
		return fasthttp.StatusBadRequest, "bare LF in the header section"
	case errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout():
		// The read deadline (read_timeout) passed mid-request: fasthttp
		// hands over the connection's net.Error.
		return fasthttp.StatusRequestTimeout, "request not received in time"
	}
	return fasthttp.StatusBadRequest, "malformed request"
}

// dropConnectionListed removes the fields the Connection field values
// name: they are hop-by-hop too (RFC 9110 §7.6.1).
func dropConnectionListed(h *host.Header, conn []string) {
	for _, v := range conn {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
}

func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// hopByHop reports the fields that never pass the edge either way: those
// of one connection (wire.HopByHop) and the framing fasthttp computes itself.
func hopByHop(name string) bool {
	return wire.HopByHop(name) || strings.EqualFold(name, "Content-Length")
}
