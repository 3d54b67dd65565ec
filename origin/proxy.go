package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
)

// ProxyConfig configures a Proxy. Upstreams is required; every other field
// has a default.
type ProxyConfig struct {
	// Upstreams are the applications' base URLs, http://host:port (or
	// https://), without a path. At most 64.
	Upstreams []string
	// HealthPath is what active health checks GET. Default "/".
	HealthPath string
	// HealthInterval is the time between checks of one upstream. Default
	// 2 s. A negative interval turns health tracking off: no checks, and
	// failures do not take an upstream out of rotation either, since
	// nothing would bring it back.
	HealthInterval time.Duration
	// HealthTimeout bounds one check. Default 1 s, at most the interval.
	HealthTimeout time.Duration
	// Rise is how many checks in a row must pass to bring an upstream
	// back; Fall how many failures in a row (checks, or proxied requests
	// that could not connect) take it out. Default 2 each. Upstreams start
	// in rotation. A proxied request that fails after it was sent does not
	// count: that may be one URL's trouble, and the checks see an upstream
	// that fails them all.
	Rise, Fall int
	// MaxConnsPerUpstream bounds the keep-alive connections to each
	// upstream; requests past it wait for one, within their deadline.
	// Default 512.
	MaxConnsPerUpstream int
	// MaxResponseBody bounds an upstream response body; a larger one is
	// answered with 502. Keep it under the codec's MaxEnvelope, with room
	// for the header fields. Default wire.DefaultMaxEnvelope - 1 MiB.
	MaxResponseBody int
	// StreamThreshold is the response body size above which the body
	// streams to an edge that takes streamed responses, as a body of
	// unknown length does once past it, and an event stream always does
	// (stream.go). Default MaxResponseBody, so a response that travelled
	// whole before still does (and can be cached); lower it to bound what
	// an exchange holds.
	StreamThreshold int
	// Timeout is the deadline of a request whose context has none.
	// Default 30 s.
	Timeout time.Duration
	// ConnectTimeout bounds a connection's TCP connect and TLS handshake
	// to an upstream, within the request's deadline. Default 1 s: an
	// upstream whose connects hang (a host gone behind a firewall that
	// drops packets) then costs a request that long, and it moves to the
	// next upstream, rather than spending its whole budget on a 504.
	ConnectTimeout time.Duration
	// Metrics receives the proxy's counts; nil keeps them unregistered.
	Metrics *Metrics
	// Logger receives health changes; nil discards.
	Logger *slog.Logger
	// Observe, when set, is called with each exchange once it is answered
	// (the origin command samples them for dictionary training with it).
	// It must not keep req or resp. A hook rather than a wrapping Handler:
	// a wrapper hides the Proxy from the server, which then neither
	// streams bodies nor opens tunnels through it.
	Observe func(req *wire.Request, resp *wire.Response)
	// Tracer, when set, continues each request's trace with a span per
	// upstream call (trace.go); nil passes the edge's traceparent on as
	// it came.
	Tracer *Tracer
}

