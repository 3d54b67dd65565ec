package originclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
	"github.com/valyala/fasthttp"
)

// Errors Do returns. Codec errors from opening a response (wire.ErrAuth and
// the like) come through wrapped as well.
var (
	// ErrBreakerOpen means the origin's circuit breaker is open (or half-open
	// with its probes in flight): nothing was sent.
	ErrBreakerOpen = errors.New("originclient: circuit open")
	// ErrTimeout means the deadline passed before the origin answered.
	ErrTimeout = errors.New("originclient: deadline exceeded")
	// ErrRefused means the origin answered with a transport status other
	// than 200; the error is a *RefusedError carrying the status.
	ErrRefused = errors.New("originclient: origin refused the exchange")
	// ErrTransport means the connection could not be established or broke,
	// or what came back was not HTTP.
	ErrTransport = errors.New("originclient: transport failure")
	// ErrPoolFull means every connection to the origin (Config.MaxConns)
	// stayed busy for connWait: nothing was sent.
	ErrPoolFull = errors.New("originclient: no free connection to the origin")
	// ErrCancelled means the client the answer was for hung up while the
	// exchange waited on the origin (DoStream), which was abandoned.
	ErrCancelled = errors.New("originclient: client hung up")
)

// RefusedError is an origin's transport-level refusal: 401 for a frame that
// failed authentication, 400 for a malformed one, 413 for one too large,
// 503 when the origin is over its in-flight limit. It matches ErrRefused.
type RefusedError struct {
	Status int
	// Reason is the start of the origin's text body.
	Reason string
}

func (e *RefusedError) Error() string {
	return ErrRefused.Error() + ": " + strconv.Itoa(e.Status) + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Status maps an error from Do to the status the edge should answer its
// client with: 503 when the breaker is open or the pool is full, 504 on
// timeout, connwatch.StatusClientClosed when the client hung up, 502 for everything
// else. Status(nil) is 0: the response's own status applies.
func Status(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrCancelled):
		return connwatch.StatusClientClosed
	case errors.Is(err, ErrBreakerOpen), errors.Is(err, ErrPoolFull):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, ErrTimeout):
		return fasthttp.StatusGatewayTimeout
	}
	return fasthttp.StatusBadGateway
}

// Config configures a Client; zero fields take defaults.
type Config struct {
	// Addr is the origin's host:port.
	Addr string
	// TLS, when set, makes the Client speak HTTPS. A ServerName left empty
	// is taken from Addr.
	TLS *tls.Config
	// Codec seals requests and opens responses. Required.
	Codec *wire.Codec
	// Name labels the origin in metrics. Default Addr.
	Name string
	// MaxConns bounds the connections to the origin; a request beyond it
	// waits up to connWait for a free one, then fails with ErrPoolFull.
	// Default 1024.
	MaxConns int
	// Timeout is the budget of a Do called with a zero deadline. Default 10 s.
	Timeout time.Duration
	// MaxRetries bounds the attempts after the first. Default 2; negative
	// means none.
	MaxRetries int
	Breaker    BreakerConfig
	// Metrics receives this origin's series; nil keeps them unregistered.
	Metrics *Metrics
	// Logger receives the breaker's state changes, with why it opened;
	// nil discards.
	Logger *slog.Logger
	// Dial, when set, opens connections in place of the built-in dialer
	// (TLS is still layered on top). Note that the deadline cannot bound it.
	Dial fasthttp.DialFunc
}

// Client sends exchanges to one origin. It is safe for concurrent use.
type Client struct {
	hc      *fasthttp.HostClient
	codec   *wire.Codec
	name    string
	uri     string
	timeout time.Duration
	retries int
	tls     *tls.Config
	dialFn  fasthttp.DialFunc
	br      *breaker
	m       *series
	calls   sync.Pool // *call
}

// call is the pooled per-exchange state: the HTTP request and response
// and the buffer the request frame is sealed into.
type call struct {
	req   fasthttp.Request
	resp  fasthttp.Response
	frame []byte
	link  link  // what the exchange streams (stream.go)
	body  *Body // a streamed answer's body, which holds the call until closed
	// hang watches the client's connection while the exchange waits, and
	// abandons the exchange through ab when the client hangs up.
	hang *connwatch.Hangup
	ab   connwatch.Abort
}

const (
	contentType = "application/wedge"
	// maxPooled keeps a rare huge exchange's buffers out of the pool, where
	// they would pin memory long after it.
	maxPooled = 1 << 20
	// minBudget is the least time worth starting a retry with.
	minBudget = time.Millisecond
	// maxStale bounds the free retries after dead pooled connections.
	maxStale = 64
	// reasonLen bounds the refusal text kept in a RefusedError.
	reasonLen = 256
	// connWait bounds the wait for a pooled connection when all MaxConns
	// are busy. Long polls can hold every one of them for their whole
	// budget, so waiting until the deadline would turn a full pool into
	// 504s after seconds; a short wait rides out a burst, and past it the
	// request is shed at once, the origin never having been asked.
	connWait = 100 * time.Millisecond
)

