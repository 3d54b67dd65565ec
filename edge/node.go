package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/internal/listeners"
	"github.com/talowa/wedge/internal/tracing"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/host"
)

// Node is one edge node (a POP): it serves HTTP through the routes and
// plugin chains of its config and sends what no plugin answers to the
// route's origin.
type Node struct {
	cfg     *Config
	log     *slog.Logger
	reg     *prometheus.Registry
	runtime *wasm.Runtime
	cache   *host.MemCache
	limiter *host.Shared // region and global keys exchanged by edge/limitsync
	m       *metrics
	om      *originclient.Metrics
	srv     *fasthttp.Server
	writes  writes
	reads   reads
	load    overload
	tun     tunnels // WebSocket tunnels: tunnel.go
	gen     atomic.Pointer[generation]
	pool    sync.Pool // *exchange
	reqID   atomic.Uint64
	idBase  string

	// untilClose counts the HTTP/1.0 responses written on connections
	// taken over (sendUntilClose), which fasthttp's Shutdown no longer
	// waits for.
	untilClose struct {
		sync.WaitGroup
		n atomic.Int64
	}

	// Lock order: reloadMu, then the wasm.Runtime's own locks (a reload
	// loads and compiles under it). The lock of lns is a leaf, never held
	// with reloadMu: Shutdown lets go of it before it takes reloadMu.
	reloadMu     sync.Mutex // one reload at a time; guards mods, releases and shut
	mods         map[modKey]*loaded
	releases     map[string]*Release
	shut         bool // Shutdown began: no more generations
	compileCache bool // compiled modules are kept on disk

	lns   listeners.Set
	doors doors // HTTP/2 and HTTP/3 (h2.go, h3.go)
	tier  tier  // the regional cache tier (tier.go)

	// tracer records spans; nil when tracing is off (trace.go).
	tracer *tracing.Tracer

	alog *accessLog // the access log (accesslog.go); nil when off
}

// generation is what one config produced: the routes, their loaded plugins
// and their origins. Requests hold the generation they started on: it
// closes when it has been retired and its last request is done.
type generation struct {
	cfg     *Config
	router  *router
	routes  []*route
	origins map[string]*origin
	loaded  map[modKey]*loaded // a reference held on each
	certs   *certs
	// routeBodies: a route bounds request bodies apart from
	// limits.max_body_bytes, which headerReceived then looks up.
	routeBodies bool

	refs      atomic.Int64 // requests holding it, plus one until retired
	retired   atomic.Bool
	closeOnce sync.Once
}

// ref takes a reference for a request; false once g is retired. (A
// generation's references are ref and unref: "release" in this package is
// a Release, what a plugin runs.)
func (g *generation) ref() bool {
	g.refs.Add(1)
	if g.retired.Load() {
		// This unref may be the last one (retire's came first), so
		// closing is once only.
		g.unref()
		return false
	}
	return true
}

// unref drops a reference; the last one closes g.
func (g *generation) unref() {
	if g.refs.Add(-1) == 0 {
		g.close()
	}
}

// retire gives up the reference g held as the current generation.
func (g *generation) retire() {
	if !g.retired.Swap(true) {
		g.unref()
	}
}

// Options are what a Node takes besides its config.
type Options struct {
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// CompilationCache is a directory for compiled plugins; "" keeps them
	// in memory only.
	CompilationCache string
}

