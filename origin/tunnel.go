package origin

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/connx"
	"github.com/talowa/wedge/origin/wire"
)

// Tunneler is a Handler that also carries tunnels (WebSocket, RFC 6455):
// Proxy is one. A Server whose Handler is not answers tunnel handshakes
// with 501.
type Tunneler interface {
	// OpenTunnel sends the handshake req to an application by deadline
	// and fills resp with its answer, or with the origin's own failure.
	// When resp.Status is 101 it returns the connection to the
	// application, which carries the tunnel's bytes from then on; else
	// nil.
	OpenTunnel(deadline time.Time, req *wire.Request, resp *wire.Response) net.Conn
}

// DefaultMaxTunnels is ServerConfig.MaxTunnels when left 0.
const DefaultMaxTunnels = 10_000

// tunnelSet is what a Server knows of the tunnels it carries: how many,
// bounded, and their connections, which Shutdown closes.
type tunnelSet struct {
	mu     sync.Mutex
	max    int
	n      int // slots taken: handshakes in progress and open tunnels
	conns  map[*pipe]struct{}
	closed bool
	grace  time.Duration // ServerConfig.TunnelCloseGrace
	seen   handshakes    // origin/tunnel_replay.go
	legacy bool          // ServerConfig.LegacyTunnelHandshakes
}

// pipe is one open tunnel: the edge's connection and the application's.
type pipe struct{ edge, app net.Conn }

func (ts *tunnelSet) reserve() bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed || ts.n >= ts.max {
		return false
	}
	ts.n++
	return true
}

func (ts *tunnelSet) release() {
	ts.mu.Lock()
	ts.n--
	ts.mu.Unlock()
}

// add registers an open tunnel; false once the set is closed.
func (ts *tunnelSet) add(p *pipe) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	if ts.conns == nil {
		ts.conns = map[*pipe]struct{}{}
	}
	ts.conns[p] = struct{}{}
	return true
}

func (ts *tunnelSet) remove(p *pipe) {
	ts.mu.Lock()
	delete(ts.conns, p)
	ts.mu.Unlock()
}

// close closes every open tunnel and refuses new ones. The edge sends
// close frames on a drain; the origin only ends the connections.
func (ts *tunnelSet) close() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.closed = true
	for p := range ts.conns {
		connx.Unwrap(p.edge).Close()
		p.app.Close()
	}
}

// tunnel answers a tunnel handshake an edge POSTed to wire.TunnelPath: the
// frame is authenticated and decoded as on wire.Path, but it must have been
// sealed as a handshake (wire.Codec.DecodeTunnelRequest), so no request
// frame captured on the link opens a tunnel; the handshake goes
// to the application through the Handler (a Tunneler), and its answer goes
// back sealed. On 101 the connection becomes the tunnel: bytes are copied
// both ways, raw, until either side ends.
func (s *Server) tunnel(rc *fasthttp.RequestCtx) {
	if !rc.IsPost() {
		rc.Response.Header.SetBytesKV(headerAllow, methodPost)
		refuse(rc, fasthttp.StatusMethodNotAllowed, "method not allowed: frames are POSTed")
		return
	}
	start := time.Now()
	var req wire.Request
	var resp wire.Response
	frame, err := s.readBody(rc, nil) // bounded by MaxEnvelope, as any frame
	var x wire.Exchange
	if err == nil {
		if s.tunnels.legacy && !wire.IsTunnelHandshake(frame) {
			if x, err = s.codec.DecodeRequest(frame, &req); err == nil {
				s.m.legacyTunnel.Inc()
			}
		} else {
			x, err = s.codec.DecodeTunnelRequest(frame, &req)
		}
	}
	if err != nil {
		if errors.Is(err, wire.ErrAuth) && !wire.IsTunnelHandshake(frame) {
			s.logUnflagged(rc, err, start)
		}
		rc.SetConnectionClose()
		s.refuseFrame(rc, err)
		return
	}
	// A slot is taken only for a handshake that checked out: a peer
	// without the key holds none.
	if !s.tunnels.reserve() {
		s.m.overload.Inc()
		rc.Response.Header.SetBytesKV(headerRetryAfter, one)
		refuse(rc, fasthttp.StatusServiceUnavailable, "origin carries as many tunnels as it may")
		return
	}
	kept := false
	defer func() {
		if !kept {
			s.tunnels.release()
		}
	}()
	if !s.tunnels.seen.first(frame, x.Sealed, s.codec.Skew()) {
		rc.SetConnectionClose()
		s.refuseFrame(rc, fmt.Errorf("%w: tunnel handshake replayed, or more handshakes within the skew window than remembered", wire.ErrAuth))
		return
	}
	s.m.bytes[dirIn][stageWire].Add(float64(len(frame)))
	s.m.bytes[dirIn][stageC].Add(float64(x.Size))
	budget, ok := left(start, x.Sealed, req.Timeout)
	t, tunnels := s.handler.(Tunneler)
	var app net.Conn
	switch {
	case !ok:
		s.m.expired.Inc()
		failure(&resp, fasthttp.StatusGatewayTimeout, "request expired before the origin took it")
	case !tunnels:
		failure(&resp, fasthttp.StatusNotImplemented, "this origin carries no tunnels: its application runs in process, not behind a proxy")
	default:
		deadline, _ := s.deadlines(start, budget)
		app = t.OpenTunnel(deadline, &req, &resp)
	}
	s.answer(rc, x, &resp)
	if app == nil || rc.Response.StatusCode() != fasthttp.StatusOK {
		// No tunnel (the 101 could not be sealed, if there was one): the
		// connection served its one exchange.
		if app != nil {
			app.Close()
		}
		rc.SetConnectionClose()
		return
	}
	// The answer is written here rather than by fasthttp, which skips the
	// hijack when its write fails: the application's connection and the
	// slot would be left behind.
	kept = true
	body := rc.Response.Body()
	out := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/wedge\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	rc.HijackSetNoResponse(true)
	rc.Hijack(func(edge net.Conn) {
		defer s.tunnels.release()
		p := &pipe{edge: edge, app: app}
		edge.SetWriteDeadline(time.Now().Add(s.srv.WriteTimeout))
		if _, err := edge.Write(out); err != nil || !s.tunnels.add(p) {
			app.Close()
			return
		}
		defer s.tunnels.remove(p)
		splice(edge, app, s.tunnels.grace)
	})
}