// Proxy is a Handler that forwards requests to HTTP applications: least
// requests in flight among the healthy upstreams, failover when a request
// was not sent or may be repeated, active and passive health checks, and
// collapsing of identical concurrent cacheable requests.
type Proxy struct {
	ups        []*upstream
	rr         atomic.Uint32
	tracking   bool
	rise, fall int32
	timeout    time.Duration
	streamMin  int // StreamThreshold
	m          *Metrics
	log        *slog.Logger
	tracer     *Tracer
	observe    func(*wire.Request, *wire.Response) // ProxyConfig.Observe

	seed    maphash.Seed
	mu      sync.Mutex // guards flights, passes and the fields of each flight
	flights map[uint64]*flight
	// passes holds the keys (hashes) whose last answer could not be
	// shared: requests for them go upstream without collapsing. At most
	// maxPasses of them.
	passes    map[uint64]struct{}
	maxPasses int
	fpool     sync.Pool // *flight
	bufs      sync.Pool // *[]byte scratch

	sessions sessions // engine.io sessions by upstream (sticky.go)

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type upstream struct {
	idx      int
	name     string // host:port, the metrics label and default Host
	tls      bool
	client   *fasthttp.HostClient
	health   *fasthttp.HostClient
	inflight atomic.Int32
	tunnels  atomic.Int32 // open tunnels to it (upstreamTunnel)
	up       atomic.Bool
	fails    atomic.Int32 // consecutive failures, checks or requests
	oks      atomic.Int32 // consecutive passed checks while out of rotation
	c        upstreamCounters
}

// maxUpstreams lets a bit set of one word record which upstreams a request
// tried.
const maxUpstreams = 64

// NewProxy checks cfg, builds the upstreams' connection pools and starts
// their health checks.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("origin: proxy needs at least one upstream")
	}
	if len(cfg.Upstreams) > maxUpstreams {
		return nil, fmt.Errorf("origin: %d upstreams, at most %d", len(cfg.Upstreams), maxUpstreams)
	}
	if cfg.HealthPath == "" {
		cfg.HealthPath = "/"
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = time.Second
	}
	if cfg.HealthInterval > 0 {
		cfg.HealthTimeout = min(cfg.HealthTimeout, cfg.HealthInterval)
	}
	if cfg.Rise <= 0 {
		cfg.Rise = 2
	}
	if cfg.Fall <= 0 {
		cfg.Fall = 2
	}
	if cfg.MaxConnsPerUpstream <= 0 {
		cfg.MaxConnsPerUpstream = 512
	}
	if cfg.MaxResponseBody <= 0 {
		cfg.MaxResponseBody = wire.DefaultMaxEnvelope - 1<<20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = time.Second
	}
	if cfg.StreamThreshold <= 0 || cfg.StreamThreshold > cfg.MaxResponseBody {
		cfg.StreamThreshold = cfg.MaxResponseBody
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p := &Proxy{
		tracking: cfg.HealthInterval > 0, rise: int32(cfg.Rise), fall: int32(cfg.Fall),
		timeout: cfg.Timeout, streamMin: cfg.StreamThreshold, m: cfg.Metrics, log: cfg.Logger,
		seed: maphash.MakeSeed(), flights: map[uint64]*flight{}, stop: make(chan struct{}),
		passes: map[uint64]struct{}{}, maxPasses: defaultMaxPasses, tracer: cfg.Tracer, observe: cfg.Observe,
	}
	p.fpool.New = func() any { return new(flight) }
	p.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	seen := map[string]bool{}
	for i, raw := range cfg.Upstreams {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("origin: upstream %q: %w", raw, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("origin: upstream %q: want http://host:port", raw)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			return nil, fmt.Errorf("origin: upstream %q: a base URL has no path, query or credentials", raw)
		}
		tls := u.Scheme == "https"
		name := fasthttp.AddMissingPort(u.Host, tls)
		if seen[name] {
			return nil, fmt.Errorf("origin: upstream %s given twice", name)
		}
		seen[name] = true
		up := &upstream{idx: i, name: name, tls: tls, c: p.m.upstream(name)}
		dial := dialer(name, tls, cfg.ConnectTimeout)
		up.client = &fasthttp.HostClient{
			Addr: name, IsTLS: tls, DialTimeout: dial, MaxConns: cfg.MaxConnsPerUpstream,
			Transport: strictTransport{},
			// Waiting for a connection is bounded by each request's deadline.
			MaxConnWaitTimeout: time.Hour,
			// Shorter than the idle timeouts of common application servers
			// (Node's is 5 s), so the upstream rarely closes a connection
			// just as a request goes out on it.
			MaxIdleConnDuration: 4 * time.Second,
			ConnPoolStrategy:    fasthttp.LIFO,
			// A connection the upstream closed while idle fails the next
			// request before a byte of answer: repeat that once, on a new
			// connection, when the method allows. Other retries are the
			// proxy's, on another upstream.
			MaxIdemponentCallAttempts: 2,
			RetryIfErr: func(req *fasthttp.Request, _ int, err error) (bool, bool) {
				// A streamed body (stream.go) cannot be sent again.
				return false, idempotent(req.Header.Method()) && closedEarly(err) && !req.IsBodyStream()
			},
			ReadBufferSize:                32 << 10, // the largest response header accepted
			MaxResponseBodySize:           cfg.MaxResponseBody,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
		}
		up.health = &fasthttp.HostClient{
			Addr: name, IsTLS: tls, DialTimeout: dial, MaxConns: 1, MaxResponseBodySize: 64 << 10,
			NoDefaultUserAgentHeader: true, ReadBufferSize: 32 << 10,
		}
		up.up.Store(true)
		up.c.healthy.Set(1)
		p.ups = append(p.ups, up)
	}
	if p.tracking {
		for _, u := range p.ups {
			p.wg.Add(1)
			go p.watch(u, cfg.HealthPath, cfg.HealthInterval, cfg.HealthTimeout)
		}
	}
	return p, nil
}

// Close stops the health checks and closes idle connections. Requests in
// flight finish.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		for _, u := range p.ups {
			u.client.CloseIdleConnections()
			u.health.CloseIdleConnections()
		}
	})
}

