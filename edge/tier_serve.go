// The regional cache tier at the POP that owns a key: the tier listener,
// where peers ask for what they missed.

package edge

import (
	"bytes"
	"errors"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/listeners"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/abi/httpcache"
	"github.com/talowa/wedge/wasm/host"
)

// ask is the pooled state of one ask at the tier listener.
type ask struct {
	wreq  wire.Request
	wresp wire.Response
	frame []byte
	raw   []byte    // the header section, for a canary's split
	ip    [16]byte  // the client's address, for a canary's split
	chain tierChain // the one step the ask runs
}

// tierServer is the tier listener's server: bounded as the node's own
// listener is, bodies by the largest ask (maxAsk).
func (n *Node) tierServer() *fasthttp.Server {
	lim := &n.cfg.Limits
	return &fasthttp.Server{
		Handler:                       n.serveTier,
		Name:                          "wedge",
		MaxRequestBodySize:            maxAsk(lim),
		ErrorHandler:                  tierTransportError,
		Concurrency:                   lim.MaxConns,
		IdleTimeout:                   time.Duration(lim.IdleTimeout),
		ReadTimeout:                   time.Duration(lim.ReadTimeout),
		WriteTimeout:                  time.Duration(lim.WriteTimeout),
		DisableHeaderNamesNormalizing: true,
		NoDefaultContentType:          true,
		NoDefaultServerHeader:         true,
		Logger:                        slogPrintf{n.log},
		SecureErrorLogMessage:         true,
	}
}

// tierTransportError answers what fasthttp could not take as an ask, as
// the node's listener does (transportClass), and closes the connection.
func tierTransportError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := transportClass(err)
	ctx.Error(strconv.Itoa(status)+" "+fasthttp.StatusMessage(status)+": "+msg+"\n", status)
	ctx.SetConnectionClose()
}

// maxAsk bounds an ask's frame: a GET's head, compressed, and the values
// plugins set, which a header section the node takes from a client
// bounds several times over. fasthttp allocates a body whole from the
// length a request announces, before reading it or the frame's MAC is
// checked: bounded by the largest envelope (16 MiB), 100 connections that
// announced one and sent a byte held 1.5 GB.
func maxAsk(lim *Limits) int { return max(64<<10, 4*lim.MaxHeaderBytes) }