// logUnflagged says, once a second, that a handshake without the tunnel
// flag was refused: what an edge older than the flag sends, and what a
// request frame replayed as a handshake looks like. err says which check
// it failed (its MAC, or its kind); errors_total{kind="auth"} counts each.
func (s *Server) logUnflagged(rc *fasthttp.RequestCtx, err error, now time.Time) {
	if sec, last := now.Unix(), s.kindLog.Load(); sec == last || !s.kindLog.CompareAndSwap(last, sec) {
		return
	}
	s.log.Warn("origin: tunnel handshake refused: not sealed as one (an edge that predates the tunnel flag, or a request frame replayed; "+
		"-legacy-tunnel-handshakes takes old edges' while they are upgraded; logged once a second)",
		"remote", rc.RemoteAddr().String(), "err", err)
}

// splice copies bytes both ways between edge, fasthttp's hijacked
// connection, and app until both directions have ended; a direction that
// ends (its reader saw EOF) is passed on as a half close, so a close
// handshake's last bytes get through. Once one direction has ended, the
// other has grace to end too, then both connections are closed: an
// application that ignores the half close would otherwise hold the
// tunnel's slot forever. It closes app; the caller closes edge.
func splice(edge, app net.Conn, grace time.Duration) {
	edge.SetDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		copyHalf(app, edge)
		app.SetReadDeadline(time.Now().Add(grace))
		close(done)
	}()
	copyHalf(edge, app)
	edge.SetReadDeadline(time.Now().Add(grace))
	<-done
	app.Close()
}

// copyHalf copies src to dst; when src ends it ends dst's writing, or,
// when that cannot be done (or src failed, or outlived its grace), closes
// both, so that the other direction ends too.
func copyHalf(dst, src net.Conn) {
	if copyBytes(dst, src) == nil && connx.CloseWrite(dst) == nil {
		return
	}
	connx.Unwrap(dst).Close()
	connx.Unwrap(src).Close()
}

// Sizes of a direction's read buffer. It reads into a small one of its
// own, all an idle tunnel holds (thousands may be open; io.Copy would hold
// 32 KiB per direction for the tunnel's life); a read that fills it moves
// the direction to a large one from a pool while reads keep filling it.
const (
	smallTunnelRead = 2 << 10
	largeTunnelRead = 32 << 10
)

var largeTunnelBufs = sync.Pool{New: func() any { b := make([]byte, largeTunnelRead); return &b }}

