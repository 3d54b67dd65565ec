package edge

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// exchange is the per-request state, pooled: the request and response as
// plugins see them, the envelopes for the origin, and the plugin versions
// the request holds.
type exchange struct {
	host.MemExchange
	wreq    wire.Request
	wresp   wire.Response
	held    []*loaded          // the version of each plugin of the chain this request runs
	failed  uint64             // bit i: held[i] failed
	pending []host.HeaderField // the request phase's response fields
}

func (x *exchange) reset() {
	x.Req = host.Request{Header: host.Header{Fields: x.Req.Header.Fields[:0]}}
	// The body is never reused: a cached response loaded into the
	// exchange shares its body with the cache.
	x.Resp = host.Response{Header: host.Header{Fields: x.Resp.Header.Fields[:0]}}
	x.Vals.Reset()
}

// serve is the request path: route, plugin chain (request phase in order),
// origin unless a plugin answered, response phase in reverse, write.
func (n *Node) serve(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	x := n.pool.Get().(*exchange)
	defer n.pool.Put(x)
	x.reset()

	if status, msg := lenient(ctx); status != 0 {
		// fasthttp parses these leniently; the framing of what follows on
		// the connection is not to be trusted either.
		n.m.refused.WithLabelValues(strconv.Itoa(status)).Inc()
		ctx.Error(strconv.Itoa(status)+" "+http.StatusText(status)+": "+msg+"\n", status)
		ctx.SetConnectionClose()
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
	if !samePath(ctx.URI().PathOriginal(), ctx.Path()) {
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
	n.fromHTTP(ctx, &x.Req)
	ran := 0
	answered := false
	for ran < len(x.held) {
		act, err := x.held[ran].m.OnRequest(&x.MemExchange)
		ran++
		if err != nil {
			x.fail(ran - 1)
			n.pluginError(rt, x.held[ran-1].m, abi.PhaseRequest, err)
		}
		if act == abi.ActionAnswer {
			answered = true
			break
		}
	}
	if !answered {
		// Headers plugins put on the response before the origin answered
		// are added to the origin's response (ABI: response phase).
		x.pending = append(x.pending[:0], x.Resp.Header.Fields...)
		rt.origin.exchange(n, &x.Req, &x.Vals, &x.wreq, &x.wresp, &x.Resp)
		x.Resp.Header.Fields = append(x.Resp.Header.Fields, x.pending...)
		clear(x.pending)
	}
	for i := ran - 1; i >= 0; i-- {
		if err := x.held[i].m.OnResponse(&x.MemExchange); err != nil {
			x.fail(i)
			n.pluginError(rt, x.held[i].m, abi.PhaseResponse, err)
		}
	}
	n.write(ctx, &x.Resp)
	d := time.Since(start)
	rt.m.observe(x.Resp.Status, d)
	// Health goes to the versions that ran: a plugin behind one that
	// answered did not see the request.
	for i, l := range x.held[:ran] {
		l.h.observe(x.Resp.Status, d, x.failed&(1<<min(i, 63)) != 0)
	}
	clear(x.held)
	x.held, x.failed = x.held[:0], 0
	g.release()
}

func (x *exchange) fail(i int) { x.failed |= 1 << min(i, 63) }

// acquire routes the request, takes a reference on its generation (which
// holds the plugin versions and origins of its routes, so both phases run
// on the versions the request started with even if a reload happens
// meanwhile) and picks the version of each plugin it runs. A generation
// retired between loading it and acquiring is retried on the new one; ok is
// false when the current one is retired (Shutdown).
func (n *Node) acquire(ctx *fasthttp.RequestCtx, x *exchange) (_ *generation, _ *route, ok bool) {
	for {
		g := n.gen.Load()
		if !g.acquire() {
			if n.gen.Load() == g {
				return nil, nil, false
			}
			continue
		}
		rt := g.router.match(ctx.Host(), ctx.Path())
		if rt == nil {
			g.release()
			return nil, nil, true
		}
		for _, s := range rt.chain {
			x.held = append(x.held, s.choose(ctx))
		}
		return g, rt, true
	}
}

// lenient reports what fasthttp accepts but RFC 9110/9112 do not, or allow
// only as a choice that is safer refused at an edge:
//   - a major version other than 1: fasthttp answers HTTP/2.0 or HTTP/9.9
//     as 1.0; RFC 9112 §2.3 lets a server refuse it with 505;
//   - a field name that is not a token (RFC 9110 §5.1): fasthttp takes
//     "X A: b" and would pass the name on;
//   - a bare LF ending a field line: RFC 9112 §2.2 allows reading it as a
//     line end, but fasthttp does so only when a CRLF CRLF follows
//     somewhere in its buffer, and a parser before the edge may read the
//     two lines as one field;
//   - obs-fold: RFC 9112 §5.2 allows replacing it with a space, which
//     fasthttp does, or a 400; a fold is how a second field hides in
//     another's value, so refuse it.
func lenient(ctx *fasthttp.RequestCtx) (status int, msg string) {
	if p := ctx.Request.Header.Protocol(); len(p) < 6 || p[5] != '1' {
		return fasthttp.StatusHTTPVersionNotSupported, "only HTTP/1.x"
	}
	for k := range ctx.Request.Header.All() {
		if !abi.ValidToken(k) {
			return fasthttp.StatusBadRequest, "field name not a token"
		}
	}
	// The header section as received, after the request line.
	raw := ctx.Request.Header.RawHeaders()
	for off := 0; ; {
		i := bytes.IndexByte(raw[off:], '\n')
		if i < 0 {
			break
		}
		i += off
		if i == 0 || raw[i-1] != '\r' {
			return fasthttp.StatusBadRequest, "bare LF in the header section"
		}
		if i+1 < len(raw) && (raw[i+1] == ' ' || raw[i+1] == '\t') {
			return fasthttp.StatusBadRequest, "obsolete line folding"
		}
		off = i + 1
	}
	return 0, ""
}

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

func (n *Node) pluginError(rt *route, m *wasm.Module, phase abi.Phase, err error) {
	kind := "error"
	var ce *wasm.CallError
	if errors.As(err, &ce) {
		kind = ce.Kind.String()
	}
	n.log.Warn("plugin failed", "route", rt.name, "plugin", m.Name(), "version", m.Version(),
		"phase", phase, "kind", kind, "err", err)
}

// fromHTTP copies the client's request into the form plugins see.
func (n *Node) fromHTTP(ctx *fasthttp.RequestCtx, r *host.Request) {
	r.Method = string(ctx.Method())
	r.Scheme = "http"
	if ctx.IsTLS() {
		r.Scheme = "https"
	}
	r.Host = string(ctx.Host())
	r.Path = string(ctx.URI().PathOriginal())
	r.Path, _, _ = strings.Cut(r.Path, "?")
	r.RawQuery = string(ctx.URI().QueryString())
	r.Proto = string(ctx.Request.Header.Protocol())
	r.ClientAddr = ctx.RemoteAddr().String()
	r.ID = n.idBase + strconv.FormatUint(n.reqID.Add(1), 36)
	var conn []string
	for k, v := range ctx.Request.Header.All() {
		name := b2s(k)
		if strings.EqualFold(name, "Connection") {
			conn = append(conn, string(v))
		}
		if hopByHop(name) || strings.EqualFold(name, "Host") {
			continue
		}
		r.Header.Add(string(k), string(v))
	}
	dropConnectionListed(&r.Header, conn)
	r.Body = ctx.Request.Body()
}

// write sends the response as the chain left it. Framing is fasthttp's:
// Content-Length comes from the body, and hop-by-hop fields never pass.
func (n *Node) write(ctx *fasthttp.RequestCtx, r *host.Response) {
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
	for _, f := range r.Header.Fields {
		if hopByHop(f.Name) {
			continue
		}
		ctx.Response.Header.Add(f.Name, f.Value)
	}
	ctx.SetBody(r.Body)
}

// transportError answers requests fasthttp could not parse or accept.
func (n *Node) transportError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := fasthttp.StatusBadRequest, "malformed request"
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = fasthttp.StatusRequestEntityTooLarge, "request body larger than the limit"
	case errors.As(err, &small) || errors.Is(err, fasthttp.ErrSmallReadBuffer):
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header larger than the limit"
	case errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout():
		// The read deadline (read_timeout) passed mid-request: fasthttp
		// hands over the connection's net.Error.
		status, msg = fasthttp.StatusRequestTimeout, "request not received in time"
	}
	n.m.refused.WithLabelValues(strconv.Itoa(status)).Inc()
	ctx.Error(strconv.Itoa(status)+" "+http.StatusText(status)+": "+msg+"\n", status)
	ctx.SetConnectionClose()
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
