package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/listeners"
	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
)

// ErrServerClosed is what Serve returns when called after Shutdown.
var ErrServerClosed = errors.New("origin: server closed")

// ServerConfig configures a Server. Codec and Handler are required; every
// other field has a default.
type ServerConfig struct {
	// Codec opens request frames and seals the answers.
	Codec *wire.Codec
	// Handler answers the decoded requests.
	Handler Handler
	// MaxInFlight bounds the exchanges in progress, counting handlers that
	// outlived their deadline; past it the server answers 503 to a frame
	// once it is authenticated (a peer without the key takes no slot).
	// Default 4096.
	MaxInFlight int
	// MaxTunnels bounds the tunnels (WebSocket) the server carries, and
	// handshakes in progress; past it a handshake is refused with 503.
	// Default DefaultMaxTunnels.
	MaxTunnels int
	// TunnelCloseGrace is how long a tunnel's other direction has to end
	// once one has ended (the edge or the application half-closed) before
	// the origin closes both connections. Default 5 s.
	TunnelCloseGrace time.Duration
	// LegacyTunnelHandshakes also takes, on wire.TunnelPath, handshakes
	// sealed as plain requests, as edges before the tunnel flag seal them.
	// It is for a rolling upgrade only (origins first, with it set; then
	// the edges; then the origins without it): while it is set, a request
	// frame captured on the link can be replayed within the codec's Skew
	// as a handshake, opening a tunnel with its client's identity. Off, such
	// a handshake is refused with 401 and logged.
	LegacyTunnelHandshakes bool
	// MaxTimeout bounds the time a handler gets: the deadline when a
	// request carries no budget, and the cap when its budget is larger.
	// Default 30 s.
	MaxTimeout time.Duration
	// Metrics receives the server's counts; nil keeps them unregistered.
	Metrics *Metrics
	// Logger receives timeouts, panics and transport errors; nil discards.
	Logger *slog.Logger
}

// Server is the origin's end of the transport: it takes frames an edge
// POSTs to wire.Path, authenticates and decodes them, runs the Handler with
// the request's deadline and answers with a response frame.
type Server struct {
	codec    *wire.Codec
	handler  Handler
	inline   bool // the handler is a DeadlineKeeper: run it on the connection's goroutine
	max      int64
	maxTime  time.Duration
	m        *Metrics
	log      *slog.Logger
	srv      *fasthttp.Server
	inflight atomic.Int64
	// expiredLog is the Unix second of the last expired-frame log line:
	// a backlog after a stall expires frames by the thousand, and the
	// metric counts each, so the log says it once a second.
	expiredLog atomic.Int64
	// kindLog is the same for handshakes refused as not sealed as one, so
	// edges that predate the tunnel flag are seen at the default level.
	kindLog atomic.Int64

	jobs   sync.Pool // *job
	spares sync.Pool // *wire.Response for answers made without the handler
	frames sync.Pool // *[]byte

	lns     listeners.Set // closed by Shutdown, with a Serve still starting
	tunnels tunnelSet     // origin/tunnel.go
}

// NewServer checks cfg and builds a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Codec == nil {
		return nil, errors.New("origin: server needs a codec")
	}
	if cfg.Handler == nil {
		return nil, errors.New("origin: server needs a handler")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 30 * time.Second
	}
	if cfg.MaxTunnels <= 0 {
		cfg.MaxTunnels = DefaultMaxTunnels
	}
	if cfg.TunnelCloseGrace <= 0 {
		cfg.TunnelCloseGrace = 5 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{codec: cfg.Codec, handler: cfg.Handler, max: int64(cfg.MaxInFlight), maxTime: cfg.MaxTimeout,
		m: cfg.Metrics, log: cfg.Logger}
	s.tunnels.max = cfg.MaxTunnels
	s.tunnels.grace = cfg.TunnelCloseGrace
	s.tunnels.legacy = cfg.LegacyTunnelHandshakes
	if dk, ok := cfg.Handler.(DeadlineKeeper); ok && dk.KeepsDeadline() {
		s.inline = true
	}
	s.jobs.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		j := &job{s: s, done: make(chan struct{}, 1), timer: t}
		j.hang = connwatch.NewHangup(connwatch.After, j.hungUp)
		return j
	}
	s.spares.New = func() any { return new(wire.Response) }
	s.frames.New = func() any { b := make([]byte, 0, 4096); return &b }
	s.srv = &fasthttp.Server{
		Handler:      s.handle,
		ErrorHandler: s.transportError,
		// Frames can be megabytes over a long path; the edge's own
		// deadline is what bounds an exchange.
		ReadTimeout:  cfg.MaxTimeout + 10*time.Second,
		WriteTimeout: cfg.MaxTimeout + 10*time.Second,
		// Longer than an edge keeps an idle connection, so the edge closes
		// first and never sends on a connection being closed here.
		IdleTimeout:           2 * time.Minute,
		MaxRequestBodySize:    cfg.Codec.MaxEnvelope(),
		StreamRequestBody:     true, // streamed exchanges are never held whole; readFrame bounds whole ones (stream.go)
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		NoDefaultDate:         true,
		Logger:                fasthttpLogger{cfg.Logger},
		// fasthttp's errors otherwise quote the bytes it could not parse,
		// and a frame's stored zstd literals are an envelope's plain text.
		SecureErrorLogMessage: true,
	}
	return s, nil
}

