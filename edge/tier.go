// The regional cache tier, at the POP a client reached: which POP owns a
// cache key (SetPeers), whether a miss is tiered, and asking the owner.
// The owner's side, the tier listener, is tier_serve.go; the fetch the
// owner shares among concurrent misses is tier_collapse.go.

package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge/internal/rendezvous"
	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/abi/httpcache"
	"github.com/talowa/wedge/wasm/host"
)

// Peer is one live POP of the fleet, as SetPeers takes it.
type Peer struct {
	// POP and Region name it; Addr is its tier listener's address, ""
	// when it has none (it is then no member of the tier).
	POP, Region, Addr string
	// Self marks this node.
	Self bool
}

// The request values an ask carries to the owner, which strips them again.
const (
	// tierRouteValue names the route the asker routed the request by:
	// later steps may have rewritten its host and path since.
	tierRouteValue = "wedge-tier-route"
	// tierStepValue is "INDEX:NAME", the index in the route's chain and
	// the plugin of the step whose cache looked the request up: the one
	// step the owner runs (a chain may hold one plugin twice).
	tierStepValue = "wedge-tier-step"
	// tierHopValue is hopRegion or hopShield.
	tierHopValue = "wedge-tier-hop"
	// tierPurgeValue is the asker's applied purge position (SetPurged).
	tierPurgeValue = "wedge-tier-purge"
	// tierBudgetValue is the microseconds left of the asker's request's
	// budget when it asked: the owner's fetch may take that long, past the
	// ask's own deadline (tier_serve.go).
	tierBudgetValue = "wedge-tier-budget"

	hopRegion = "region"
	hopShield = "shield"
)

const (
	// tierConnect bounds connecting to a peer: a POP of the same region
	// answers a connect in milliseconds, and a dead one must cost little
	// more than that before the request falls back to the origin.
	tierConnect = time.Second
	// tierPurgeWait bounds how long an ask ahead of the owner's purge
	// position waits for the owner to apply the purges it lacks.
	tierPurgeWait = time.Second
	// tierAskMax bounds an ask: an owner that accepts and then hangs must
	// leave the request most of its budget for the origin. An owner
	// answers from its cache in milliseconds and a miss costs it one
	// origin fetch, so 2 s (or half the route's budget, if less) is ample
	// for a live one. An origin slower than that is fetched by the asker's
	// fallback too, but the owner's fetch goes on for the rest of the
	// request's budget (tierBudgetValue) and fills the owner's cache for
	// the region's next misses.
	tierAskMax = 2 * time.Second
)

// tier is a node's share of the regional cache tier. Its codec is nil
// when the config has no tier listener: the node then tiers nothing.
type tier struct {
	codec *wire.Codec
	srv   *fasthttp.Server // the tier listener's (tier_serve.go)
	peers atomic.Pointer[tierPeers]

	mu      sync.Mutex             // one SetPeers at a time
	clients map[string]*peerClient // by POP and address
	closed  bool                   // by shutdown: no more clients

	purgeMu sync.Mutex
	purged  atomic.Uint64
	caught  chan struct{} // closed (and replaced) when purged moves

	flights flights        // tier_collapse.go
	big     bigKeys        // tier_http.go
	asks    sync.Pool      // *ask (tier_serve.go)
	bg      sync.WaitGroup // background revalidations of asks
	m       tierMetrics
}

// tierPeers is one membership: per region, the POPs that own keys.
type tierPeers struct {
	regions map[string]*tierRegion
	others  bool // a POP other than this one is a member
}

// tierRegion is one region's members and the clients that reach them.
type tierRegion struct {
	set     *rendezvous.Set
	clients []*peerClient // by member; nil for this node
}

// peerClient is the client that asks one peer. refs counts its holders:
// the membership that lists the peer (one) and the asks using it; the
// last to let go closes it, so a peer that leaves mid-ask is closed when
// the ask is done, not under it.
type peerClient struct {
	*originclient.Client
	refs atomic.Int64
}