// New builds a node from cfg: it loads every plugin of every route (each
// loaded plugin is compiled, configured and warm before New returns) and
// connects nothing yet.
func New(ctx context.Context, cfg *Config, opts Options) (*Node, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n := &Node{cfg: cfg, log: opts.Logger, reg: prometheus.NewRegistry(),
		cache: host.NewMemCache(cfg.CacheBytes), limiter: host.NewShared(host.NewGCRA(1 << 20)), mods: map[modKey]*loaded{}}
	n.reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	n.m = newMetrics(n.reg)
	n.load.init(&cfg.Overload, n.m, n.reg)
	n.doors.register(n.reg)
	// How full the response cache is against its cache_bytes bound.
	n.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wedge_edge", Name: "cache_bytes",
			Help: "Bytes the response cache accounts for (bounded by cache_bytes)."},
			func() float64 { return float64(n.cache.WeightedSize()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wedge_edge", Name: "cache_entries",
			Help: "Entries in the response cache."},
			func() float64 { return float64(n.cache.Len()) }),
		// What responses being written hold, against max_write_bytes.
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wedge_edge", Name: "write_bytes",
			Help: "Bytes of response bodies held for clients still receiving them, cached bodies not counted (bounded by max_write_bytes)."},
			func() float64 { return float64(n.writes.bytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wedge_edge", Name: "read_bytes",
			Help: "Announced lengths of the request bodies being read whole (bounded by max_read_bytes)."},
			func() float64 { return float64(n.reads.bytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wedge_edge", Name: "writes",
			Help: "Response bodies handed to the server and not yet written (slow clients hold theirs up to the write timeout)."},
			func() float64 { return float64(n.writes.n.Load()) }))
	n.writes.limit = int64(cfg.Limits.MaxWriteBytes)
	n.reads.init(&cfg.Limits)
	n.om = originclient.NewMetrics(n.reg)
	n.tun.init(cfg.Limits.WebSocket, n.reg)
	hostname, _ := os.Hostname()
	n.idBase = fmt.Sprintf("%s-%x-", strings.ReplaceAll(cfg.POP+hostname, " ", ""), time.Now().UnixNano()&0xffffff)
	wcfg := wasm.NewConfig().WithStores(n.cache, n.limiter).WithRegisterer(n.reg).WithLogger(opts.Logger).
		WithMaxBodySize(cfg.Limits.MaxBodyBytes)
	if opts.CompilationCache != "" {
		wcfg = wcfg.WithCompilationCache(opts.CompilationCache)
	}
	var err error
	if n.alog, err = openAccessLog(cfg.AccessLog, n.m.accessLogDropped, opts.Logger); err != nil {
		return nil, err
	}
	defer func() {
		if n.srv == nil { // New failed
			n.alog.close(context.Background()) //nolint:errcheck // nothing was logged
		}
	}()
	if n.tracer, err = newTracer(cfg); err != nil { // trace.go
		return nil, err
	}
	defer func() {
		if n.srv == nil { // New failed: nothing was recorded
			n.tracer.Shutdown(context.Background()) //nolint:errcheck
		}
	}()
	if n.runtime, err = wasm.NewRuntime(ctx, wcfg); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	n.compileCache = opts.CompilationCache != ""
	g, err := n.build(ctx, cfg)
	if err != nil {
		n.prune(&generation{})
		n.runtime.Close(ctx)
		return nil, err
	}
	n.gen.Store(g)
	n.pool.New = func() any { return new(exchange) }
	if err := n.tier.init(n, cfg); err != nil {
		n.gen.Load().retire()
		n.prune(&generation{})
		n.runtime.Close(ctx)
		return nil, err
	}
	n.srv = &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if n.reads.claim(&ctx.Request.Header) == fasthttp.StatusRequestEntityTooLarge {
				n.tooLarge(ctx) // headerReceived refused it: its body is not to be read
			} else {
				n.serve(ctx)
			}
			date(&ctx.Response.Header)
			n.servedH1(ctx)
		},
		ErrorHandler:                  n.readError,
		Name:                          "wedge",
		ReadBufferSize:                cfg.Limits.MaxHeaderBytes,
		MaxRequestBodySize:            cfg.Limits.MaxBodyBytes,
		StreamRequestBody:             cfg.Limits.StreamThreshold > 0, // stream.go
		HeaderReceived:                n.headerReceivedH1,
		ExpectHandler:                 n.expect,
		DisablePreParseMultipartForm:  true, // a multipart body goes on as sent, never spooled (stream.go)
		Concurrency:                   cfg.Limits.MaxConns,
		IdleTimeout:                   time.Duration(cfg.Limits.IdleTimeout),
		ReadTimeout:                   time.Duration(cfg.Limits.ReadTimeout),
		WriteTimeout:                  time.Duration(cfg.Limits.WriteTimeout),
		DisableHeaderNamesNormalizing: true,
		ReduceMemoryUsage:             true,
		NoDefaultContentType:          true,
		NoDefaultServerHeader:         true,
		// A response keeps the Date it has (the origin's, or the stored
		// one on a cache hit); date adds the node's where there is none.
		NoDefaultDate: true,
		Logger:        slogPrintf{opts.Logger},
		// fasthttp's errors otherwise quote the request's header section,
		// credentials included, into the log.
		SecureErrorLogMessage: true,
		// Marks where a request ends for lineEndConn (lineEndListener),
		// which relies on ReduceMemoryUsage too.
		ConnState: connState,
	}
	return n, nil
}