// Serve answers connections from ln until Shutdown, then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if !s.lns.Add(ln) {
		return ErrServerClosed
	}
	err := s.srv.Serve(listeners.Retry(ln, s.log))
	if s.lns.Closed() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("origin: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections, closes idle ones and waits for the
// exchanges in progress to be answered, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lns.Close()
	// Tunnels are connections fasthttp no longer tracks.
	defer s.tunnels.close()
	if err := s.srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("origin: shutdown: %w", err)
	}
	return nil
}

var (
	contentTypeWedge = []byte("application/wedge")
	headerAllow      = []byte("Allow")
	headerRetryAfter = []byte("Retry-After")
	methodPost       = []byte("POST")
	one              = []byte("1")
)

// Job states: a running handler's job belongs to both sides; whichever side
// moves it out of running decides who puts it back in the pool.
const (
	running int32 = iota
	finished
	abandoned
)

// job carries one exchange to the goroutine that runs the handler. It has
// its own Request and Response, so a handler that outlives its deadline
// writes to buffers nobody else uses until it returns.
type job struct {
	s     *Server
	ctx   *exchangeCtx
	req   wire.Request
	resp  wire.Response
	state atomic.Int32
	done  chan struct{}
	timer *time.Timer
	// stream is what the exchange streams (stream.go).
	stream exchangeStream
	// hang watches the edge's connection while the handler runs, and
	// abort abandons the upstream exchange when the edge closes it.
	hang  *connwatch.Hangup
	abort connwatch.Abort
}

// watch arms the watch of the edge's connection for the handler about to
// run. The edge closes its connection when its client hangs up on a
// request waiting for its answer (a long poll given up): the handler's
// context is then cancelled, and the proxy closes its upstream connection,
// which the application sees as its own client hanging up. A streamed
// request body is read from that connection by the handler itself, so
// such an exchange is not watched.
func (j *job) watch(rc *fasthttp.RequestCtx) {
	j.abort.Reset()
	j.ctx.abort = &j.abort
	if j.stream.body == nil {
		j.hang.Start(rc.Conn())
	}
}

// hungUp is the watch's verdict that the edge closed the connection.
func (j *job) hungUp() {
	j.ctx.cancel(context.Canceled)
	j.abort.Abort()
}