// hold takes a reference for an ask; false when the client is closed or
// closing (its peer left): the ask then falls back.
func (p *peerClient) hold() bool {
	for {
		r := p.refs.Load()
		if r == 0 {
			return false
		}
		if p.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release lets go of a reference, closing the client with the last.
func (p *peerClient) release() {
	if p.refs.Add(-1) == 0 {
		p.Client.Close()
	}
}

type tierMetrics struct {
	peer, self, fallback        prometheus.Counter
	ok, failed, refused, behind prometheus.Counter
}

func (t *tier) init(n *Node, cfg *Config) error {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wedge_tier_requests_total",
		Help: "Cacheable misses on tiered routes at the POP the client reached, by result: peer (the owner answered), self (this POP owns the key), fallback (asking failed: the origin answered)."},
		[]string{"result"})
	asks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wedge_tier_asks_total",
		Help: "Asks of peers at this POP's tier listener, by result: ok, failed (the fetch failed), refused (a bad frame, no tiered route or step), behind (this POP had not applied the asker's purges)."},
		[]string{"result"})
	collapsed := prometheus.NewCounter(prometheus.CounterOpts{Name: "wedge_tier_collapsed_total",
		Help: "Fetches of the tier at this POP that took the answer of the same request's fetch in progress rather than going to the shield or origin."})
	n.reg.MustRegister(requests, asks, collapsed)
	t.flights.collapsed = collapsed
	t.m = tierMetrics{peer: requests.WithLabelValues("peer"), self: requests.WithLabelValues("self"),
		fallback: requests.WithLabelValues("fallback"), ok: asks.WithLabelValues("ok"),
		failed: asks.WithLabelValues("failed"), refused: asks.WithLabelValues("refused"),
		behind: asks.WithLabelValues("behind")}
	t.caught = make(chan struct{})
	t.flights.m = map[string]*flight{}
	t.flights.purged = n.cache.KeyPurgedSince
	if cfg.Tier.Listen == "" {
		return nil
	}
	var err error
	if t.codec, err = wire.NewCodec(wire.Config{Keys: []wire.Key{cfg.Tier.key}, MinCompress: wire.DefaultMinCompress}); err != nil {
		return fmt.Errorf("edge: tier: %w", err)
	}
	t.srv = n.tierServer()
	return nil
}

// SetPeers sets the live POPs of the fleet, of every region (a route's
// shield is another region's): the POPs with an address, and this one,
// own the keys of their region from now on. It does not block on the
// network: a client for a new peer connects on its first ask, and one for
// a peer that left closes its idle connections. A node without a tier
// listener ignores it.
func (n *Node) SetPeers(peers []Peer) {
	t := &n.tier
	if t.codec == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return // after shutdown: the codec is closed
	}
	members := map[string][]Peer{n.cfg.Region: {{POP: n.cfg.POP, Region: n.cfg.Region, Self: true}}}
	seen := map[string]bool{n.cfg.POP: true}
	next := &tierPeers{regions: map[string]*tierRegion{}}
	for _, p := range peers {
		if p.Self || p.Addr == "" || seen[p.POP] {
			continue
		}
		seen[p.POP] = true
		members[p.Region] = append(members[p.Region], p)
		next.others = true
	}
	clients := map[string]*peerClient{}
	for region, ps := range members {
		r := &tierRegion{clients: make([]*peerClient, len(ps))}
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = p.POP
			if p.Self {
				continue
			}
			id := p.POP + " " + p.Addr
			c := t.clients[id]
			if c == nil {
				cl, err := n.tierClient(p)
				if err != nil {
					n.log.Warn("edge: tier: peer left out", "pop", p.POP, "addr", p.Addr, "err", err)
					continue // its keys go to the origin
				}
				c = &peerClient{Client: cl}
				c.refs.Store(1) // the membership's
			}
			clients[id], r.clients[i] = c, c
		}
		r.set = rendezvous.New(names...)
		next.regions[region] = r
	}
	t.peers.Store(next)
	for id, c := range t.clients {
		if clients[id] == nil {
			c.release()
		}
	}
	t.clients = clients
}

// tierClient is the client that asks peer p: no retries, a short connect
// and a breaker that opens fast (for 5 s, then a probe), since every
// failure falls back to the origin at once: on the first refused or
// broken connection, and on half of at least 3 asks in 10 s failing,
// timeouts included, so that a peer that accepts and hangs costs a few
// asks' budgets, not one per request. Its keys go to the origin
// meanwhile. It has no origin metrics (it is no origin): the
// wedge_tier_* series count asks.
func (n *Node) tierClient(p Peer) (*originclient.Client, error) {
	return originclient.New(originclient.Config{Addr: p.Addr, Codec: n.tier.codec, Name: "tier:" + p.POP,
		Logger: n.log, MaxRetries: -1, Timeout: tierAskMax,
		Breaker: originclient.BreakerConfig{Failures: 1, MinRequests: 3, Window: 10 * time.Second},
		Dial:    func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, tierConnect) }})
}

// SetPurged records the position of the last purge this node applied
// (0: unknown). Asks carry the asker's; an owner that is behind waits for
// its own to catch up before answering (tier_serve.go).
func (n *Node) SetPurged(seq uint64) { n.tier.setPurged(seq) }