// build loads what cfg and the releases describe into a new generation.
// On error it returns the generation, closed, for prune.
func (n *Node) build(ctx context.Context, cfg *Config) (_ *generation, err error) {
	g := &generation{cfg: cfg, origins: map[string]*origin{}, loaded: map[modKey]*loaded{}}
	g.refs.Store(1)
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if g.certs, err = loadCerts(cfg.TLS.Certs); err != nil {
		return g, err
	}
	prev := n.gen.Load() // nil at start
	for name, oc := range cfg.Origins {
		o, err := newOrigin(name, oc, n.om, n.log)
		if err != nil {
			return g, err
		}
		var was *originLimit // the same origin's in the last generation
		if prev != nil {
			if po := prev.origins[name]; po != nil && po.addr == oc.Addr {
				was = po.limit
			}
		}
		o.limit = keepOriginLimit(was, name, time.Duration(oc.LatencyTarget), &n.cfg.Overload, n.m) // originlimit.go
		g.origins[name] = o
	}
	for _, rc := range cfg.Routes {
		rt := &route{name: rc.Name, host: rc.Host, path: rc.Path, origin: g.origins[rc.Origin], m: n.m.route(rc.Name),
			tier: rc.Tier == "region", shield: rc.Shield}
		if rt.timeout = time.Duration(rc.Timeout); rt.timeout == 0 {
			rt.timeout, rt.limit = rt.origin.timeout, rt.origin.limit
		}
		// The running limits, not cfg's: the server reads bodies by them
		// until a restart (Reload), and a reload's stream_threshold or
		// max_body_bytes applied to the routes alone had bodies read
		// whole to bounds meant for streaming (a 60 MB upload held in
		// memory, then refused by the envelope's bound).
		rt.maxBody, rt.maxResponse = routeMax(rc, &n.cfg.Limits) // stream.go
		g.routeBodies = g.routeBodies || rc.MaxBodyBytes != 0
		for _, pc := range rc.Chain {
			s, err := n.loadStep(ctx, g, rc.Name, pc)
			if err != nil {
				return g, fmt.Errorf("edge: route %s: %w", rc.Name, err)
			}
			rt.chain = append(rt.chain, s)
		}
		g.routes = append(g.routes, rt)
	}
	g.router = newRouter(g.routes)
	return g, nil
}

// binary reads the plugin's module file.
func (pc *PluginConfig) binary() ([]byte, error) { return os.ReadFile(pc.File) }

func (g *generation) close() {
	g.closeOnce.Do(func() {
		for _, l := range g.loaded {
			l.m.Release()
		}
		for _, o := range g.origins {
			o.close()
		}
	})
}

// Serve answers HTTP on ln until Shutdown.
func (n *Node) Serve(ln net.Listener) error {
	return n.serveHTTP(ln, n.proxied(listeners.Retry(ln, n.log)))
}

// serveHTTP answers HTTP/1.1 on the connections of accept, which takes
// them from ln (the TLS listener's handshakes hand theirs over, their
// PROXY headers read already), until Shutdown.
func (n *Node) serveHTTP(ln, accept net.Listener) error {
	if !n.lns.Add(ln) {
		return nil // after Shutdown
	}
	if err := n.srv.Serve(lineEndListener{accept}); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("edge: %w", err)
	}
	return nil
}