func (s *Server) handle(rc *fasthttp.RequestCtx) {
	if string(rc.Path()) == wire.TunnelPath {
		s.tunnel(rc) // origin/tunnel.go
		return
	}
	if string(rc.Path()) != wire.Path {
		refuse(rc, fasthttp.StatusNotFound, "not found")
		return
	}
	if !rc.IsPost() {
		rc.Response.Header.SetBytesKV(headerAllow, methodPost)
		refuse(rc, fasthttp.StatusMethodNotAllowed, "method not allowed: frames are POSTed")
		return
	}
	start := time.Now()
	j := s.jobs.Get().(*job)
	// The frame is authenticated before the exchange takes a slot: a peer
	// without the key takes none.
	x, frameLen, err := s.open(rc, j) // a whole frame, or a streamed head (stream.go)
	if err != nil {
		s.putJob(j)
		s.refuseFrame(rc, err)
		return
	}
	if s.inflight.Add(1) > s.max {
		s.inflight.Add(-1)
		if j.stream.body != nil {
			rc.SetConnectionClose() // the body is left unread
		}
		s.putJob(j)
		s.m.overload.Inc()
		rc.Response.Header.SetBytesKV(headerRetryAfter, one)
		refuse(rc, fasthttp.StatusServiceUnavailable, "origin overloaded")
		return
	}
	s.m.inflight.Inc()
	if err := s.readWhole(rc, j); err != nil {
		s.putJob(j)
		s.finish()
		s.refuseFrame(rc, err)
		return
	}
	x = j.stream.x // past a streamed body read whole, the answer covers it
	s.m.bytes[dirIn][stageWire].Add(float64(frameLen))
	s.m.bytes[dirIn][stageC].Add(float64(x.Size))
	if x.Dict != 0 {
		s.m.dict[1].Inc()
	} else {
		s.m.dict[0].Inc()
	}

	budget, ok := left(start, x.Sealed, j.req.Timeout)
	if !ok {
		// The edge has given up on this request already, so running it
		// would only do what nobody waits for: a POST executed after its
		// client was told 504. Answer for whoever might still listen.
		s.m.expired.Inc()
		if sec, last := start.Unix(), s.expiredLog.Load(); sec != last && s.expiredLog.CompareAndSwap(last, sec) {
			s.log.Warn("origin: request expired before the origin took it (logged once a second; see errors_total{kind=\"expired\"})",
				"id", string(j.req.ID), "budget_us", j.req.Timeout, "waited", start.Sub(x.Sealed).Round(time.Millisecond))
		}
		x, ok = s.endBody(rc, &j.stream) // the answer covers a streamed body whole
		s.putJob(j)
		s.finish()
		if !ok {
			return
		}
		resp := s.spares.Get().(*wire.Response)
		failure(resp, fasthttp.StatusGatewayTimeout, "request expired before the origin took it")
		s.answer(rc, x, resp)
		resp.Reset()
		s.spares.Put(resp)
		s.m.duration.Observe(time.Since(start).Seconds())
		return
	}
	appDeadline, hard := s.deadlines(start, budget)
	if s.inline {
		s.serveInline(rc, j, start, appDeadline)
		return
	}
	// Once the handler runs, j.req is its own: keep what a timeout log
	// needs without allocating.
	var idBuf [64]byte
	id := idBuf[:copy(idBuf[:], j.req.ID)]
	j.ctx = &exchangeCtx{deadline: appDeadline}
	j.resp.Reset()
	j.state.Store(running)
	j.watch(rc)
	go j.run()

	resp := &j.resp
	j.timer.Reset(time.Until(appDeadline))
	select {
	case <-j.done:
		j.timer.Stop()
		j.hang.Stop()
	case <-j.timer.C:
		// Before the job may become the handler goroutine's.
		j.hang.Stop()
		// Tell the handler, then give it the grace to answer for itself
		// (a proxy's own 504 says more than ours).
		j.ctx.cancel(context.DeadlineExceeded)
		j.timer.Reset(time.Until(hard))
		select {
		case <-j.done:
			j.timer.Stop()
		case <-j.timer.C:
			if j.state.CompareAndSwap(running, abandoned) {
				// The job is the handler goroutine's now.
				j = nil
				s.log.Warn("origin: handler missed its deadline", "id", string(id), "budget_us", budget)
				resp = s.spares.Get().(*wire.Response)
				failure(resp, fasthttp.StatusGatewayTimeout, "application did not answer in time")
				s.m.timeout.Inc()
			} else {
				<-j.done
			}
		}
	}
	if j != nil {
		j.ctx.cancel(context.Canceled)
		checkStatus(resp)
	}
	s.answer(rc, x, resp)
	s.m.duration.Observe(time.Since(start).Seconds())
	if j != nil {
		s.putJob(j)
	} else {
		resp.Reset()
		s.spares.Put(resp)
	}
}

// serveInline runs a DeadlineKeeper on the connection's own goroutine: it
// returns by its deadline by itself, so the exchange needs neither a
// goroutine to run it nor a timer to answer for it.
func (s *Server) serveInline(rc *fasthttp.RequestCtx, j *job, start, deadline time.Time) {
	j.ctx = &exchangeCtx{deadline: deadline, timed: true, stream: j.stream.ctx()}
	j.resp.Reset()
	j.watch(rc)
	j.serve()
	j.hang.Stop()
	s.finish()
	j.ctx.cancel(context.Canceled)
	checkStatus(&j.resp)
	s.respond(rc, &j.resp, &j.stream) // whole, or streamed (stream.go)
	s.m.duration.Observe(time.Since(start).Seconds())
	s.putJob(j)
}