// Healthy returns how many upstreams are in rotation.
func (p *Proxy) Healthy() int {
	n := 0
	for _, u := range p.ups {
		if u.up.Load() {
			n++
		}
	}
	return n
}

// dialError marks a failure to connect: the request was not sent, so any
// method may go to another upstream.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialer opens connections to the upstream at addr, watched by connwatch
// so that one that is not silent when a request is about to go out on it
// is never used. An https upstream's TLS handshake happens here rather than
// in fasthttp, which takes a conn with a Handshake method as TLS already:
// run under the watch, the handshake's own reads and writes would look like
// a response and the next request.
func dialer(addr string, useTLS bool, connect time.Duration) fasthttp.DialFuncWithTimeout {
	var cfg *tls.Config
	if useTLS {
		host, _, _ := net.SplitHostPort(addr)
		cfg = &tls.Config{ServerName: host}
	}
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		if timeout <= 0 || timeout > connect {
			timeout = connect
		}
		c, err := fasthttp.DialDualStackTimeout(addr, timeout)
		if err != nil {
			return nil, &dialError{err}
		}
		if cfg == nil {
			return connwatch.Watch(c, c), nil
		}
		tc := tls.Client(c, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, &dialError{fmt.Errorf("tls handshake: %w", err)}
		}
		return connwatch.Watch(tc, c), nil
	}
}

// KeepsDeadline reports true: each upstream request carries the deadline
// (connection deadlines from fasthttp's DoDeadline), and a collapsed
// request waits for its leader no longer than its context allows.
func (p *Proxy) KeepsDeadline() bool { return true }

// ServeOrigin forwards req to an upstream, collapsing it with identical
// requests in flight where that is safe.
func (p *Proxy) ServeOrigin(ctx context.Context, req *wire.Request, resp *wire.Response) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(p.timeout)
	}
	if p.observe != nil {
		defer p.observe(req, resp)
	}
	if !collapsible(req) || streamOf(ctx).sendsBody() {
		p.forward(ctx, deadline, req, resp)
		return
	}
	p.collapse(ctx, deadline, req, resp)
}

// pick returns the healthy upstream, not yet tried, with the fewest
// requests in flight and tunnels open: a tunnel holds a connection and
// the application's attention as long as a long poll does, or longer, and
// counted only while its handshake ran, one long poll held on an instance
// sent every new WebSocket to the others. Each request starts its scan
// one further than the last, so ties go round robin.
func (p *Proxy) pick(start uint32, tried uint64) *upstream {
	n := uint32(len(p.ups))
	var best *upstream
	var load int32
	for i := range n {
		u := p.ups[(start+i)%n]
		if tried&(1<<u.idx) != 0 || !u.up.Load() {
			continue
		}
		if l := u.inflight.Load() + u.tunnels.Load(); best == nil || l < load {
			best, load = u, l
		}
	}
	return best
}