// copyBytes copies src to dst until src ends (nil) or either fails.
func copyBytes(dst io.Writer, src io.Reader) error {
	small := make([]byte, smallTunnelRead)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			largeTunnelBufs.Put(large)
		}
	}()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			switch {
			case n == len(buf) && large == nil:
				large = largeTunnelBufs.Get().(*[]byte)
				buf = *large
			case n < smallTunnelRead && large != nil:
				largeTunnelBufs.Put(large)
				large = nil
				buf = small
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// maxTunnelAnswer bounds the body of an application's refusal of a
// handshake, which the edge serves as any response.
const maxTunnelAnswer = 1 << 20

// OpenTunnel sends a tunnel's handshake to the upstream the balancer
// picks (tunnelUpstream), failing over while the connection could not be
// made, and reads the answer as strictly as any response: a 101 that does
// not switch to websocket, or with anything unparsable, is a 502.
func (p *Proxy) OpenTunnel(deadline time.Time, req *wire.Request, resp *wire.Response) net.Conn {
	if !validPath(req.Path) || !validTarget(req.Query) {
		failure(resp, fasthttp.StatusBadRequest, "request line not valid HTTP")
		return nil
	}
	var tried uint64
	reason := ""
	for {
		u := p.tunnelUpstream(req, tried)
		if u == nil {
			p.m.upstreamErr.Inc()
			if reason == "" {
				unavailable(resp, fasthttp.StatusServiceUnavailable, "no healthy upstream")
			} else {
				unavailable(resp, fasthttp.StatusBadGateway, reason)
			}
			return nil
		}
		tried |= 1 << u.idx
		conn, err := dialTunnel(u, deadline)
		if err != nil {
			u.c.dial.Inc()
			p.failed(u)
			reason = dialReason(err)
			continue
		}
		u.inflight.Add(1)
		app, err := p.handshake(conn, u, deadline, req, resp)
		u.inflight.Add(-1)
		if err != nil {
			conn.Close()
			p.m.upstreamErr.Inc()
			if isTimeout(err) || !time.Now().Before(deadline) {
				u.c.timeout.Inc()
				failure(resp, fasthttp.StatusGatewayTimeout, "upstream timeout")
			} else {
				u.c.err.Inc()
				failure(resp, fasthttp.StatusBadGateway, transportReason(err))
			}
			return nil
		}
		u.c.ok.Inc()
		u.succeeded()
		if app == nil {
			conn.Close()
		}
		return app
	}
}

// tunnelUpstream is the upstream a tunnel's handshake goes to: the
// balancer's choice among the healthy ones not yet tried, or the one that
// holds the request's engine.io session (sticky.go).
func (p *Proxy) tunnelUpstream(req *wire.Request, tried uint64) *upstream {
	return p.choose(req, p.rr.Add(1), tried)
}

// dialTunnel opens a connection of the tunnel's own to u: not pooled, and
// not watched by connwatch, since a tunnel's bytes flow both ways at any
// time.
func dialTunnel(u *upstream, deadline time.Time) (net.Conn, error) {
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("tcp", u.name)
	if err != nil || !u.tls {
		return c, err
	}
	host, _, _ := net.SplitHostPort(u.name)
	tc := tls.Client(c, &tls.Config{ServerName: host})
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// upstreamTunnel is a tunnel's connection to an upstream, counted in its
// load (pick) until closed.
type upstreamTunnel struct {
	connx.Buffered
	u    *upstream
	once sync.Once
}

func (c *upstreamTunnel) Close() error {
	c.once.Do(func() { c.u.tunnels.Add(-1) })
	return c.Buffered.Close()
}

var (
	nameConnection = []byte("Connection")
	nameUpgrade    = []byte("Upgrade")
	valueUpgrade   = []byte("Upgrade")
	valueWebSocket = []byte("websocket")
)

// handshake writes the handshake on conn, as forward writes any request
// plus the upgrade's own (hop-by-hop) fields, and reads the answer into
// resp: on 101 it returns the tunnel's connection, else nil with resp the
// application's answer.
func (p *Proxy) handshake(conn net.Conn, u *upstream, deadline time.Time, req *wire.Request, resp *wire.Response) (net.Conn, error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	freq := fasthttp.AcquireRequest()
	fresp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(freq)
	defer fasthttp.ReleaseResponse(fresp)
	buildRequest(freq, req, u.name, nil)
	freq.Header.AddBytesKV(nameConnection, valueUpgrade)
	freq.Header.AddBytesKV(nameUpgrade, valueWebSocket)
	bw := bufio.NewWriter(conn)
	if err := freq.Write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	fresp.Header.DisableNormalizing()
	for n := 0; ; n++ {
		block, err := peekHeader(br)
		if err != nil {
			return nil, err
		}
		info, err := checkResponseHeader(block)
		if err != nil {
			return nil, err
		}
		switch {
		case info.status == fasthttp.StatusSwitchingProtocols:
			if err := fresp.Header.Read(br); err != nil {
				return nil, err
			}
			if !hasToken(fresp.Header.PeekBytes(nameUpgrade), valueWebSocket) {
				return nil, invalid("101 Switching Protocols to other than websocket")
			}
			copyUpstream(resp, fresp, false, nil)
			if err := conn.SetDeadline(time.Time{}); err != nil {
				return nil, err
			}
			u.tunnels.Add(1)
			return &upstreamTunnel{Buffered: connx.Buffered{Conn: conn, R: br}, u: u}, nil
		case info.status >= 200:
			if err := fresp.ReadLimitBody(br, maxTunnelAnswer); err != nil {
				return nil, err
			}
			copyUpstream(resp, fresp, false, nil)
			return nil, nil
		case n >= maxInterimRead:
			return nil, errTooManyInterim
		}
		// 100 Continue and hints: a handshake's answer is what matters.
		if _, err := br.Discard(len(block)); err != nil {
			return nil, err
		}
	}
}