// Reload builds the routes, plugins and origins of cfg and swaps them in:
// requests in flight finish on what they started with, new ones take the
// new config. If anything in cfg fails to load, nothing changes.
// Listeners and limits keep their values until a restart.
func (n *Node) Reload(ctx context.Context, cfg *Config) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	// The tier signs with the key it started with: an origin given that
	// key would take its asks as requests (and the reverse).
	if n.cfg.Tier.Listen != "" {
		if err := tierKeyClash(n.cfg.Tier.key, cfg.Origins); err != nil {
			return fmt.Errorf("edge: reload: %w (tier.key takes effect at a restart)", err)
		}
	}
	if changed := restartOnly(n.cfg, cfg); len(changed) > 0 {
		n.log.Warn("reload: these changed, and take effect at a restart; the node keeps its running ones until then",
			"fields", strings.Join(changed, ", "))
	}
	n.alog.reopen() // a rotated access log continues in a new file
	return n.swap(ctx, cfg)
}

// swap builds a generation from cfg and the releases and makes it current.
// Plugin versions both generations run are shared, not loaded again, so
// their pools stay warm and their health counters continue.
func (n *Node) swap(ctx context.Context, cfg *Config) error {
	if n.shut {
		return ErrClosed
	}
	g, err := n.build(ctx, cfg)
	if err != nil {
		n.prune(n.gen.Load())
		n.m.reloads.WithLabelValues("error").Inc()
		return err
	}
	// Before the swap: a tunnel whose handshake ends from now on is
	// checked against g, wherever it ran (tunnels.add).
	n.tun.drain(g) // tunnels whose route g changes
	old := n.gen.Swap(g)
	old.retire()
	n.dropOriginSeries(old, g)
	n.prune(g)
	n.m.reloads.WithLabelValues("ok").Inc()
	return nil
}

// dropOriginSeries deletes the limit series of the origins old limited
// and g does not (latency_target taken away, or the origin gone): kept,
// they showed for ever a bound that no longer held. A limit old's
// requests still update writes to series no longer exported.
func (n *Node) dropOriginSeries(old, g *generation) {
	for name, o := range old.origins {
		if o.limit != nil && (g.origins[name] == nil || g.origins[name].limit == nil) {
			n.m.originLimit.DeleteLabelValues(name)
			n.m.originLatency.DeleteLabelValues(name)
		}
	}
}

// restartOnly names what differs between the running config and cfg
// among what only a restart applies: the listeners, the tier's key, the
// trusted proxies, the limits, the HTTP/2 and HTTP/3 settings, the access
// log's path and sample.
func restartOnly(running, cfg *Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"listen", running.Listen == cfg.Listen},
		{"proxy_protocol", slices.Equal(running.ProxyProtocol.trusted(), cfg.ProxyProtocol.trusted())},
		{"trusted_proxies", slices.Equal(running.TrustedProxies, cfg.TrustedProxies)},
		{"admin.listen", running.Admin.Listen == cfg.Admin.Listen},
		{"tls.listen", running.TLS.Listen == cfg.TLS.Listen},
		{"tls.http2", reflect.DeepEqual(running.TLS.HTTP2, cfg.TLS.HTTP2)},
		{"tls.http3", reflect.DeepEqual(running.TLS.HTTP3, cfg.TLS.HTTP3)},
		{"tier.listen", running.Tier.Listen == cfg.Tier.Listen},
		{"tier.key", running.Tier.key.ID == cfg.Tier.key.ID && bytes.Equal(running.Tier.key.Secret, cfg.Tier.key.Secret)},
		{"limits", reflect.DeepEqual(running.Limits, cfg.Limits)},
		{"access_log.path", running.AccessLog.Path == cfg.AccessLog.Path},
		{"access_log.sample", running.AccessLog.Sample == cfg.AccessLog.Sample},
		// The node's admission state counts requests in flight under the
		// block it started with: changed under them, done would not match
		// admit. Origins' limits follow the same block (keepOriginLimit).
		{"overload", running.Overload == cfg.Overload},
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	return out
}

