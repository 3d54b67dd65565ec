package edge

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge/internal/wsframe"
	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/internal/connx"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// WebSocket tunnels.
//
// A GET with Connection: upgrade and Upgrade: websocket runs its route's
// request phase like any request: a plugin may answer it (a 401, a 429).
// When none does, the edge opens a connection of the tunnel's own to the
// route's origin and sends the handshake there as a sealed envelope
// (originclient.Tunnel, wire.TunnelPath); the origin passes it to an
// application. A 101 is written to the client as it came, without the
// response phase (nothing is stored, no body runs through plugins), and
// from then on the node copies bytes both ways between the client's
// connection and the origin's. Any other answer is served as a response,
// response phase included, and the origin's connection closed.
//
// While copying, a wsframe.Tracker on each direction reads the frame
// headers: it bounds messages (limits.websocket.max_message_bytes) and
// knows where frames end, so that the close frames the node sends of its
// own go between two frames: 1001 (going away) on a drain (Shutdown, or a
// reload or release that changed what the tunnel's handshake ran on: see
// ran), and when the tunnel was idle for limits.websocket.idle_timeout
// (or a write to one side waited that long: forward); 1009 to the client
// for a message over the limit, the application's side then closed; 1002
// for a frame RFC 6455 does not allow. After its close frames a tunnel has
// limits.websocket.drain_timeout to finish the close handshake, then its
// connections are closed.

// WebSocketLimits bound the node's WebSocket tunnels.
type WebSocketLimits struct {
	// MaxTunnels bounds the tunnels open at once, handshakes in progress
	// included; a handshake past it is answered 503 with Retry-After.
	// Default 10,000.
	MaxTunnels int `yaml:"max_tunnels"`
	// MaxTunnelsPerClient bounds, within MaxTunnels, those of one client:
	// its address as the canary split and the access log know it (the
	// connection's peer), an IPv6 one by its /64 (tunnelClient). A
	// handshake past it is answered 503 with Retry-After as past
	// MaxTunnels. Without it one client could open tunnels until
	// MaxTunnels, and every other client's handshake was refused.
	// Default a tenth of MaxTunnels (1,000 of the default 10,000), at
	// least 1: ten addresses are needed to fill the node, and the
	// subscribers a carrier-grade NAT puts behind one address (tens to a
	// few hundred, each given a block of its ports) each keep a tunnel or
	// several. Set it to MaxTunnels to bound the node only (behind a
	// load balancer that hides clients' addresses, every client is one).
	MaxTunnelsPerClient int `yaml:"max_tunnels_per_client"`
	// IdleTimeout closes a tunnel no byte crossed, either way, for that
	// long, with close 1001 both ways. Default 2m. It also bounds each
	// write to either side: one that stops reading while the other keeps
	// sending ends the tunnel once a write to it waited that long (close
	// 1001 to the side still reading).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxMessageBytes bounds a message's payload, summed over its
	// fragments, either way, as it crosses (compressed, where the two ends
	// agreed on permessage-deflate). Past it the client gets close 1009
	// and the application's side is closed. Default 16 MiB.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// DrainTimeout is how long a tunnel the node closes (shutdown, reload,
	// idle, a limit) has after its close frames to finish the close
	// handshake before its connections are closed. Default 5s.
	DrainTimeout Duration `yaml:"drain_timeout"`
}

func (l *WebSocketLimits) setDefaults() {
	if l.MaxTunnels <= 0 {
		l.MaxTunnels = 10_000
	}
	if l.MaxTunnelsPerClient <= 0 {
		l.MaxTunnelsPerClient = max(1, l.MaxTunnels/10)
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = Duration(2 * time.Minute)
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = 16 << 20
	}
	if l.DrainTimeout <= 0 {
		l.DrainTimeout = Duration(5 * time.Second)
	}
}

// Why a tunnel closed: the reason label of tunnel_closes_total.
const (
	closeClient      = iota // the client closed it, or went away
	closeUpstream           // the application closed it, or went away
	closeIdle               // nothing crossed for idle_timeout
	closeTooBig             // a message past max_message_bytes
	closeDrain              // the node shut down, or a reload or release changed its route
	closeError              // a frame RFC 6455 does not allow
	closeLimit              // refused: max_tunnels were open
	closeClientLimit        // refused: max_tunnels_per_client were open from its client
	numCloseReasons
)