// ServeTier answers peers' asks on ln, the tier listener, until
// Shutdown. A node without a tier (no tier.listen) refuses to.
func (n *Node) ServeTier(ln net.Listener) error {
	if n.tier.codec == nil {
		return errors.New("edge: tier: no tier.listen in the config")
	}
	if !n.lns.Add(ln) {
		return nil // after Shutdown
	}
	if err := n.tier.srv.Serve(listeners.Retry(ln, n.log)); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// serveTier answers one ask: a frame sealed with the tier key, which is
// authenticated before anything else happens. What it cannot open is
// refused with the status an origin service answers (401, 400, 413);
// an ask it opened gets an envelope: the answer, or a failure that sends
// the asker to the origin.
func (n *Node) serveTier(ctx *fasthttp.RequestCtx) {
	t := &n.tier
	switch {
	case string(ctx.Path()) != wire.Path:
		ctx.Error("404 Not Found\n", fasthttp.StatusNotFound)
		return
	case !ctx.IsPost():
		ctx.Response.Header.Set("Allow", fasthttp.MethodPost)
		ctx.Error("405 Method Not Allowed: frames are POSTed\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	a, _ := t.asks.Get().(*ask)
	if a == nil {
		a = new(ask)
	}
	defer t.asks.Put(a)
	x, err := t.codec.DecodeRequest(ctx.PostBody(), &a.wreq)
	if err != nil {
		t.m.refused.Inc()
		switch {
		case errors.Is(err, wire.ErrAuth):
			ctx.Error("401 Unauthorized: "+err.Error()+"\n", fasthttp.StatusUnauthorized)
		case errors.Is(err, wire.ErrTooLarge):
			ctx.Error("413 Request Entity Too Large: "+err.Error()+"\n", fasthttp.StatusRequestEntityTooLarge)
		default:
			ctx.Error("400 Bad Request: "+err.Error()+"\n", fasthttp.StatusBadRequest)
		}
		return
	}
	a.wresp.Reset()
	// The exchange goes back to the pool once the answer is sealed: the
	// answer's body may be in its buffer.
	ex := n.pool.Get().(*exchange)
	defer n.pool.Put(ex)
	if why := n.answerAsk(a, ex); why != "" {
		a.wresp.Reset()
		a.wresp.Status, a.wresp.Scope = fasthttp.StatusBadGateway, wire.ScopeRequest
		a.wresp.Error = append(a.wresp.Error, why...)
	} else {
		t.m.ok.Inc()
	}
	a.frame, _, err = t.codec.AppendResponse(a.frame[:0], x, &a.wresp)
	if errors.Is(err, wire.ErrTooLarge) {
		// The asker remembers the key and streams it from the origin.
		a.wresp.Reset()
		a.wresp.Status, a.wresp.Scope = fasthttp.StatusBadGateway, wire.ScopeRequest
		a.wresp.Error = append(a.wresp.Error, tooLargeText...)
		a.frame, _, err = t.codec.AppendResponse(a.frame[:0], x, &a.wresp)
	}
	a.wresp.Body = nil // it may be the cache's: never decode into it
	if err != nil {
		n.log.Warn("edge: tier: sealing an answer failed", "err", err)
		ctx.Error("500 Internal Server Error\n", fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType("application/wedge")
	ctx.SetBody(a.frame)
}

// answerAsk runs the ask in a on x: the cache step it names, alone, on
// the request as the asker's chain left it, its origin being the owner's
// shared fetch; the answer goes into a.wresp. It returns why it could not
// answer, "" when it did.
func (n *Node) answerAsk(a *ask, x *exchange) (why string) {
	t := &n.tier
	cond := takeCond(&a.wreq) // tier_http.go
	v, ok := takeTierValues(&a.wreq)
	if !ok {
		t.m.refused.Inc()
		return "tier: no valid tier values"
	}
	// The asker's budget, when it sent one, bounds the owner's work.
	deadline := time.Now().Add(time.Duration(a.wreq.Timeout) * time.Microsecond)
	if a.wreq.Timeout == 0 {
		deadline = time.Now().Add(tierPurgeWait)
	}
	if v.purge > t.purged.Load() && !t.waitPurged(v.purge, deadline) {
		t.m.behind.Inc()
		return "tier: purges not applied yet"
	}
	g := n.gen.Load()
	if !g.ref() {
		t.m.refused.Inc()
		return "tier: shutting down"
	}
	defer g.unref()
	// By the route's name, not the request's host and path: the steps
	// after the cache at the asker may have rewritten those.
	rt := namedRoute(g.router, v.step.route)
	if rt == nil || !rt.tier || v.step.index >= len(rt.chain) || rt.chain[v.step.index].stable.m.Name() != v.step.name {
		t.m.refused.Inc()
		return "tier: no such tiered route and step"
	}
	s := rt.chain[v.step.index]
	// The route's and step's own strings from here: the ask's bytes are
	// reused after it, while a revalidation it starts is not done.
	v.step = tierStep{route: rt.name, index: v.step.index, name: s.stable.m.Name()}
	ip := a.ip[:0]
	if addr, err := netip.ParseAddr(b2s(a.wreq.Client)); err == nil {
		ip = clientIP(addr, &a.ip)
	}
	a.raw = a.raw[:0]
	for i := range a.wreq.Header {
		f := &a.wreq.Header[i]
		a.raw = append(append(append(append(a.raw, f.Name...), ": "...), f.Value...), "\r\n"...)
	}
	x.reset()
	x.hop = "-tier"
	if v.hop == hopShield {
		x.hop = "-shield"
	}
	fromAsk(x, &a.wreq)
	var av askerValidators
	if cond {
		av.take(x)
		// The asker's entry is stale: the owner's answer must not be a
		// stale copy of its own, which would leave the asker as far
		// behind (tier_http.go, Foreground).
		x.foreground = true
	}
	// The fetch may outlast the ask, to the end of the asker's request's
	// budget: an origin slower than the ask then still fills this cache.
	// Never past this route's own budget.
	if v.budget > 0 {
		deadline = time.Now().Add(v.budget)
	}
	if d := time.Now().Add(rt.timeout); (a.wreq.Timeout == 0 && v.budget == 0) || d.Before(deadline) {
		deadline = d
	}
	c := &a.chain
	peer, _ := netip.ParseAddr(b2s(a.wreq.Peer))
	l := s.forClient(a.raw, ip)
	*c = tierChain{n: n, rt: rt, l: l, b: s.breakerOf(l), step: v.step, hop: v.hop, deadline: deadline,
		key: c.key[:0], wreq: c.wreq, wresp: c.wresp, peer: peer}
	defer func() { c.n, c.rt, c.l, c.b = nil, nil, nil, nil }()
	start := time.Now()
	x.flow.Run(c, x, &x.MemExchange)
	// The version that ran the ask records it for the rollout gates, as
	// for a request of the owner's own clients.
	observeChain([]*step{s}, []*loaded{c.l}, c.failed, x.flow.Answered(), x.Resp.Status, time.Since(start))
	if rv := x.flow.Revalidation(&x.MemExchange); rv != nil {
		if !g.ref() {
			rv.Done()
		} else {
			t.bg.Add(1)
			bc := &tierChain{n: n, rt: rt, l: c.l, b: c.b, step: v.step, hop: v.hop, deadline: time.Now().Add(rt.timeout), peer: peer}
			go func() {
				defer t.bg.Done()
				defer g.unref()
				defer rv.Done()
				host.RunRevalidation(bc, rv.Exchange())
			}()
		}
	}
	x.hop, x.foreground = "", false
	if c.err != nil {
		t.m.failed.Inc()
		if isTooLarge(c.err) {
			return tooLargeText
		}
		return "tier: fetch failed"
	}
	if cond {
		av.answer304(x)
	}
	toAnswer(&x.Resp, &a.wresp)
	return ""
}

// namedRoute is the route of r named name, nil if none is or two are
// (the config does not make names unique, and a wrong route must not
// answer).
func namedRoute(r *router, name string) *route {
	var found *route
	for _, rts := range r.byHost {
		for _, rt := range rts {
			if rt.name == name {
				if found != nil {
					return nil
				}
				found = rt
			}
		}
	}
	for _, rt := range r.any {
		if rt.name == name {
			if found != nil {
				return nil
			}
			found = rt
		}
	}
	return found
}

// clientIP is the bytes of addr that a canary's address split hashes,
// as step.choose does at the POP the client reached: four for IPv4
// (mapped or not), the /64 of IPv6, one host's as the tunnel bound and
// the ratelimit plugin count it (tunnelClient): a host picks any address
// in its /64, and its privacy addresses rotate, so by its whole address
// one host fell on both sides of a canary, and could choose its side.
func clientIP(addr netip.Addr, buf *[16]byte) []byte {
	*buf = addr.As16()
	if addr.Unmap().Is4() {
		return buf[12:]
	}
	return buf[:8]
}

// tierValues are what an ask carries in its tier values.
type tierValues struct {
	step   tierStep
	hop    string
	purge  uint64
	budget time.Duration // 0 when the asker sent none
}

// takeTierValues takes the tier values off r: what its asker tiered it
// by. ok is false when one is missing or malformed (the budget may be
// missing). The route and step names are r's bytes, valid until r decodes
// again: no allocation.
func takeTierValues(r *wire.Request) (v tierValues, ok bool) {
	var haveRoute, haveStep, havePurge bool
	budgetOK := true
	vals := r.Values[:0]
	for _, f := range r.Values {
		switch string(f.Name) {
		case tierRouteValue:
			v.step.route, haveRoute = b2s(f.Value), true
		case tierStepValue:
			index, name, found := strings.Cut(b2s(f.Value), ":")
			i, err := strconv.ParseUint(index, 10, 16)
			v.step.index, v.step.name, haveStep = int(i), name, found && err == nil && name != ""
		case tierHopValue:
			switch string(f.Value) {
			case hopRegion:
				v.hop = hopRegion
			case hopShield:
				v.hop = hopShield
			}
		case tierPurgeValue:
			var err error
			v.purge, err = strconv.ParseUint(b2s(f.Value), 10, 64)
			havePurge = err == nil
		case tierBudgetValue:
			us, err := strconv.ParseUint(b2s(f.Value), 10, 64)
			// Capped where a Duration would overflow: the route's budget
			// bounds it anyway.
			v.budget, budgetOK = time.Duration(min(us, math.MaxInt64/1000))*time.Microsecond, err == nil
		default:
			vals = append(vals, f)
			continue
		}
	}
	// The slots past the end held fields now moved down: cleared, so that
	// no two fields share buffers when they are reused.
	for i := len(vals); i < len(r.Values); i++ {
		r.Values[i] = wire.Field{}
	}
	r.Values = vals
	return v, haveRoute && haveStep && havePurge && budgetOK && v.hop != ""
}

// fromAsk fills x from an ask, as fromHTTP fills it from a client's
// request: the request as the asker's chain left it, its forwarded values
// forwarded again.
func fromAsk(x *exchange, w *wire.Request) {
	r := &x.Req
	r.Method = x.CopyString(w.Method)
	r.Scheme = x.CopyString(w.Scheme)
	r.Host = x.CopyString(w.Host)
	r.Path = x.CopyString(w.Path)
	r.RawQuery = x.CopyString(w.Query)
	r.Proto = "HTTP/1.1"
	r.ClientAddr = net.JoinHostPort(string(w.Client), "0")
	r.ID = x.CopyString(w.ID)
	for i := range w.Header {
		r.Header.Add(x.CopyString(w.Header[i].Name), x.CopyString(w.Header[i].Value))
	}
	r.Body = bytes.Clone(w.Body)
	for i := range w.Values {
		x.Vals.Set(w.Values[i].Name, w.Values[i].Value, abi.ValueForward)
	}
}

// toAnswer fills w from the response the step left, as fromWire reads
// one: the status, the fields that pass the edge, and the body, which w
// then shares.
func toAnswer(r *host.Response, w *wire.Response) {
	w.Status = uint64(r.Status)
	if w.Status == 0 {
		w.Status = fasthttp.StatusBadGateway
	}
	for _, f := range r.Header.Fields {
		if !hopByHop(f.Name) {
			w.AddHeader(s2b(f.Name), s2b(f.Value))
		}
	}
	w.Body = r.Body
}

// tierChain is the one step an ask runs, with the owner's shared fetch
// as its origin; pooled with the ask, its buffers kept.
type tierChain struct {
	n        *Node
	rt       *route
	l        *loaded
	b        *breakers // l's on rt
	step     tierStep
	hop      string
	deadline time.Time
	key      []byte
	wreq     wire.Request
	wresp    wire.Response
	err      error      // the fetch's failure
	failed   uint64     // bit 0: the step failed
	peer     netip.Addr // the asker's trusted proxy (wire.Request.Peer)
}

var _ host.Chain = (*tierChain)(nil)

func (c *tierChain) Len() int { return 1 }

func (c *tierChain) OnRequest(_ int, ex host.Exchange) (abi.Action, error) {
	return c.b.onRequest(c.l, ex) // pluginbreaker.go: the route's breaker of the version
}

func (c *tierChain) OnResponse(_ int, ex host.Exchange) error { return c.b.onResponse(c.l, ex) }

func (c *tierChain) Failed(_ int, phase abi.Phase, err error) {
	c.failed = 1
	if err != errBreakerOpen {
		c.n.pluginError(c.rt, c.l.m, phase, "", err)
	}
}

// Origin fetches the request through the collapse; a failure is answered
// as the origin's would be, for the step's response phase, and recorded
// so that the asker is told to fall back, except a refusal by the
// origin's limit: an answer, 503, for the asker to pass on.
func (c *tierChain) Origin(x *host.MemExchange) {
	// As requestChain.forward does: the step does not store an answer a
	// purge began after, nor does a later request join the fetch
	// (tierFetch). The asker is handed it, as any request waiting for the
	// fetch: its own purge position decides whether it takes it.
	x.Fetched = c.n.cache.Purges()
	toWire(c.n, &x.Req, &x.Vals, c.peer, &c.wreq)
	c.key = httpcache.AppendKey(c.key[:0], x.Req.Scheme, x.Req.Host, x.Req.Path, x.Req.RawQuery)
	s := c.step
	if v, ok := x.Vals.Get(stateKey); ok {
		st, ok := httpcache.DecodeState(b2s(v))
		s.cond = ok && ownValidators(&st) // a shield absorbs this step's validations
	}
	// A key this owner found too large lately is answered so at once:
	// each asking POP fetched it here, then again from the origin itself.
	if c.n.tier.big.has(c.key) {
		c.err = errTierTooLarge
	} else {
		c.err = c.n.tierFetch(c.rt, s, c.hop, c.key, c.deadline, &c.wreq, &c.wresp)
	}
	switch {
	case c.err == nil && upstreamTooLarge(&c.wresp):
		c.err = errTierTooLarge // tier_http.go
		c.n.tier.big.add(c.key)
	case errors.Is(c.err, errOriginBusy):
		// The limit at work (originlimit.go), not a failure: the asker
		// answers this 503 rather than falling back to the origin the
		// limit protects, so that the region still asks it once per key.
		originBusyResponse(&x.Resp)
		c.err = nil
		return
	}
	c.rt.origin.settle(c.n, x.Req.ID, c.err, &c.wresp, &x.Resp)
}

func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// forClient is the client's side of the canary split, by the header
// section raw (a header or cookie split) or else by its address ip (four
// bytes for IPv4: clientIP): choose past a Wedge-Pin, and all of it for an
// ask, which a Wedge-Pin does not reach.
func (s *step) forClient(raw, ip []byte) *loaded {
	if s.canary == nil {
		return s.stable
	}
	key := s.split.value(raw)
	if key == nil {
		key = ip
	}
	if clientBucket(s.stable.m.Name(), key) < s.share {
		return s.canary
	}
	return s.stable
}