func (t *tier) setPurged(seq uint64) {
	t.purgeMu.Lock()
	t.purged.Store(seq)
	close(t.caught)
	t.caught = make(chan struct{})
	t.purgeMu.Unlock()
}

// waitPurged waits until the node applied purges up to seq, at most
// tierPurgeWait and until deadline; it reports whether it did.
func (t *tier) waitPurged(seq uint64, deadline time.Time) bool {
	timer := time.NewTimer(min(tierPurgeWait, time.Until(deadline)))
	defer timer.Stop()
	for {
		t.purgeMu.Lock()
		caught := t.caught
		t.purgeMu.Unlock()
		if t.purged.Load() >= seq {
			return true
		}
		select {
		case <-caught:
		case <-timer.C:
			return t.purged.Load() >= seq
		}
	}
}

// stateKey is httpcache.StateKey, for Values.Get.
var stateKey = []byte(httpcache.StateKey)

// tiered fetches through the tier what the chain sends to the origin, when
// it is a GET on a tiered route, with no body streaming in, that a cache
// step looked up and forwarded with a state that may be stored, and the
// node has peers: from the POP of the region that owns the cache key, or,
// when that is this one, through the owner's shared fetch. It reports
// whether the answer is in x.Resp, with the failure that made it, if any,
// for the origin call's span; false sends the request to the origin as
// any other, within *timeout, which it lowers to what is left of the
// request's budget after a failed ask.
func (c *requestChain) tiered(x *host.MemExchange, timeout *time.Duration) (bool, error) {
	if c.cacheStep == 0 || !c.rt.tier || x.Req.Method != fasthttp.MethodGet || (c.st != nil && c.st.in != nil) {
		return false, nil
	}
	t := &c.n.tier
	ps := t.peers.Load()
	if ps == nil || !ps.others {
		return false, nil
	}
	v, ok := x.Vals.Get(stateKey)
	if !ok {
		return false, nil
	}
	st, ok := httpcache.DecodeState(b2s(v))
	if !ok || st.Mode != httpcache.ModeForward || st.NoStore {
		return false, nil
	}
	region := ps.regions[c.n.cfg.Region]
	c.key = httpcache.AppendKey(c.key[:0], x.Req.Scheme, x.Req.Host, x.Req.Path, x.Req.RawQuery)
	if t.big.has(c.key) {
		return false, nil // tier_http.go
	}
	owner := region.set.Owner(c.key)
	s := tierStep{route: c.rt.name, index: c.cacheStep - 1, name: c.held[c.cacheStep-1].m.Name(), cond: ownValidators(&st)}
	start := time.Now()
	deadline := start.Add(c.rt.timeout)
	toWire(c.n, &x.Req, &x.Vals, c.peer, &c.wreq)
	var err error
	if cl := region.clients[owner]; cl != nil && cl.hold() {
		err = c.n.ask(cl, s, hopRegion, askDeadline(start, deadline), deadline, &c.wreq, &c.wresp)
		cl.release()
		if err == nil {
			t.m.peer.Inc()
		}
	} else if region.set.Name(owner) == c.n.cfg.POP {
		err = c.n.tierFetch(c.rt, s, hopRegion, c.key, deadline, &c.wreq, &c.wresp)
		if err == nil && upstreamTooLarge(&c.wresp) {
			err = errTierTooLarge // tier_http.go: streamed from the origin instead
		}
		if err == nil {
			t.m.self.Inc()
		}
	} else {
		err = errNoClient
	}
	// A purge of the key, or of a tag the answer carries, begun while the
	// answer was on its way (since forward took the position) may be
	// newer than the answer's object: the answer is dropped.
	if err == nil && x.Fetched != c.n.cache.Purges() && c.n.cache.PurgedSince(x.Fetched, b2s(c.key), answerTags(&c.wresp)) {
		err = errPurged
	}
	if errors.Is(err, errOriginBusy) {
		// This POP's own fetch, refused by the origin's limit: the
		// fallback would be refused too.
		originBusyResponse(&x.Resp)
		return true, err
	}
	if err != nil {
		if isTooLarge(err) {
			t.big.add(c.key)
		}
		t.m.fallback.Inc()
		c.n.log.Debug("edge: tier: falling back to the origin", "route", c.rt.name, "err", err)
		*timeout = time.Until(deadline)
		return false, nil
	}
	c.rt.origin.settle(c.n, x.Req.ID, nil, &c.wresp, &x.Resp)
	return true, nil
}