// New checks cfg and builds a Client. No connection is opened until the
// first Do.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("originclient: no origin address")
	}
	if cfg.Codec == nil {
		return nil, errors.New("originclient: no codec")
	}
	name := orDefault(cfg.Name, cfg.Addr)
	c := &Client{codec: cfg.Codec, name: name, timeout: cfg.Timeout, retries: cfg.MaxRetries, dialFn: cfg.Dial}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	switch {
	case c.retries == 0:
		c.retries = 2
	case c.retries < 0:
		c.retries = 0
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = 1024
	}
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
		c.tls = cfg.TLS.Clone()
		if c.tls.ServerName == "" {
			host, _, err := net.SplitHostPort(cfg.Addr)
			if err != nil {
				return nil, fmt.Errorf("originclient: origin address %q: %w", cfg.Addr, err)
			}
			c.tls.ServerName = host
		}
	}
	c.uri = scheme + cfg.Addr + wire.Path
	c.hc = &fasthttp.HostClient{
		Addr:     cfg.Addr,
		IsTLS:    cfg.TLS != nil,
		MaxConns: maxConns,
		// The connection used last is the one least likely to have been
		// closed while idle, and the rest can expire.
		ConnPoolStrategy: fasthttp.LIFO,
		// The request's deadline, if shorter, bounds it too.
		MaxConnWaitTimeout: connWait,
		// Do decides about retries itself, knowing the wire method.
		MaxIdemponentCallAttempts:     1,
		RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DialTimeout:                   c.dial,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		MaxResponseBodySize:           cfg.Codec.MaxEnvelope(),
		// Takes streamed answers with their connections (stream.go).
		Transport: linkTransport{},
	}
	c.calls.New = func() any {
		k := &call{}
		k.req.Header.SetMethod(fasthttp.MethodPost)
		k.req.SetRequestURI(c.uri)
		k.req.SetUserValue(linkKey{}, &k.link)
		k.hang = connwatch.NewHangup(connwatch.After, k.ab.Abort)
		return k
	}

	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	c.m = m.series(name)
	c.m.state.Set(0)
	c.br = newBreaker(name, cfg.Breaker, c.timeout, c.m, cfg.Logger)
	return c, nil
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Close releases the idle connections. The Client must not be used after.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// State is the circuit breaker's state: "closed", "half-open" or "open".
func (c *Client) State() string { return c.br.cb.State().String() }

// TripReason is why the circuit breaker last opened, as the reason label of
// breaker_opens_total has it, or "" if it never opened.
func (c *Client) TripReason() string { return c.br.tripReason() }

// Do sends req to the origin and opens its answer into resp, returning by
// deadline (or by now plus Config.Timeout when deadline is zero). It sets
// req.Version and, at each attempt, req.Timeout to the budget left.
//
// A nil error means resp holds the origin's answer, which may be a failure
// envelope the origin made itself (Response.Error set). Otherwise the error
// matches ErrBreakerOpen, ErrTimeout, ErrRefused, ErrTransport or a wire
// error, and Status maps it to the status to answer with.
func (c *Client) Do(deadline time.Time, req *wire.Request, resp *wire.Response) error {
	k := c.calls.Get().(*call)
	_, err := c.run(k, deadline, req, resp, nil)
	return err
}

// run is Do and DoStream on the call k: it returns the answer's Body when
// the origin streamed it, which then holds k. While it waits, a client
// that hangs up on client abandons the exchange: its connection to the
// origin is closed, which the origin service takes for its own client
// hanging up. A client whose body streams is read by the exchange itself,
// and is not watched.
func (c *Client) run(k *call, deadline time.Time, req *wire.Request, resp *wire.Response, client net.Conn) (*Body, error) {
	start := time.Now()
	if deadline.IsZero() {
		deadline = start.Add(c.timeout)
	}
	if client != nil && k.link.in == nil {
		k.ab.Reset()
		k.link.ab = &k.ab
		k.hang.Start(client)
	}
	idempotent := isIdempotent(req.Method)
	var (
		cls   class
		err   error
		stale int
	)
	for attempt := 0; ; attempt++ {
		cls, err = c.attempt(k, deadline, req, resp)
		if err != nil {
			c.m.errors[cls.kind(err)].Inc()
		}
		if k.link.consumed {
			// A streamed body that started going out cannot be sent again.
			break
		}
		// After an origin restart every pooled connection is dead; each
		// one found is closed, so retrying at once drains them without
		// spending the retry budget meant for real failures.
		if cls == clsStale && stale < maxStale && time.Until(deadline) > minBudget {
			stale++
			attempt--
			c.m.retries.Inc()
			continue
		}
		if attempt >= c.retries || !cls.retryable(idempotent) {
			break
		}
		// Jittered so that edges that failed together do not retry together.
		base := time.Millisecond << min(attempt, 6)
		wait := base/2 + rand.N(base)
		if time.Until(deadline) < wait+minBudget {
			break
		}
		time.Sleep(wait)
		c.m.retries.Inc()
	}
	k.hang.Stop()
	o := cls.outcome()
	c.m.outcomes[o].Inc()
	if o != outBreakerOpen && o != outBadRequest && o != outPoolFull {
		c.m.duration.Observe(time.Since(start).Seconds())
	}
	if b := k.body; b != nil {
		k.body = nil
		return b, err
	}
	k.unlink()
	c.release(k)
	return nil, err
}