// left is what remains, by this clock at now, of the budget timeoutUS of a
// request frame sealed at sealed (by the edge's clock), and false when
// nothing does: the edge gave up at sealed plus the budget, and a frame can
// wait before the server reads it (an origin stall, a full accept queue, a
// proxy in between), which a budget counted from the read would not see.
// The timestamp is truncated to the millisecond, so this can take up to a
// millisecond off a budget, which no useful answer fits in anyway; rounded
// up, it would let the application run a request in the moment after its
// edge gave up. A request without a budget (0) is not checked.
//
// This reads the edge's clock against this one. They must agree for the
// timestamp check (wire.Config.Skew) already; here they must agree more
// closely than budgets are long, which NTP-synced hosts do by orders of
// magnitude. An edge clock behind this one shortens every budget by the
// difference, and wedge_origin_errors_total{kind="expired"} shows it.
func left(now, sealed time.Time, timeoutUS uint64) (uint64, bool) {
	if timeoutUS == 0 || timeoutUS >= uint64(math.MaxInt64/int64(time.Microsecond)) {
		return timeoutUS, true
	}
	remain := sealed.Add(time.Duration(timeoutUS) * time.Microsecond).Sub(now)
	if remain <= 0 {
		return 0, false
	}
	return min(timeoutUS, uint64(remain/time.Microsecond)), true
}

// deadlines gives the handler's deadline and the time the server answers
// for it. The edge's budget loses a margin for the answer's way back (10%,
// at most 50 ms); half of the margin is the handler's grace after its
// context ends, so both stay before the edge gives up.
func (s *Server) deadlines(now time.Time, timeoutUS uint64) (app, hard time.Time) {
	d := s.maxTime
	margin := min(d/10, 50*time.Millisecond)
	if timeoutUS > 0 {
		budget := time.Duration(math.MaxInt64)
		if timeoutUS < uint64(math.MaxInt64/int64(time.Microsecond)) {
			budget = time.Duration(timeoutUS) * time.Microsecond
		}
		margin = min(budget/10, 50*time.Millisecond)
		d = min(budget-margin, s.maxTime)
	}
	return now.Add(d), now.Add(d + margin/2)
}

func (j *job) run() {
	j.serve()
	s := j.s
	s.finish()
	if j.state.CompareAndSwap(running, finished) {
		j.done <- struct{}{}
		return
	}
	// The server answered without us; nobody else holds the job.
	s.putJob(j)
}

func (j *job) serve() {
	defer func() {
		if r := recover(); r != nil {
			j.s.log.Error("origin: handler panicked", "id", string(j.req.ID), "panic", r)
			failure(&j.resp, fasthttp.StatusBadGateway, "application handler panicked")
		}
	}()
	j.s.handler.ServeOrigin(j.ctx, &j.req, &j.resp)
}

func (s *Server) finish() {
	s.inflight.Add(-1)
	s.m.inflight.Dec()
}

// maxPooled keeps a rare huge exchange from pinning its buffers in a pool.
const maxPooled = 1 << 20

func (s *Server) putJob(j *job) {
	j.ctx = nil
	j.stream.release()
	if cap(j.req.Body) > maxPooled {
		j.req.Body = nil
	}
	if cap(j.resp.Body) > maxPooled {
		j.resp.Body = nil
	}
	s.jobs.Put(j)
}

// checkStatus makes a status the edge can use of what the handler left.
func checkStatus(resp *wire.Response) {
	if resp.Status == 0 {
		resp.Status = fasthttp.StatusOK
	}
	if resp.Status < 200 || resp.Status > 599 {
		failure(resp, fasthttp.StatusBadGateway, "application answered with an invalid status")
	}
}

// answer seals resp into the HTTP response body.
func (s *Server) answer(rc *fasthttp.RequestCtx, x wire.Exchange, resp *wire.Response) {
	fp := s.frames.Get().(*[]byte)
	out, n, err := s.codec.AppendResponse((*fp)[:0], x, resp)
	if err != nil {
		reason := "application response could not be encoded"
		if errors.Is(err, wire.ErrTooLarge) {
			reason = "application response too large for the wire"
		}
		s.log.Warn("origin: "+reason, "err", err)
		s.m.errors.WithLabelValues(wire.Kind(err)).Inc()
		failure(resp, fasthttp.StatusBadGateway, reason)
		out, n, err = s.codec.AppendResponse(out[:0], x, resp)
		if err != nil {
			s.log.Error("origin: cannot seal a response", "err", err)
			refuse(rc, fasthttp.StatusInternalServerError, "cannot seal a response")
			s.putFrame(fp, out)
			return
		}
	}
	s.m.exchange(resp.Status)
	s.m.bytes[dirOut][stageWire].Add(float64(len(out)))
	s.m.bytes[dirOut][stageC].Add(float64(n))
	rc.Response.Header.SetContentTypeBytes(contentTypeWedge)
	rc.SetBody(out)
	s.putFrame(fp, out)
}