// ReopenLogs opens the access log's file again, under its configured
// path: log rotation (rename the file, then this) without a reload, which
// builds every route again.
func (n *Node) ReopenLogs() {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	n.alog.reopen()
}

// ReloadFailed counts a reload that failed before Reload (the new config
// did not parse) in wedge_edge_reloads_total, as Reload counts its own.
func (n *Node) ReloadFailed() { n.m.reloads.WithLabelValues("error").Inc() }

// Shutdown stops accepting, waits for requests in flight (within ctx), and
// closes the generations, origins and runtime.
func (n *Node) Shutdown(ctx context.Context) error {
	n.lns.Close()
	// Tunnels are hijacked connections, which fasthttp no longer waits
	// for. They get their close frames now, beside the requests being
	// drained: after them, a long poll held their 1001 up to its end.
	tunnels := make(chan struct{})
	go func() { n.tun.shutdown(ctx); close(tunnels) }()
	// HTTP/2 and HTTP/3 clients get their GOAWAY now too, and move their
	// new requests elsewhere: after the HTTP/1.1 drain, they went on
	// opening streams that the deadline then cut.
	doors := make(chan error, 1)
	go func() { doors <- n.doors.shutdown(ctx) }()
	err := n.srv.ShutdownWithContext(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listeners, closed above: no error to hide the next
	}
	if terr := n.tier.shutdown(ctx); err == nil { // tier.go
		err = terr
	}
	<-tunnels
	if werr := n.waitUntilClose(ctx); werr != nil {
		err = errors.Join(err, werr) // an earlier step's ctx error would not say what was left
	}
	if derr := <-doors; err == nil {
		err = derr
	}
	// Requests still running when ctx ran out keep the generation (and the
	// runtime its plugins) open until they are done; later ones get 503.
	// Under reloadMu, so no reload or release can install a generation
	// after the last one is retired.
	n.reloadMu.Lock()
	n.shut = true
	n.gen.Load().retire()
	n.prune(&generation{})
	n.reloadMu.Unlock()
	n.runtime.Close(ctx)
	if aerr := n.alog.close(ctx); err == nil { // writes the lines queued
		err = aerr
	}
	// The spans still batched go to the collector.
	if terr := n.tracer.Shutdown(ctx); err == nil {
		err = terr
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("edge: shutdown: %w", err)
	}
	return nil
}

// waitUntilClose waits, as long as ctx lets it, for the HTTP/1.0
// responses that end with their connection: cut by the process's exit,
// each would look complete to its client. fasthttp's Shutdown has
// returned, so none starts now.
func (n *Node) waitUntilClose(ctx context.Context) error {
	done := make(chan struct{})
	go func() { n.untilClose.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d HTTP/1.0 responses still being written: %w", n.untilClose.n.Load(), ctx.Err())
	}
}

// Registry is the node's Prometheus registry, served on /metrics.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Limits is the node's rate-limit store, for the exchange of shared scopes
// (edge/limitsync).
func (n *Node) Limits() *host.Shared { return n.limiter }

// slogPrintf adapts slog to fasthttp's logger.
type slogPrintf struct{ l *slog.Logger }

// Printf logs fasthttp's message with each parse error in it replaced by
// what transportClass makes of it: fasthttp's errors quote the client's
// bytes ("invalid header value %q"), credentials included, even with
// SecureErrorLogMessage. Socket errors (a write timeout, a reset) name only
// the operation and addresses, and keep their cause.
func (s slogPrintf) Printf(format string, args ...any) {
	for i, a := range args {
		var oe *net.OpError
		if err, ok := a.(error); ok && !errors.As(err, &oe) {
			_, args[i] = transportClass(err)
		}
	}
	s.l.Warn(fmt.Sprintf(format, args...))
}