func (c *Client) release(k *call) {
	if cap(k.frame) > maxPooled || len(k.resp.Body()) > maxPooled {
		return
	}
	c.calls.Put(k)
}

// attempt runs one exchange under the circuit breaker.
func (c *Client) attempt(k *call, deadline time.Time, req *wire.Request, resp *wire.Response) (class, error) {
	if time.Until(deadline) < time.Microsecond {
		return clsTimeout, ErrTimeout
	}
	var (
		cls class
		err error
	)
	_, _ = c.br.cb.Execute(func() (struct{}, error) {
		cls, err = c.exchange(k, deadline, req, resp)
		return struct{}{}, c.br.verdict(cls)
	})
	if cls == clsNotRun {
		return clsBreakerOpen, ErrBreakerOpen
	}
	return cls, err
}

// exchange seals req, posts it and opens the answer into resp.
func (c *Client) exchange(k *call, deadline time.Time, req *wire.Request, resp *wire.Response) (class, error) {
	budget := time.Until(deadline)
	if budget < time.Microsecond {
		return clsTimeout, ErrTimeout
	}
	req.Timeout = uint64(budget / time.Microsecond)
	seal := c.codec.AppendRequest
	if k.link.in != nil {
		seal = c.codec.AppendRequestHead
	}
	frame, x, err := seal(k.frame[:0], req)
	k.frame = frame
	if err != nil {
		return clsBadRequest, fmt.Errorf("originclient: seal request: %w", err)
	}
	k.link.x = x
	k.link.prepare(c, k, frame) // the body, whole or streamed (stream.go)
	if err := c.hc.DoDeadline(&k.req, &k.resp, deadline); err != nil {
		if k.link.ab.Aborted() {
			return clsCancelled, ErrCancelled
		}
		cls, err := c.transportError(err, deadline)
		if cls != clsDial && cls != clsStale {
			c.m.sentWire.Add(float64(len(frame)))
			c.m.sentCBOR.Add(float64(x.Size))
		}
		return cls, err
	}
	c.m.sentWire.Add(float64(len(frame)))
	c.m.sentCBOR.Add(float64(x.Size))
	if k.link.up != nil {
		if cls, err := c.openStream(k, resp); err != nil {
			return cls, err
		}
		return c.answered(x, resp), nil
	}
	body := k.resp.Body()
	c.m.recvWire.Add(float64(len(body)))
	if code := k.resp.StatusCode(); code != fasthttp.StatusOK {
		return refusal(code, body)
	}
	n, err := c.codec.DecodeResponse(body, k.link.x, resp)
	c.m.recvCBOR.Add(float64(n))
	if err != nil {
		cls := clsBadResponse
		if errors.Is(err, wire.ErrTooLarge) {
			cls = clsTooLarge
		}
		return cls, fmt.Errorf("originclient: response from %s: %w", c.name, err)
	}
	return c.answered(x, resp), nil
}

// answered counts an answer that opened and classes it.
func (c *Client) answered(x wire.Exchange, resp *wire.Response) class {
	if x.Dict != 0 {
		c.m.dictHit.Inc()
	} else {
		c.m.dictNone.Inc()
	}
	switch {
	case resp.OriginDown():
		return clsOriginDown
	case len(resp.Error) > 0 && resp.Status >= 502 && resp.Status <= 504:
		return clsOriginError
	}
	return clsOK
}

func (c *Client) transportError(err error, deadline time.Time) (class, error) {
	// fasthttp turns write and connection-wait timeouts into its ErrTimeout
	// but returns read timeouts as they come; the clock settles both.
	if errors.Is(err, fasthttp.ErrTimeout) || !time.Now().Before(deadline) {
		return clsTimeout, ErrTimeout
	}
	if errors.Is(err, fasthttp.ErrNoFreeConns) {
		return clsPoolFull, ErrPoolFull
	}
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		return clsTooLarge, fmt.Errorf("originclient: response from %s: %w: %w", c.name, wire.ErrTooLarge, err)
	}
	var de *dialError
	if errors.As(err, &de) {
		return clsDial, fmt.Errorf("%w: %w", ErrTransport, de.err)
	}
	if errors.Is(err, connwatch.ErrStale) {
		return clsStale, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	return clsTransport, fmt.Errorf("%w: %w", ErrTransport, err)
}