var closeReasons = [numCloseReasons]string{"client", "upstream", "idle", "too_big", "drain", "error", "limit", "client_limit"}

// WebSocket close codes (RFC 6455 §7.4.1) the node sends.
const (
	codeGoingAway   = 1001
	codeProtocol    = 1002
	codeMessageSize = 1009
)

// tunnels are the node's open tunnels, bounded.
type tunnels struct {
	lim    WebSocketLimits
	mu     sync.Mutex
	slots  int                // handshakes in progress and open tunnels
	per    map[netip.Addr]int // slots by client (tunnelClient), none at 0
	open   map[*tunnel]struct{}
	cur    *generation    // the one the last drain kept tunnels for; nil before any
	closed bool           // Shutdown began: no more tunnels
	wg     sync.WaitGroup // the open tunnels' goroutines

	gauge  prometheus.Gauge
	bytes  [2]prometheus.Counter // by half: to the origin, to the client
	closes [numCloseReasons]prometheus.Counter
}

func (ts *tunnels) init(lim WebSocketLimits, reg prometheus.Registerer) {
	const ns = "wedge_edge"
	ts.lim, ts.open, ts.per = lim, map[*tunnel]struct{}{}, map[netip.Addr]int{}
	ts.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "tunnels_open",
		Help: "WebSocket tunnels open (bounded by limits.websocket.max_tunnels)."})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "tunnel_bytes_total",
		Help: "Bytes tunnels carried, by direction: to_origin (from clients) or to_client."}, []string{"direction"})
	closes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "tunnel_closes_total",
		Help: "Tunnels ended, by reason: client, upstream (the application), idle, too_big (a message past max_message_bytes), drain (shutdown, or a reload or release that changed the tunnel's route), error (a frame RFC 6455 does not allow), limit (a handshake refused at max_tunnels), client_limit (refused at max_tunnels_per_client)."},
		[]string{"reason"})
	reg.MustRegister(ts.gauge, bytes, closes)
	ts.bytes = [2]prometheus.Counter{bytes.WithLabelValues("to_origin"), bytes.WithLabelValues("to_client")}
	for i, r := range closeReasons {
		ts.closes[i] = closes.WithLabelValues(r)
	}
}

// reserve takes a slot for a handshake from client (tunnelClient). It
// returns -1, or why it refused: closeLimit at max_tunnels (or once
// Shutdown began), closeClientLimit at max_tunnels_per_client.
func (ts *tunnels) reserve(client netip.Addr) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch {
	case ts.closed || ts.slots >= ts.lim.MaxTunnels:
		return closeLimit
	case ts.per[client] >= ts.lim.MaxTunnelsPerClient:
		return closeClientLimit
	}
	ts.slots++
	ts.per[client]++
	return -1
}

// release gives back client's slot: of a handshake that opened no
// tunnel, or of a tunnel that ended (remove).
func (ts *tunnels) release(client netip.Addr) {
	ts.mu.Lock()
	ts.releaseLocked(client)
	ts.mu.Unlock()
}

func (ts *tunnels) releaseLocked(client netip.Addr) {
	ts.slots--
	// Dropped at 0: a map of every address that ever opened a tunnel
	// would grow without bound.
	if ts.per[client]--; ts.per[client] <= 0 {
		delete(ts.per, client)
	}
}

// tunnelClient is who a handshake from addr counts against for
// max_tunnels_per_client: the client's address, as the canary split and
// the access log have it (the connection's peer, or behind a trusted
// proxy the client its X-Forwarded-For names), an IPv4 one in IPv6 form
// as IPv4, an IPv6 one by its /64 as the ratelimit plugin counts by
// default and the canary split places it. An ISP gives a household or a
// host at least a /64, from which it takes whatever addresses it likes:
// counted by address, one IPv6 client could fill the node.
func tunnelClient(addr net.Addr) netip.Addr {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	if ip = ip.Unmap(); ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// add registers an open tunnel; false once Shutdown began. A handshake
// that was in progress during a drain joins after it: one the drain would
// have closed is stopped at once.
func (ts *tunnels) add(t *tunnel) bool {
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		return false
	}
	ts.open[t] = struct{}{}
	ts.wg.Add(1)
	drained := ts.cur != nil && !t.ran.in(ts.cur)
	ts.mu.Unlock()
	ts.gauge.Inc()
	if drained {
		t.stop(closeDrain, codeGoingAway, codeGoingAway)
	}
	return true
}

