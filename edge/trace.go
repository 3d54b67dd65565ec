package edge

import (
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/talowa/wedge/internal/tracing"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// TracingConfig exports spans over OTLP/HTTP, e.g.
//
//	tracing: {otlp: "http://127.0.0.1:4318", sample: 0.05, service: wedge-edge}
//
// Off when OTLP is "". Trace context travels whether or not it is on:
// see the package doc's Tracing section. Read at start only, as listeners
// and limits are.
type TracingConfig struct {
	// OTLP is the collector's OTLP/HTTP URL; one without a path gets
	// /v1/traces.
	OTLP string `yaml:"otlp"`
	// Sample is the fraction of traces recorded, 0 to 1. Default 0.05.
	// It applies to a request that comes with a traceparent too: one
	// whose sampled flag is unset is not recorded, one whose flag is set
	// is recorded at this ratio (by its trace id, so every node that sees
	// the trace decides alike), since any client can set the flag, and a
	// sampled request costs far more than one not sampled. The trace
	// travels on either way.
	Sample *float64 `yaml:"sample"`
	// TrustClientSampling makes a client's sampled flag decide: set, the
	// request is recorded whatever Sample says. For clients that are
	// yours (a traced service or proxy in front of the edge) and sample
	// already.
	TrustClientSampling bool `yaml:"trust_client_sampling"`
	// Service is the spans' service.name. Default wedge-edge.
	Service string `yaml:"service"`
}

// defaultSample is the fraction of new traces recorded when the config
// says none.
const defaultSample = 0.05

// config is c as the tracer takes it, defaults filled in.
func (c *TracingConfig) config() tracing.Config {
	cfg := tracing.Config{OTLP: c.OTLP, Sample: defaultSample, Service: c.Service, TrustSampled: c.TrustClientSampling}
	if c.Sample != nil {
		cfg.Sample = *c.Sample
	}
	if cfg.Service == "" {
		cfg.Service = "wedge-edge"
	}
	return cfg
}

func (c *TracingConfig) validate() error {
	if c.OTLP == "" {
		return nil
	}
	if err := c.config().Check(); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	return nil
}

// newTracer starts the node's tracer, nil when tracing is off.
func newTracer(cfg *Config) (*tracing.Tracer, error) {
	if cfg.Tracing.OTLP == "" {
		return nil, nil
	}
	t, err := tracing.New(cfg.Tracing.config(), attribute.String("wedge.pop", cfg.POP), attribute.String("wedge.region", cfg.Region))
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	return t, nil
}

// traceState is a request's part in its trace: its id as the request
// came in (for the access log; zero when it is in none), and the
// request's span and the chain that records a span per plugin call, when
// it is sampled.
type traceState struct {
	id    trace.TraceID
	span  trace.Span
	chain tracedChain
}

// trace puts the request in a trace before the chain runs, and returns the
// chain to run. A valid traceparent the client sent is continued and its
// tracestate kept; a repeated or malformed one is replaced by a new trace
// and its tracestate dropped (W3C Trace Context: a traceparent that cannot
// be parsed restarts the trace), never passed on. With tracing on, a
// request without one starts a new trace too, and the traceparent plugins
// and the origin get names this node's span, sampled or not, so the
// origin's span is its child. With tracing off the node records no span
// to be a parent: a valid traceparent passes unchanged, and none is added
// where there was none. A sampled request's origin gets the traceparent of
// its origin call's span instead (trace_origin.go). It allocates nothing
// unless the request is sampled.
func (n *Node) trace(x *exchange, rt *route, start time.Time) host.Chain {
	h := &x.Req.Header
	from, err := tracing.Find(len(h.Fields),
		func(i int) string { return h.Fields[i].Name }, func(i int) string { return h.Fields[i].Value })
	// The access log's trace id: the client's, unless Join gives another.
	x.trace.id = trace.TraceID{}
	if err == nil {
		x.trace.id = from.TraceID
	}
	if n.tracer == nil && (err == nil || err == tracing.ErrAbsent) {
		return &x.chain
	}
	if err != nil {
		h.Del(tracing.StateHeader)
	}
	hop := n.tracer.Join(from, err)
	x.trace.id = hop.Span.TraceID
	var buf [64]byte
	h.Set(tracing.Header, x.CopyString(hop.Span.Append(buf[:0])))
	if n.tracer == nil || !hop.Span.Sampled() {
		return &x.chain
	}
	_, name := tracing.Method(x.Req.Method)
	sp := n.tracer.Start(&hop, name+" "+rt.path, trace.SpanKindServer, start)
	x.trace.span = sp
	x.trace.chain = tracedChain{requestChain: &x.chain, t: n.tracer, parent: sp}
	return &x.trace.chain
}

// methodAttr is http.request.method: the method, or _OTHER for one
// outside the standard set (tracing.Method).
func methodAttr(m string) attribute.KeyValue {
	a, _ := tracing.Method(m)
	return attribute.String("http.request.method", a)
}

// endTrace ends a sampled request's span, after the write: route, status,
// what the cache said (Cache-Status as the chain left it), the plugin
// versions that ran and the request ID. The strings are copies: the
// exchange's are reused by the next request, the span's are exported
// later.
func (n *Node) endTrace(x *exchange, rt *route, status int) {
	sp := x.trace.span
	if sp == nil {
		return
	}
	x.trace = traceState{id: x.trace.id} // the access log's, after
	ran := x.chain.held[:x.flow.Ran()]
	versions := make([]string, len(ran))
	for i, l := range ran {
		versions[i] = l.m.Name() + "@" + l.m.Version()
	}
	sp.SetAttributes(
		methodAttr(x.Req.Method),
		attribute.String("url.path", strings.Clone(x.Req.Path)),
		attribute.String("http.route", rt.path),
		attribute.String("wedge.route", rt.name),
		attribute.Int("http.response.status_code", status),
		attribute.String("wedge.cache_status", strings.Clone(strings.Join(x.Resp.Header.Values("Cache-Status"), ", "))),
		attribute.StringSlice("wedge.plugins", versions),
		attribute.String("wedge.request_id", strings.Clone(x.Req.ID)),
	)
	if status >= 500 {
		sp.SetStatus(codes.Error, "")
	}
	sp.End()
}

// tracedChain is a sampled request's chain: the request's, with a span for
// each plugin call and one for the origin call (trace_origin.go).
type tracedChain struct {
	*requestChain
	t      *tracing.Tracer
	parent trace.Span
}

func (c *tracedChain) OnRequest(i int, ex host.Exchange) (abi.Action, error) {
	start := c.now()
	a, err := c.requestChain.OnRequest(i, ex)
	c.called(i, abi.PhaseRequest, start, err)
	return a, err
}

func (c *tracedChain) OnResponse(i int, ex host.Exchange) error {
	start := c.now()
	err := c.requestChain.OnResponse(i, ex)
	c.called(i, abi.PhaseResponse, start, err)
	return err
}

// now is the time a call begins, or ended once it has run. With the
// access log on, its record (accesslog.go) has read the clock already, at
// the end of the call before and of this one: the span takes those
// times, one reading serving both.
func (c *tracedChain) now() time.Time {
	if c.al != nil {
		return c.al.begin()
	}
	return time.Now()
}

func (c *tracedChain) called(i int, phase abi.Phase, start time.Time, err error) {
	m := c.held[i].m
	sp := c.t.Child(c.parent, "plugin "+m.Name()+" "+abi.PhaseName(phase), trace.SpanKindInternal, start)
	sp.SetAttributes(attribute.String("wedge.plugin", m.Name()), attribute.String("wedge.plugin.version", m.Version()))
	if err != nil {
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End(trace.WithTimestamp(c.now()))
}
