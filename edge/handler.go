package edge

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

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
	wreq  wire.Request
	wresp wire.Response
	held  []*wasm.Module
	idBuf []byte
}

func (x *exchange) reset() {
	x.Req = host.Request{Header: host.Header{Fields: x.Req.Header.Fields[:0]}}
	// The body is never reused: a cached response loaded into the
	// exchange shares its body with the cache.
	x.Resp = host.Response{Header: host.Header{Fields: x.Resp.Header.Fields[:0]}}
	x.Vals.Reset()
	clear(x.held)
	x.held = x.held[:0]
}

// serve is the request path: route, plugin chain (request phase in order),
// origin unless a plugin answered, response phase in reverse, write.
func (n *Node) serve(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	x := n.pool.Get().(*exchange)
	defer n.pool.Put(x)
	x.reset()

	rt := n.acquire(ctx, x)
	if rt == nil {
		n.m.unrouted.Inc()
		ctx.Error("404 Not Found: no route for this host and path\n", fasthttp.StatusNotFound)
		return
	}
	n.fromHTTP(ctx, &x.Req)
	ran := 0
	answered := false
	for ran < len(x.held) {
		act, err := x.held[ran].OnRequest(&x.MemExchange)
		ran++
		if err != nil {
			n.pluginError(rt, x.held[ran-1], abi.PhaseRequest, err)
		}
		if act == abi.ActionAnswer {
			answered = true
			break
		}
	}
	if !answered {
		// Headers plugins put on the response before the origin answered
		// are added to the origin's response (ABI: response phase).
		pending := append([]host.HeaderField(nil), x.Resp.Header.Fields...)
		rt.origin.exchange(n, &x.Req, &x.Vals, &x.wreq, &x.wresp, &x.Resp)
		x.Resp.Header.Fields = append(x.Resp.Header.Fields, pending...)
	}
	for i := ran - 1; i >= 0; i-- {
		if err := x.held[i].OnResponse(&x.MemExchange); err != nil {
			n.pluginError(rt, x.held[i], abi.PhaseResponse, err)
		}
	}
	for _, m := range x.held {
		m.Release()
	}
	n.write(ctx, &x.Resp)
	rt.m.observe(x.Resp.Status, time.Since(start))
}

// acquire routes the request and takes a reference on every plugin of its
// chain, so both phases run on the versions the request started with even
// if a reload or swap happens meanwhile. A generation retired between
// loading it and acquiring is retried on the new one.
func (n *Node) acquire(ctx *fasthttp.RequestCtx, x *exchange) *route {
	for {
		rt := n.gen.Load().router.match(ctx.Host(), ctx.Path())
		if rt == nil {
			return nil
		}
		ok := true
		for _, p := range rt.chain {
			m := p.Acquire()
			if m == nil {
				ok = false
				break
			}
			x.held = append(x.held, m)
		}
		if ok {
			return rt
		}
		for _, m := range x.held {
			m.Release()
		}
		clear(x.held)
		x.held = x.held[:0]
	}
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
	for k, v := range ctx.Request.Header.All() {
		if string(k) == "Host" || string(k) == "host" {
			continue
		}
		r.Header.Add(string(k), string(v))
	}
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
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = fasthttp.StatusRequestEntityTooLarge, "request body larger than the limit"
	case errors.As(err, &small) || errors.Is(err, fasthttp.ErrSmallReadBuffer):
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header larger than the limit"
	case errors.Is(err, fasthttp.ErrTimeout):
		status, msg = fasthttp.StatusRequestTimeout, "request not received in time"
	}
	n.m.refused.WithLabelValues(strconv.Itoa(status)).Inc()
	ctx.Error(strconv.Itoa(status)+" "+http.StatusText(status)+": "+msg+"\n", status)
	ctx.SetConnectionClose()
}

func statusText(code int) string { return http.StatusText(code) }

// hopByHop are the fields that describe one connection, not the message
// (RFC 9110 §7.6.1), plus the framing fasthttp computes itself.
func hopByHop(name string) bool {
	for _, h := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"} {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}