// forward sends req upstream, failing over while the request allows, and
// fills resp with the answer or with the origin's own 502, 503 or 504.
func (p *Proxy) forward(ctx context.Context, deadline time.Time, req *wire.Request, resp *wire.Response) {
	if !abi.ValidToken(req.Method) || !validPath(req.Path) || !validTarget(req.Query) {
		// Written as given, these would split the request line, or (a path
		// in absolute form) have fasthttp take its scheme and host from it.
		failure(resp, fasthttp.StatusBadRequest, "request line not valid HTTP")
		return
	}
	freq := fasthttp.AcquireRequest()
	fresp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(freq)
	defer fasthttp.ReleaseResponse(fresp)
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	*bp = buildRequest(freq, req, p.ups[0].name, (*bp)[:0])
	span := p.tracer.start(freq, req) // trace.go
	defer span.end(resp)
	freq.SetUserValue(interimKey{}, resp)
	if xc, ok := ctx.(*exchangeCtx); ok && xc.abort != nil {
		freq.SetUserValue(abortKey{}, xc.abort)
	}
	st := streamOf(ctx)
	st.prepare(freq, p.streamMin, req) // streamed bodies (stream.go)

	var tried uint64
	reason := ""
	// down holds while every upstream tried refused the connection: then
	// the origin cannot serve any request, not only this one.
	down := true
	start := p.rr.Add(1)
	for {
		u := p.choose(req, start, tried)
		if u == nil {
			p.m.upstreamErr.Inc()
			switch {
			case reason == "":
				unavailable(resp, fasthttp.StatusServiceUnavailable, "no healthy upstream")
			case down:
				unavailable(resp, fasthttp.StatusBadGateway, reason)
			default:
				failure(resp, fasthttp.StatusBadGateway, reason)
			}
			return
		}
		tried |= 1 << u.idx
		if len(req.Host) == 0 {
			freq.Header.Set(fasthttp.HeaderHost, u.name)
		}
		// Set both ways: a HostClient refuses a request whose scheme is not
		// its own, which failing over between http and https upstreams
		// would otherwise leave behind.
		if u.tls {
			freq.URI().SetScheme("https")
		} else {
			freq.URI().SetScheme("http")
		}
		u.inflight.Add(1)
		err := u.client.DoDeadline(freq, fresp, deadline)
		u.inflight.Add(-1)
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			// The edge hung up, its client having done so: the upstream
			// connection was closed, which told the application, and
			// nobody waits for this answer. Not the upstream's failure.
			u.c.cancelled.Inc()
			failure(resp, connwatch.StatusClientClosed, "edge closed the connection") // nobody reads it; the edge logs its own
			return
		}
		if err == nil {
			u.c.ok.Inc()
			u.succeeded()
			copyUpstream(resp, fresp, freq.Header.IsHead(), *bp)
			p.learnSession(req, resp, u)
			return
		}
		var de *dialError
		if errors.As(err, &de) && time.Now().Before(deadline) {
			// Not sent, a connect that failed or timed out: the next
			// upstream, whatever the method.
			u.c.dial.Inc()
			p.failed(u)
			reason = dialReason(err)
			continue
		}
		switch {
		case isTimeout(err) || !time.Now().Before(deadline):
			u.c.timeout.Inc()
			p.m.timeout.Inc()
			failure(resp, fasthttp.StatusGatewayTimeout, "upstream timeout")
			return
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			u.c.tooLarge.Inc()
			p.m.upstreamErr.Inc()
			failure(resp, fasthttp.StatusBadGateway, "upstream response too large")
			return
		case errors.Is(err, fasthttp.ErrNoFreeConns):
			// Nothing was sent and the upstream is fine, only busy.
			u.c.busy.Inc()
			reason = "upstream busy"
			down = false
			continue
		}
		u.c.err.Inc()
		down = false
		reason = transportReason(err)
		if !idempotent(req.Method) || st.sendsBody() {
			p.m.upstreamErr.Inc()
			failure(resp, fasthttp.StatusBadGateway, reason)
			return
		}
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closedEarly reports whether a connection ended before any answer, as an
// idle one the upstream closed does.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func dialReason(err error) string {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "upstream refused the connection"
	}
	return "upstream unreachable"
}

func transportReason(err error) string {
	var ue *upstreamError
	switch {
	case errors.As(err, &ue):
		return ue.reason
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "upstream reset the connection"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "upstream closed the connection"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "upstream connection failed"
	}
	return "upstream sent an invalid response"
}

// idempotent reports whether a method may be sent again after a failure
// that may have reached the application (RFC 9110 §9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

func (u *upstream) succeeded() {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

// failed counts a failure to connect; enough in a row take the upstream out
// of rotation until checks bring it back.
func (p *Proxy) failed(u *upstream) {
	if p.tracking && u.fails.Add(1) >= p.fall {
		p.setUp(u, false, "requests failing")
	}
}

func (p *Proxy) setUp(u *upstream, up bool, why string) {
	if !u.up.CompareAndSwap(!up, up) {
		return
	}
	u.oks.Store(0)
	if up {
		u.c.healthy.Set(1)
		p.log.Info("origin: upstream back in rotation", "upstream", u.name)
	} else {
		u.c.healthy.Set(0)
		p.log.Warn("origin: upstream out of rotation", "upstream", u.name, "why", why)
	}
}

// watch checks one upstream every interval until Close.
func (p *Proxy) watch(u *upstream, path string, interval, timeout time.Duration) {
	defer p.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if p.probe(u, path, timeout) {
			u.succeeded()
			if !u.up.Load() && u.oks.Add(1) >= p.rise {
				p.setUp(u, true, "")
			}
			continue
		}
		u.oks.Store(0)
		if u.fails.Add(1) >= p.fall {
			p.setUp(u, false, "health check failing")
		}
	}
}

// probe GETs path on a fresh connection: a check proves that the upstream
// accepts connections, not only that an old one still works.
func (p *Proxy) probe(u *upstream, path string, timeout time.Duration) bool {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(path)
	req.Header.SetHost(u.name)
	if u.tls {
		req.URI().SetScheme("https")
	}
	req.SetConnectionClose()
	if err := u.health.DoTimeout(req, resp, timeout); err != nil {
		return false
	}
	code := resp.StatusCode()
	return code >= 200 && code < 400
}