func refusal(code int, body []byte) (class, error) {
	if len(body) > reasonLen {
		body = body[:reasonLen]
	}
	// The body is the origin's text, but keep a hostile one from writing
	// control characters into logs.
	reason := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(string(body)))
	cls := clsRefused
	switch {
	case code == fasthttp.StatusServiceUnavailable:
		cls = clsOverloaded
	case code >= 500:
		cls = clsRefused5xx
	}
	return cls, &RefusedError{Status: code, Reason: reason}
}

// dialError marks a failure to establish a connection: nothing was sent,
// so any request may be retried.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dial opens a connection within timeout and completes the TLS handshake
// here too, so that every failure before a request byte is sent is a
// dialError. fasthttp takes a conn with a Handshake method as TLS already.
func (c *Client) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		// fasthttp dials without a budget when it opens a connection for
		// a request queued on a full pool.
		timeout = fasthttp.DefaultDialTimeout
	}
	var (
		conn net.Conn
		err  error
	)
	if c.dialFn != nil {
		conn, err = c.dialFn(addr)
	} else {
		conn, err = fasthttp.DialTimeout(addr, timeout)
	}
	if err != nil {
		return nil, &dialError{err}
	}
	if c.tls == nil {
		return connwatch.WatchIdle(conn, conn, staleCheckAfter), nil
	}
	tc := tls.Client(conn, c.tls)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, &dialError{fmt.Errorf("tls handshake: %w", err)}
	}
	return connwatch.WatchIdle(tc, conn, staleCheckAfter), nil
}

// staleCheckAfter is how long a pooled connection sits before its socket is
// checked (connwatch) before reuse. The origin service closes connections
// only after an idle timeout of minutes, or when it shuts down, and never
// writes past a response frame; so a connection back in use within a few
// milliseconds, as every one is under load, is not checked, which saved a
// recvfrom per exchange. A connection that sat longer is, and a request
// on one the origin closed meanwhile goes to a fresh connection. One the
// origin closed within the window (it shut down) is written to unchecked:
// the exchange fails as a broken connection, retried only when the
// method is idempotent, as for any connection lost mid-exchange.
const staleCheckAfter = 5 * time.Millisecond

// isIdempotent reports whether method is idempotent (RFC 9110 §9.2.2), so
// that running it twice does no harm.
func isIdempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// class is what one attempt came to.
type class uint8

const (
	clsNotRun class = iota // the breaker refused before the exchange ran
	clsOK
	clsOriginError // a failure envelope confined to this request
	clsOriginDown  // a failure envelope saying the origin cannot serve
	clsBadRequest
	clsBadResponse
	clsTooLarge // a response larger than this edge takes
	clsRefused
	clsRefused5xx
	clsOverloaded
	clsTimeout
	clsTransport
	clsDial  // the connection could not be established: nothing was sent
	clsStale // a pooled connection was found dead before the request went out
	clsBreakerOpen
	clsPoolFull  // no pooled connection came free in time: nothing was sent
	clsCancelled // the client hung up, and the exchange was abandoned
)

func (cls class) retryable(idempotent bool) bool {
	switch cls {
	case clsDial, clsStale:
		return true
	case clsTransport, clsOverloaded:
		return idempotent
	}
	return false
}

func (cls class) outcome() outcome {
	switch cls {
	case clsOK:
		return outOK
	case clsOriginError, clsOriginDown:
		return outOriginError
	case clsBadRequest:
		return outBadRequest
	case clsBadResponse, clsTooLarge:
		return outBadResponse
	case clsRefused, clsRefused5xx, clsOverloaded:
		return outRefused
	case clsTimeout:
		return outTimeout
	case clsBreakerOpen:
		return outBreakerOpen
	case clsPoolFull:
		return outPoolFull
	case clsCancelled:
		return outCancelled
	}
	return outTransport
}

func (cls class) kind(err error) int {
	switch cls {
	case clsTimeout:
		return kindTimeout
	case clsTransport, clsDial, clsStale:
		return kindTransport
	case clsRefused, clsRefused5xx, clsOverloaded:
		return kindRefused
	case clsBreakerOpen:
		return kindBreakerOpen
	case clsPoolFull:
		return kindPoolFull
	case clsCancelled:
		return kindCancelled
	}
	return kindIndex(wire.Kind(err))
}
