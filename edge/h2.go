package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go/http3"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/listeners"
)

// HTTP2Config is the TLS listener's HTTP/2 (tls.http2 in the config).
// Header list size, request body size, the number of connections and the
// idle, read and write timeouts are the limits HTTP/1.1 has (Limits): the
// read timeout bounds a request's stream from its start, the write timeout
// its answer from when it is written, and for a streamed body each bounds a
// stall, not the whole body, as over HTTP/1.1.
type HTTP2Config struct {
	// Disabled keeps the TLS listener to HTTP/1.1: ALPN offers h2 unless
	// it is set.
	Disabled bool `yaml:"disabled"`
	// MaxConcurrentStreams bounds the requests one connection has in
	// progress. Default 100.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// MaxResets closes a connection whose client reset more than this many
	// streams before their answers, and more than half of the streams it
	// opened (rapid reset, CVE-2023-44487). Default 100.
	MaxResets int `yaml:"max_resets"`
}

func (c *HTTP2Config) setDefaults() {
	if c.MaxConcurrentStreams <= 0 {
		c.MaxConcurrentStreams = 100
	}
	if c.MaxResets <= 0 {
		c.MaxResets = 100
	}
}

// doors are the node's front doors besides HTTP/1.1 on fasthttp: the
// HTTP/2 server the TLS listener hands h2 connections to, the HTTP/3
// servers, and their metrics.
type doors struct {
	requests *prometheus.CounterVec // by protocol
	h1       prometheus.Counter
	resets   *prometheus.CounterVec // early resets, by protocol
	h2errors *prometheus.CounterVec // by the HTTP/2 server's error type
	h2conns  atomic.Int64           // open HTTP/2 connections
	h3conns  atomic.Int64           // open HTTP/3 (QUIC) connections
	pending  atomic.Int64           // TLS handshakes in progress

	// altSvc is the Alt-Svc field value advertising HTTP/3 on TLS
	// responses, once it is served.
	altSvc atomic.Pointer[string]

	mu   sync.Mutex // guards what follows
	shut bool
	h2   *http.Server
	h3   []*http3.Server
	udp  []net.PacketConn
}

func (d *doors) register(reg prometheus.Registerer) {
	const ns = "wedge_edge"
	d.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "protocol_requests_total",
		Help: "Requests by the protocol they came in: http/1.1, h2 or h3."}, []string{"protocol"})
	d.resets = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "early_resets_total",
		Help: "HTTP/2 and HTTP/3 streams the client reset before their answer was written, by protocol."}, []string{"protocol"})
	d.h2errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http2_errors_total",
		Help: "Protocol errors the HTTP/2 server saw, by type (too_many_early_resets, ...)."}, []string{"type"})
	d.h1 = d.requests.WithLabelValues("http/1.1")
	reg.MustRegister(d.requests, d.resets, d.h2errors)
}

// servedH1 is the HTTP/1.1 front door's part once the core answered: the
// count by protocol and, on TLS, the HTTP/3 advertisement.
func (n *Node) servedH1(ctx *fasthttp.RequestCtx) {
	n.doors.h1.Inc()
	if !ctx.IsTLS() {
		return
	}
	if a := n.doors.altSvc.Load(); a != nil && ctx.Response.Header.Peek("Alt-Svc") == nil {
		ctx.Response.Header.Set("Alt-Svc", *a)
	}
}