func (s *Server) putFrame(fp *[]byte, b []byte) {
	if cap(b) > maxPooled {
		return
	}
	*fp = b[:0]
	s.frames.Put(fp)
}

// refuseFrame answers a frame the codec refused, with the status the
// transport contract gives its kind.
func (s *Server) refuseFrame(rc *fasthttp.RequestCtx, err error) {
	s.m.codecError(err)
	switch {
	case errors.Is(err, wire.ErrAuth):
		s.log.Debug("origin: frame refused", "remote", rc.RemoteAddr().String(), "err", err)
		refuse(rc, fasthttp.StatusUnauthorized, err.Error())
	case errors.Is(err, wire.ErrTooLarge):
		refuse(rc, fasthttp.StatusRequestEntityTooLarge, err.Error())
	default:
		refuse(rc, fasthttp.StatusBadRequest, err.Error())
	}
}

// transportError answers what fasthttp could not read as a request.
func (s *Server) transportError(rc *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		s.m.errors.WithLabelValues("too_large").Inc()
		linger(rc)
		refuse(rc, fasthttp.StatusRequestEntityTooLarge, "frame too large")
		return
	}
	s.log.Debug("origin: unreadable request", "remote", rc.RemoteAddr().String(), "err", err)
	refuse(rc, fasthttp.StatusBadRequest, "malformed HTTP request")
}

// Bounds of the read-and-discard before refusing an oversized frame: in
// all, and the quiet that means the sender has finished.
const (
	lingerBytes = 64 << 20
	lingerTime  = 2 * time.Second
	lingerIdle  = 50 * time.Millisecond
)

// linger reads and discards the body of a request refused for its size
// before the answer goes out. fasthttp refuses on the Content-Length alone
// and closes the connection; a sender still writing the body would get a
// reset instead of the 413 (the lingering close of RFC 9112 §9.6). The
// bytes fasthttp already buffered are not counted, so the drain ends when
// the sender goes quiet rather than at the declared length.
func linger(rc *fasthttp.RequestCtx) {
	c := rc.Conn()
	n := rc.Request.Header.ContentLength()
	if c == nil || n <= 0 {
		return
	}
	end := time.Now().Add(lingerTime)
	left := min(n, lingerBytes)
	var buf [32 << 10]byte
	for left > 0 && time.Now().Before(end) {
		if c.SetReadDeadline(time.Now().Add(lingerIdle)) != nil {
			return
		}
		m, err := c.Read(buf[:min(left, len(buf))])
		left -= m
		if err != nil {
			return
		}
	}
}

func refuse(rc *fasthttp.RequestCtx, status int, msg string) {
	rc.SetStatusCode(status)
	rc.Response.Header.SetContentTypeBytes(textPlain)
	rc.SetBodyString(msg)
}

// exchangeCtx is the context a handler gets: the request's deadline, ended
// by the server's timer rather than one of its own. Its Done channel is made
// only if the handler asks for it. A DeadlineKeeper's exchange has no server
// timer (timed): its context ends at the deadline by a timer of its own,
// armed only when the handler asks for Done, and Err reads the clock.
type exchangeCtx struct {
	deadline time.Time
	timed    bool
	mu       sync.Mutex
	done     chan struct{}
	timer    *time.Timer
	err      error
	stream   *exchangeStream // what the exchange streams; nil if nothing
	// abort closes the upstream connection (strict.go) when the edge
	// hangs up; cancel with context.Canceled says it did.
	abort *connwatch.Abort
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *exchangeCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *exchangeCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err == nil && c.timed && !time.Now().Before(c.deadline) {
			c.err = context.DeadlineExceeded
		}
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
			if c.timed {
				c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
			}
		}
	}
	return c.done
}

func (c *exchangeCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.timed && !time.Now().Before(c.deadline) {
		c.err = context.DeadlineExceeded
	}
	return c.err
}

func (c *exchangeCtx) Value(any) any { return nil }

func (c *exchangeCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.done != nil && c.done != closedChan {
		close(c.done)
	}
}

func (c *exchangeCtx) String() string { return "origin.exchangeCtx" }

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("origin: fasthttp: " + fmt.Sprintf(format, args...))
}
