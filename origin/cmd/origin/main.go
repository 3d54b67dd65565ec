// Command origin runs the Wedge origin service: it answers the frames edges
// send for requests no plugin answered, by proxying them to the HTTP
// applications given with -upstream.
//
//	origin -key @/etc/wedge/origin.keys -upstream http://127.0.0.1:8080,http://127.0.0.1:8081
//
// Keys come as `wedgectl origin keygen` prints them (ID:HEX), from -key, from
// a file of one key per line (-key @FILE) or from WEDGE_ORIGIN_KEY. Every key
// is accepted; the first signs. -metrics serves /metrics (Prometheus) and
// /health (200 while an upstream is in rotation). With -samples DIR, every
// Nth exchange is written as DIR/<n>.req.cbor and DIR/<n>.resp.cbor for
// `wedgectl origin train-dict`, with credentials and forwarded values
// redacted.
//
// The origin passes the edge's traceparent and tracestate on to the
// application. With -otlp it takes part in the trace: each upstream call
// is a span, child of the edge's, exported over OTLP/HTTP, and the
// application's traceparent names it; -trace-sample is the fraction of
// traces it starts itself (for requests that came without one) that are
// recorded.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/talowa/wedge/internal/listeners"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable flag; commas separate values too.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// keyEnv names the environment variable read when -key is empty.
const keyEnv = "WEDGE_ORIGIN_KEY"

// run is the whole command, from flags to shutdown when ctx ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		listen      = fs.String("listen", "127.0.0.1:9000", "address edges send frames to")
		keyArg      = fs.String("key", "", "frame key ID:HEX, or @FILE with one key per line (the first signs); default $"+keyEnv)
		healthPath  = fs.String("health-path", "/", "path upstream health checks GET; empty turns health tracking off")
		healthEvery = fs.Duration("health-interval", 2*time.Second, "time between health checks of an upstream")
		maxInFlight = fs.Int("max-inflight", 4096, "exchanges in progress past which the origin answers 503")
		maxTunnels  = fs.Int("max-tunnels", origin.DefaultMaxTunnels, "WebSocket tunnels (and handshakes) past which a handshake gets 503")
		legacyTun   = fs.Bool("legacy-tunnel-handshakes", false, "also take tunnel handshakes without the tunnel flag, from edges that predate it; for a rolling upgrade only: it lets a captured request frame be replayed as a handshake")
		timeout     = fs.Duration("timeout", 30*time.Second, "longest time an exchange may take, whatever the edge's budget")
		maxEnvelope = fs.Int("max-envelope", wire.DefaultMaxEnvelope, "largest frame and envelope, in bytes")
		streamMin   = fs.Int("stream-threshold", 0, "response body size past which a body streams to edges that take it; 0: what an envelope holds")
		metricsAddr = fs.String("metrics", "127.0.0.1:9001", "address for /metrics and /health; empty turns it off")
		samplesDir  = fs.String("samples", "", "directory to write sample envelopes to, for dictionary training")
		sampleEvery = fs.Uint64("sample-every", 100, "write every Nth exchange to -samples")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")
		otlp        = fs.String("otlp", "", "OTLP/HTTP `URL` spans go to, e.g. http://127.0.0.1:4318; empty turns tracing off")
		traceSample = fs.Float64("trace-sample", 0.05, "fraction of new traces recorded (requests with a traceparent follow its sampled flag)")
		traceName   = fs.String("trace-service", "wedge-origin", "service.name of the spans")
		dicts       listFlag
		upstreams   listFlag
	)
	fs.Var(&dicts, "dict", "zstd dictionary `FILE` frames may use (repeatable)")
	fs.Var(&upstreams, "upstream", "application base `URL`, http://host:port (repeatable or comma separated)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(upstreams) == 0 {
		return errors.New("no upstream: give at least one -upstream http://host:port")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level}))

	keys, err := loadKeys(*keyArg)
	if err != nil {
		return err
	}
	cfg := wire.Config{Keys: keys, MaxEnvelope: *maxEnvelope, MinCompress: wire.DefaultMinCompress}
	for _, path := range dicts {
		d, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("-dict: %w", err)
		}
		cfg.Dicts = append(cfg.Dicts, d)
	}
	codec, err := wire.NewCodec(cfg)
	if err != nil {
		return err
	}
	defer codec.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := origin.NewMetrics(reg)

	var tracer *origin.Tracer
	if *otlp != "" {
		if tracer, err = origin.NewTracer(origin.TracingConfig{OTLP: *otlp, Sample: *traceSample, Service: *traceName}); err != nil {
			return fmt.Errorf("-otlp: %w", err)
		}
		// Last, after the server: the spans of the last requests go too,
		// unless the collector does not take them within 5 s.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tracer.Shutdown(sctx); err != nil {
				log.Warn("origin: spans not sent", "err", err)
			}
		}()
	}

	interval := *healthEvery
	if *healthPath == "" {
		interval = -1
	}
	var observe func(*wire.Request, *wire.Response)
	if *samplesDir != "" {
		s, err := newSampler(*samplesDir, *sampleEvery, log)
		if err != nil {
			return err
		}
		defer s.close() // after the proxy's: no exchange is observed once it is closed
		observe = s.observe
	}
	proxy, err := origin.NewProxy(origin.ProxyConfig{
		Upstreams: upstreams, HealthPath: *healthPath, HealthInterval: interval, Timeout: *timeout,
		// Room for the header fields within the envelope.
		MaxResponseBody: max(*maxEnvelope-*maxEnvelope/16, 1),
		StreamThreshold: *streamMin,
		Metrics:         metrics, Logger: log, Tracer: tracer, Observe: observe,
	})
	if err != nil {
		return err
	}
	defer proxy.Close()
	var handler origin.Handler = proxy

	srv, err := origin.NewServer(origin.ServerConfig{Codec: codec, Handler: handler, MaxInFlight: *maxInFlight, MaxTunnels: *maxTunnels,
		LegacyTunnelHandshakes: *legacyTun, MaxTimeout: *timeout, Metrics: metrics, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()

	var msrv *http.Server
	maddr := ""
	if *metricsAddr != "" {
		mln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			srv.Shutdown(context.Background()) //nolint:errcheck
			return err
		}
		maddr = mln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			if proxy.Healthy() == 0 {
				http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok\n")
		})
		msrv = listeners.SideServer(mux)
		go func() {
			if err := msrv.Serve(listeners.SideListener(mln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}
	log.Info("origin: serving", "listen", ln.Addr().String(), "metrics", maddr, "upstreams", len(upstreams),
		"keys", len(keys), "dicts", len(cfg.Dicts))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("origin: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if msrv != nil {
		msrv.Shutdown(sctx) //nolint:errcheck
	}
	if err := srv.Shutdown(sctx); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// loadKeys reads the keys from -key or the environment.
func loadKeys(arg string) ([]wire.Key, error) {
	if arg == "" {
		arg = os.Getenv(keyEnv)
	}
	if arg == "" {
		return nil, errors.New("no key: pass -key ID:HEX or -key @FILE, or set " + keyEnv +
			" (`wedgectl origin keygen` makes one)")
	}
	lines := []string{arg}
	if file, ok := strings.CutPrefix(arg, "@"); ok {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-key: %w", err)
		}
		lines = strings.Split(string(b), "\n")
	}
	var keys []wire.Key
	for i, l := range lines {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, err := wire.ParseKey(l)
		if err != nil {
			return nil, fmt.Errorf("-key line %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("-key %s: no key in it", arg)
	}
	return keys, nil
}