// http2 is the node's HTTP/2 server, made on first use.
func (d *doors) http2(n *Node) *http.Server {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h2 != nil {
		return d.h2
	}
	lim, c := n.cfg.Limits, n.cfg.TLS.HTTP2
	var protos http.Protocols
	protos.SetHTTP2(true)
	door := newFrontDoor(n, "HTTP/2.0", "h2", c.MaxResets)
	door.advertise = true
	d.h2 = &http.Server{
		Handler:   door,
		Protocols: &protos,
		// Sent as SETTINGS_MAX_HEADER_LIST_SIZE, and enforced.
		MaxHeaderBytes: lim.MaxHeaderBytes,
		ReadTimeout:    time.Duration(lim.ReadTimeout),
		WriteTimeout:   time.Duration(lim.WriteTimeout),
		IdleTimeout:    time.Duration(lim.IdleTimeout),
		ErrorLog:       slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			p := &peer{remote: c.RemoteAddr(), local: c.LocalAddr(), end: func() { c.Close() }}
			if tc, ok := c.(*tls.Conn); ok {
				p.state = tc.ConnectionState()
			}
			return context.WithValue(ctx, peerKey{}, p)
		},
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				d.h2conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				d.h2conns.Add(-1)
			}
		},
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: c.MaxConcurrentStreams,
			CountError:           func(t string) { d.h2errors.WithLabelValues(t).Inc() },
		},
	}
	return d.h2
}

// shutdown stops the HTTP/2 and HTTP/3 servers: a GOAWAY to their clients,
// then a wait for the requests in progress, within ctx.
func (d *doors) shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.shut = true
	h2, h3, udp := d.h2, d.h3, d.udp
	d.mu.Unlock()
	var errs []error
	if h2 != nil {
		errs = append(errs, h2.Shutdown(ctx))
	}
	for _, s := range h3 {
		errs = append(errs, s.Shutdown(ctx), s.Close())
	}
	for _, c := range udp {
		c.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("http/2, http/3: %w", err)
	}
	return nil
}

// serveTLS serves the TLS listener ln: it completes each handshake and
// hands a connection that negotiated h2 to the HTTP/2 server, any other to
// fasthttp, as HTTP/1.1 connections always went.
func (n *Node) serveTLS(ln net.Listener) error {
	cfg := n.tlsConfig()
	h1 := newConnQueue(ln.Addr())
	errc := make(chan error, 2)
	serving := 1
	go func() { errc <- n.serveHTTP(h1, h1) }()
	var h2 *connQueue
	if !n.cfg.TLS.HTTP2.Disabled {
		cfg.NextProtos = []string{"h2", "http/1.1"}
		h2 = newConnQueue(ln.Addr())
		if n.lns.Add(h2) {
			srv := n.doors.http2(n)
			serving++
			go func() {
				err := srv.Serve(h2)
				if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
					err = nil
				}
				errc <- err
			}()
		}
	}
	err := n.acceptTLS(ln, cfg, h1, h2)
	h1.Close()
	if h2 != nil {
		h2.Close()
	}
	for range serving {
		if e := <-errc; err == nil {
			err = e
		}
	}
	return err
}

func (n *Node) acceptTLS(ln net.Listener, cfg *tls.Config, h1, h2 *connQueue) error {
	ln = n.proxied(listeners.Retry(ln, n.log))
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("edge: tls: %w", err)
		}
		// Connections in their handshake are bounded as served ones are:
		// fasthttp counted them among max_conns when it did handshakes.
		if n.doors.pending.Add(1) > int64(n.cfg.Limits.MaxConns) {
			n.doors.pending.Add(-1)
			c.Close()
			continue
		}
		go n.handshake(tls.Server(c, cfg), h1, h2)
	}
}

// handshake completes c's TLS handshake within read_timeout and hands c to
// the server of the protocol it negotiated.
func (n *Node) handshake(c *tls.Conn, h1, h2 *connQueue) {
	c.SetDeadline(time.Now().Add(time.Duration(n.cfg.Limits.ReadTimeout)))
	err := c.Handshake()
	n.doors.pending.Add(-1)
	if err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	q := h1
	if c.ConnectionState().NegotiatedProtocol == "h2" {
		// fasthttp bounds its own connections by max_conns; these are
		// bounded the same, apart from them.
		if n.doors.h2conns.Load() >= int64(n.cfg.Limits.MaxConns) {
			c.Close()
			return
		}
		q = h2
	}
	if !q.put(c) {
		c.Close()
	}
}

// connQueue is a net.Listener whose connections another accept loop
// hands over.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to the server accepting from q; false once q is closed.
func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