// answerTags are the cache tags an owner's answer carries, as the cache
// plugin reads them (Surrogate-Key, Cache-Tag).
func answerTags(w *wire.Response) []string {
	var sk, ct []string
	for _, f := range w.Header {
		switch {
		case strings.EqualFold(string(f.Name), "Surrogate-Key"):
			sk = append(sk, string(f.Value))
		case strings.EqualFold(string(f.Name), "Cache-Tag"):
			ct = append(ct, string(f.Value))
		}
	}
	return httpcache.Tags(sk, ct, abi.MaxTags)
}

var (
	errNoClient = errors.New("edge: tier: the owner has no client")
	errPurged   = errors.New("edge: tier: a purge was applied during the ask")
)

// askDeadline is an ask's share of a request's budget, which began at
// start and ends at deadline: half of it, at most tierAskMax, so that a
// hung owner leaves the fallback at least the other half.
func askDeadline(start, deadline time.Time) time.Time {
	return start.Add(min(deadline.Sub(start)/2, tierAskMax))
}

// tierStep names the step an ask is for: its route, its index in the
// route's chain, and its plugin.
type tierStep struct {
	route string
	index int
	name  string
	// cond: the request's validators are the asking cache's own
	// (tier_http.go).
	cond bool
}

// ask sends wreq, the request as toWire made it, to a peer with the tier
// values added (and taken off again), and opens its answer into wresp,
// waiting until deadline; budget, the end of the request's budget, is
// how long the peer's fetch may take. A failure envelope is an error: the
// peer could not answer.
func (n *Node) ask(cl *peerClient, s tierStep, hop string, deadline, budget time.Time, wreq *wire.Request, wresp *wire.Response) error {
	values := len(wreq.Values)
	var buf [20]byte
	wreq.AddValue([]byte(tierRouteValue), []byte(s.route))
	wreq.AddValue([]byte(tierStepValue), append(append(strconv.AppendInt(buf[:0], int64(s.index), 10), ':'), s.name...))
	wreq.AddValue([]byte(tierHopValue), []byte(hop))
	wreq.AddValue([]byte(tierPurgeValue), strconv.AppendUint(buf[:0], n.tier.purged.Load(), 10))
	if left := time.Until(budget); left > 0 {
		wreq.AddValue([]byte(tierBudgetValue), strconv.AppendInt(buf[:0], left.Microseconds(), 10))
	}
	if s.cond {
		wreq.AddValue([]byte(tierCondValue), []byte("cache"))
	}
	err := cl.Do(deadline, wreq, wresp)
	wreq.Values = wreq.Values[:values]
	if err == nil && string(wresp.Error) == tooLargeText {
		err = errTierTooLarge
	} else if err == nil && len(wresp.Error) > 0 {
		err = fmt.Errorf("edge: tier: %s refused: %s", hop, wresp.Error)
	}
	return err
}

// shutdown stops the tier listener (its asks drain within ctx), waits
// for the revalidations asks started, and closes the clients and the
// codec.
func (t *tier) shutdown(ctx context.Context) error {
	if t.codec == nil {
		return nil
	}
	err := t.srv.ShutdownWithContext(ctx)
	done := make(chan struct{})
	go func() { t.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	t.mu.Lock()
	t.closed = true
	for _, c := range t.clients {
		c.release()
	}
	t.clients = nil
	t.mu.Unlock()
	t.codec.Close()
	return err
}

// CacheForwarded implements host.CacheForwarding: the step running now is
// the cache a tiered miss is asked for in.
func (x *exchange) CacheForwarded() { x.chain.cacheStep = x.chain.cur + 1 }

// HeaderAdd names the tier in the Cache-Status members a step adds on a
// tier ask: "wedge; hit" becomes "wedge-tier; hit" (x.hop "-tier"), so a
// client sees which tier answered.
func (x *exchange) HeaderAdd(m abi.Msg, name, value []byte) {
	if x.hop != "" && m == abi.MsgResponse && strings.EqualFold(b2s(name), "Cache-Status") {
		x.status = appendTierStatus(x.status[:0], value, x.hop)
		value = x.status
	}
	x.MemExchange.HeaderAdd(m, name, value)
}

// appendTierStatus appends the Cache-Status field line v with suffix
// added to the name of its first member, a token or a quoted string (a
// plugin adds one member per line, as the cache does).
func appendTierStatus(dst, v []byte, suffix string) []byte {
	if len(v) > 0 && v[0] == '"' {
		if end := bytes.IndexByte(v[1:], '"'); end >= 0 {
			end++
			return append(append(append(dst, v[:end]...), suffix...), v[end:]...)
		}
		return append(dst, v...)
	}
	end := bytes.IndexAny(v, ";, ")
	if end < 0 {
		end = len(v)
	}
	return append(append(append(dst, v[:end]...), suffix...), v[end:]...)
}