func (ts *tunnels) remove(t *tunnel) {
	ts.mu.Lock()
	delete(ts.open, t)
	ts.releaseLocked(t.from)
	ts.mu.Unlock()
	ts.gauge.Dec()
	ts.closes[t.why.Load()].Inc()
	ts.wg.Done()
}

// drain closes, with 1001 both ways, the tunnels that keep (a reload's
// or a release's generation) does not carry over (ran.in), or every
// tunnel when keep is nil. A fleet release or canary step swaps in a
// generation as a reload does: closing every tunnel of the POP at each
// wave had every client reconnect at once, on routes it did not touch.
func (ts *tunnels) drain(keep *generation) {
	ts.mu.Lock()
	ts.cur = keep // for the tunnels add registers from now on
	old := make([]*tunnel, 0, len(ts.open))
	for t := range ts.open {
		old = append(old, t)
	}
	ts.mu.Unlock()
	for _, t := range old {
		if keep == nil || !t.ran.in(keep) {
			t.stop(closeDrain, codeGoingAway, codeGoingAway)
		}
	}
}

// shutdown refuses new tunnels, drains the open ones and waits until they
// have ended: each within drain_timeout of its close frames, or all at
// once when ctx ends first.
func (ts *tunnels) shutdown(ctx context.Context) {
	ts.mu.Lock()
	ts.closed = true
	ts.mu.Unlock()
	ts.drain(nil)
	done := make(chan struct{})
	go func() {
		ts.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	ts.mu.Lock()
	for t := range ts.open {
		t.closeConns()
	}
	ts.mu.Unlock()
	<-done
}

// wantsTunnel reports whether the request asks for a WebSocket: a GET in
// HTTP/1.1 with "upgrade" among its Connection options and "websocket"
// among its Upgrade protocols (RFC 6455 §4.1). It reads the header section
// as received, without allocating, and only for a GET; serve asks only
// when fromHTTP saw an Upgrade field, so other requests skip the pass.
func wantsTunnel(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsGet() || !ctx.Request.Header.IsHTTP11() {
		return false
	}
	conn, upgrade := false, false
	for f := (fields{ctx.Request.Header.RawHeaders()}); ; {
		k, v, ok := f.next()
		if !ok {
			break
		}
		switch name := b2s(k); {
		case strings.EqualFold(name, "Connection"):
			conn = conn || hasToken(v, "upgrade")
		case strings.EqualFold(name, "Upgrade"):
			upgrade = upgrade || hasToken(v, "websocket")
		}
	}
	return conn && upgrade
}

// Upgrading implements host.Upgrading: the cache stays out of a handshake.
func (x *exchange) Upgrading() bool { return x.chain.upgrade }

// hasToken reports whether the comma-separated list v holds tok, in any
// case. An Upgrade protocol may carry a version ("websocket/13"), which
// does not match.
func hasToken(v []byte, tok string) bool {
	for item := range bytes.SplitSeq(v, []byte{','}) {
		if strings.EqualFold(b2s(bytes.TrimSpace(item)), tok) {
			return true
		}
	}
	return false
}

// openTunnel is the origin step of a handshake no plugin answered: it
// sends the handshake to the route's origin on a connection of its own.
// On 101 the connection waits in c.tun for the write (startTunnel);
// anything else is the response, served as any other.
func (n *Node) openTunnel(c *requestChain, x *host.MemExchange) {
	resp := &x.Resp
	c.from = tunnelClient(c.ctx.RemoteAddr())
	if why := n.tun.reserve(c.from); why >= 0 {
		n.tun.closes[why].Inc()
		what := "too many WebSocket tunnels open at this node"
		if why == closeClientLimit {
			what = "too many WebSocket tunnels open from this client"
		}
		textResponse(resp, fasthttp.StatusServiceUnavailable, what)
		resp.Header.Add("Retry-After", "5")
		return
	}
	o := c.rt.origin
	toWire(n, &x.Req, &x.Vals, c.peer, &c.wreq)
	conn, err := o.client.Tunnel(time.Now().Add(c.rt.timeout), &c.wreq, &c.wresp)
	if conn == nil {
		n.tun.release(c.from)
	}
	if err != nil {
		status := originclient.Status(err)
		if re := (*originclient.RefusedError)(nil); errors.As(err, &re) && re.Status == 400 && strings.Contains(re.Reason, "unknown flags") {
			// The refusal of an origin built before the handshake's own
			// flag (0x04), which refuses every handshake until it is
			// upgraded (an edge older than its origin fails to read the
			// answer instead: no refusal).
			n.log.Error("origin refused a tunnel handshake: it predates this edge's handshake frames; upgrade the origins first (the new ones take old edges' handshakes with -legacy-tunnel-handshakes)",
				"origin", o.name, "err", err)
		} else {
			n.log.Warn("origin failed a tunnel handshake", "origin", o.name, "status", status, "err", err)
		}
		textResponse(resp, status, "origin "+o.name)
		return
	}
	fromWire(&c.wresp, resp)
	resp.Body, c.wresp.Body = c.wresp.Body, nil
	c.tun = conn
}

// textResponse makes resp the node's own answer: status, a text body
// saying it, nothing cacheable.
func textResponse(resp *host.Response, status int, what string) {
	*resp = host.Response{Status: status, Header: host.Header{Fields: resp.Header.Fields[:0]},
		Body: fmt.Appendf(nil, "%d %s: %s\n", status, http.StatusText(status), what)}
	resp.Header.Add("Content-Type", "text/plain; charset=utf-8")
}

// startTunnel writes the 101 that opened c.tun to the client and hands the
// connection to the tunnel, which runs once the request is done. What the
// handshake ran (ran) decides whether a reload or release drains it.
//
// fasthttp skips the hijack handler when it cannot first write what it
// holds for the connection (pipelined responses, within write_timeout):
// then, drain_timeout past that, the origin's connection is closed and the
// slot released. Whichever of the two comes first takes them.
func (n *Node) startTunnel(ctx *fasthttp.RequestCtx, c *requestChain, r *host.Response) int {
	origin, from := c.tun, c.from
	c.tun = nil
	head := appendSwitch(nil, r)
	on := newRan(ctx, c)
	var taken atomic.Bool
	lost := time.AfterFunc(n.srv.WriteTimeout+time.Duration(n.tun.lim.DrainTimeout), func() {
		if taken.CompareAndSwap(false, true) {
			origin.Close()
			n.tun.release(from)
		}
	})
	ctx.HijackSetNoResponse(true)
	// Never written (the tunnel writes its own), but read by the access
	// log, which logged the 200 fasthttp starts a response with.
	ctx.Response.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	ctx.Hijack(func(client net.Conn) {
		if taken.CompareAndSwap(false, true) {
			lost.Stop()
			n.tun.run(on, from, client, origin, head)
		}
	})
	return fasthttp.StatusSwitchingProtocols
}

// ran is what a tunnel's handshake ran on, against which a reload or a
// release's generation is compared: the tunnel carries over when the
// request would now take the same route, to the same origin address,
// through the same plugin versions with the same configs (what the
// handshake was judged by); else the drain closes it.
type ran struct {
	host, path []byte   // as the handshake was routed
	route      string   // the route's name
	origin     string   // its origin's address
	mods       []modKey // the version each step of the chain ran
}

func newRan(ctx *fasthttp.RequestCtx, c *requestChain) *ran {
	host, path := ctx.Host(), ctx.Path()
	b := append(append(make([]byte, 0, len(host)+len(path)), host...), path...)
	r := &ran{host: b[:len(host)], path: b[len(host):], route: c.rt.name, origin: c.rt.origin.addr,
		mods: make([]modKey, len(c.held))}
	for i, l := range c.held {
		r.mods[i] = l.key
	}
	return r
}

// in reports whether g carries over a tunnel whose handshake ran on r. A
// step of the route may run either of its versions, stable or canary: a
// canary's share changing keeps the tunnels that ran either, and one
// rolled back or promoted drains those that ran the version gone.
func (r *ran) in(g *generation) bool {
	if r == nil {
		return false
	}
	rt := g.router.match(r.host, r.path)
	if rt == nil || rt.name != r.route || rt.origin.addr != r.origin || len(rt.chain) != len(r.mods) {
		return false
	}
	for i, s := range rt.chain {
		if s.stable.key != r.mods[i] && (s.canary == nil || s.canary.key != r.mods[i]) {
			return false
		}
	}
	return true
}

// appendSwitch appends the 101 the client gets: the upgrade's own fields,
// then the application's, but hop-by-hop ones and fields a plugin might
// have set badly.
func appendSwitch(b []byte, r *host.Response) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"...)
	var conn []string
	for _, f := range r.Header.Fields {
		if strings.EqualFold(f.Name, "Connection") {
			conn = append(conn, f.Value)
		}
	}
	dropConnectionListed(&r.Header, conn)
	for _, f := range r.Header.Fields {
		if hopByHop(f.Name) || !abi.ValidHeaderName([]byte(f.Name)) || !abi.ValidHeaderValue([]byte(f.Value)) {
			continue
		}
		b = append(append(append(append(b, f.Name...), ": "...), f.Value...), "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// run writes the 101 to the client and carries the tunnel until it ends.
// It runs as fasthttp's hijack handler, which closes client after it.
// from is the client its slot was reserved for.
func (ts *tunnels) run(on *ran, from netip.Addr, client, origin net.Conn, head []byte) {
	t := &tunnel{ts: ts, ran: on, from: from, client: client, origin: origin, stopped: make(chan struct{})}
	t.why.Store(-1)
	t.last.Store(time.Now().UnixNano())
	raw := connx.Unwrap(client)
	t.up = half{t: t, src: client, wake: raw, dst: origin, side: closeClient, bytes: ts.bytes[0],
		tr: wsframe.Tracker{Masked: true, Max: uint64(ts.lim.MaxMessageBytes)}}
	// Writes to the client go to the connection under fasthttp's hijacked
	// one, and so do the deadlines inject moves: a drain may stop the
	// tunnel just as it ends, and fasthttp clears the hijacked connection
	// once run returns. Reads stay on the hijacked one, which holds what
	// the client sent after its handshake, and end before run returns.
	t.down = half{t: t, src: origin, wake: origin, dst: raw, side: closeUpstream, bytes: ts.bytes[1],
		tr: wsframe.Tracker{Max: uint64(ts.lim.MaxMessageBytes)}}
	// fasthttp's read and write deadlines of the request are not the
	// tunnel's.
	client.SetDeadline(time.Now().Add(time.Duration(ts.lim.DrainTimeout)))
	_, err := client.Write(head)
	client.SetDeadline(time.Time{})
	if err != nil || !ts.add(t) {
		origin.Close()
		ts.release(from)
		return
	}
	defer ts.remove(t)
	t.serve()
}

// tunnel is one open tunnel: the client's connection, the origin's, and a
// half for each direction.
type tunnel struct {
	ts             *tunnels
	ran            *ran       // what its handshake ran, not the generation: one kept would outlive its reload
	from           netip.Addr // its client, whose slot remove releases
	client, origin net.Conn
	up, down       half
	last           atomic.Int64 // when bytes last came either way, Unix ns
	why            atomic.Int32 // the close reason, once known; -1 before
	stopped        chan struct{}
	stopOnce       sync.Once
	dropOrigin     atomic.Bool // close the origin once the client's close frame went
}

// because records why the tunnel ends, unless that is known already.
func (t *tunnel) because(why int) { t.why.CompareAndSwap(-1, int32(why)) }

func (t *tunnel) isStopped() bool {
	select {
	case <-t.stopped:
		return true
	default:
		return false
	}
}

// stop ends the tunnel from the node's side: close frames with the codes
// given to the client and the origin, each at the next frame boundary of
// its direction, and drain_timeout for the close handshake (serve). With
// toOrigin 0 the origin's connection is closed instead, once the client's
// close frame went (the down half reads the origin until its frame ends).
// It only asks: the halves write, so that a drain of many tunnels whose
// clients stopped reading does not wait on each in turn.
func (t *tunnel) stop(why int, toClient, toOrigin uint16) {
	t.because(why)
	t.stopOnce.Do(func() {
		t.dropOrigin.Store(toOrigin == 0)
		t.down.inject(toClient)
		if toOrigin != 0 {
			t.up.inject(toOrigin)
		}
		close(t.stopped)
	})
}

// closeConns closes both connections: the client's under fasthttp's
// hijacked one, whose Close does nothing until the tunnel returns.
func (t *tunnel) closeConns() {
	connx.Unwrap(t.client).Close()
	t.origin.Close()
}

// serve runs both halves until both end. One that ends passes its end on
// (a half close, or the tunnel stopped), and from then on, or from a stop,
// the other has drain_timeout to end before the connections are closed.
func (t *tunnel) serve() {
	ended := make(chan *half, 2)
	for _, h := range []*half{&t.up, &t.down} {
		go func() {
			h.run()
			ended <- h
		}()
	}
	var timer *time.Timer
	var bound <-chan time.Time
	stopped := t.stopped
	for left := 2; left > 0; {
		select {
		case h := <-ended:
			left--
			h.ended()
		case <-stopped:
			stopped = nil
		case <-bound:
			t.closeConns()
			continue
		}
		if timer == nil {
			timer = time.NewTimer(time.Duration(t.ts.lim.DrainTimeout))
			defer timer.Stop()
			bound = timer.C
		}
	}
	t.closeConns()
}

// half is one direction of a tunnel.
type half struct {
	t        *tunnel
	src, dst net.Conn
	wake     net.Conn // src, or the connection under it, for inject
	side     int      // the close reason when src ends or fails first
	bytes    prometheus.Counter

	mu   sync.Mutex // held while writing to dst; guards tr and shut
	tr   wsframe.Tracker
	shut bool          // nothing more goes to dst: a close frame of ours went, or it failed
	want atomic.Uint32 // a close code to send at the next frame boundary

	err error // why src ended, once run returned
}

// Sizes of a half's read buffer. A half reads into a small one of its own,
// all an idle half holds of its own (tens of thousands may be open; the
// client's connection keeps fasthttp's read buffer too); a read that
// fills it moves the half to a large one from a pool, for as long as
// reads keep coming in large pieces.
const (
	smallRead = 2 << 10
	largeRead = 32 << 10
)

var largeBufs = sync.Pool{New: func() any { b := make([]byte, largeRead); return &b }}

// run copies src to dst, frame by frame, until src ends. Nothing read for
// idle_timeout either way stops the tunnel; once stopped, reads wait
// without a deadline, for the close handshake or the drain bound.
func (h *half) run() {
	small := make([]byte, smallRead)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			largeBufs.Put(large)
		}
	}()
	idle := time.Duration(h.t.ts.lim.IdleTimeout)
	held := 0 // bytes of an incomplete frame header at the start of buf
	for {
		deadline := time.Time{}
		if !h.t.isStopped() {
			deadline = time.Unix(0, h.t.last.Load()).Add(idle)
		}
		if err := h.src.SetReadDeadline(deadline); err != nil {
			h.err = err
			return
		}
		if h.want.Load() != 0 {
			// After the deadline, which inject moves to wake the read:
			// a close asked for before it is seen here, one after it
			// ends the read.
			h.mu.Lock()
			h.injectLocked()
			drop := h.shut && h == &h.t.down && h.t.dropOrigin.Load()
			h.mu.Unlock()
			if drop {
				h.t.origin.Close()
			}
		}
		n, err := h.src.Read(buf[held:])
		if n > 0 {
			h.t.last.Store(time.Now().UnixNano())
			h.bytes.Add(float64(n))
			full := held+n == len(buf)
			held = h.forward(buf[:held+n])
			switch {
			case full && large == nil:
				large = largeBufs.Get().(*[]byte)
				buf = *large
				copy(buf, small[:held])
			case !full && large != nil && n < smallRead-wsframe.MaxHeader:
				copy(small, buf[:held])
				buf = small
				largeBufs.Put(large)
				large = nil
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The other direction may have moved meanwhile: the next
			// deadline counts from whichever moved last.
			if time.Since(time.Unix(0, h.t.last.Load())) >= idle {
				h.t.stop(closeIdle, codeGoingAway, codeGoingAway)
			}
		default:
			h.err = err
			return
		}
	}
}

// forward sends what data holds of whole frames to dst and returns how
// many bytes of an incomplete frame header it moved to data's start, for
// the next read to complete. A frame it refuses stops the tunnel; once a
// close frame of ours went, or a write failed, bytes are dropped.
//
// A write waits idle_timeout at most: idleness is judged from reads, and
// a client that stopped reading but kept sending held its tunnel, and the
// application's messages to it, forever. A write that failed stops the
// tunnel.
func (h *half) forward(data []byte) (held int) {
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		return 0
	}
	n, err := h.tr.Scan(data, h.want.Load() != 0)
	if h.tr.Closed() {
		// Whoever sent the first close frame closed the tunnel.
		h.t.because(h.side)
	}
	var werr error
	if n > 0 {
		h.dst.SetWriteDeadline(time.Now().Add(time.Duration(h.t.ts.lim.IdleTimeout)))
		if _, werr = h.dst.Write(data[:n]); werr != nil {
			h.shut = true
			if errors.Is(werr, os.ErrDeadlineExceeded) {
				h.t.because(closeIdle)
			}
			h.t.because(h.other())
		}
	}
	why, code := closeError, uint16(codeProtocol)
	if errors.Is(err, wsframe.ErrTooBig) {
		why, code = closeTooBig, codeMessageSize
	}
	if err != nil {
		// Before any close frame goes: the client's answer to it, read by
		// the other half before stop ran, was counted as its own close.
		h.t.because(why)
	}
	if err != nil && h == &h.t.down {
		// Scan stopped before the frame: the client's close goes now,
		// before the half reads on.
		h.want.Store(uint32(code))
	}
	h.injectLocked()
	if err != nil {
		h.shut = true
	}
	if !h.shut {
		held = copy(data, data[n:])
	}
	h.mu.Unlock()
	switch {
	case err != nil:
		h.t.stop(why, code, 0)
	case werr != nil:
		h.t.stop(h.other(), codeGoingAway, codeGoingAway)
	}
	return held
}

// other is the close reason for dst failing: the other side's.
func (h *half) other() int {
	if h.side == closeClient {
		return closeUpstream
	}
	return closeClient
}

// inject asks for a close frame with code to go to dst at the next frame
// boundary, and wakes the half's read: its goroutine writes the frame
// (run), now if the half is between frames, else when its frame ends.
func (h *half) inject(code uint16) {
	h.want.Store(uint32(code))
	h.wake.SetReadDeadline(time.Now())
}

// injectLocked sends the close frame asked for, if the half is between
// frames; a direction that carried a close frame already gets none.
func (h *half) injectLocked() {
	code := uint16(h.want.Load())
	if code == 0 || h.shut || !h.tr.Boundary() {
		return
	}
	h.shut = true
	if h.tr.Closed() {
		return
	}
	masked := h == &h.t.up // to the origin, as a client sends
	var key [4]byte
	if masked {
		binary.BigEndian.PutUint32(key[:], rand.Uint32())
	}
	var b [8]byte
	h.dst.SetWriteDeadline(time.Now().Add(time.Duration(h.t.ts.lim.DrainTimeout)))
	h.dst.Write(wsframe.AppendClose(b[:0], code, masked, key))
}

// ended passes on the end of src: a half close of dst when src ended
// cleanly (EOF), the tunnel stopped when it failed. An origin that went
// away (an application restarting) without a close frame, between two
// frames, leaves the client a close 1001 first: it saw its connection
// drop (1006), as if the edge had failed.
func (h *half) ended() {
	if h == &h.t.down {
		h.mu.Lock()
		if !h.shut && !h.tr.Closed() && h.tr.Boundary() {
			h.want.Store(codeGoingAway)
			h.injectLocked()
		}
		h.mu.Unlock()
	}
	if errors.Is(h.err, io.EOF) {
		h.t.because(h.side)
		if closeWrite(h.dst) == nil {
			return
		}
	}
	if h.t.isStopped() {
		return
	}
	h.t.stop(h.side, codeGoingAway, codeGoingAway)
}

// closeWrite half-closes c, under fasthttp's hijacked connection and the
// node's own wrappers, where it is a TCP (or TLS) connection.
func closeWrite(c net.Conn) error {
	c = connx.Unwrap(c)
	switch lc := c.(type) {
	case *lineEndConn:
		c = lc.Conn
	case *lineEndTLSConn:
		c = lc.tls
	}
	return connx.CloseWrite(c)
}
