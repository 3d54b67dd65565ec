// Package tracing is what the edge and the origin service share to take
// part in W3C Trace Context and to export spans over OTLP/HTTP with
// OpenTelemetry's SDK: the traceparent field's parser and writer,
// allocation-free for the request path; the sampling decision (a ratio,
// which a sender's sampled flag does not override unless trusted), taken
// before the SDK is called
// so that a request not sampled costs no allocation; and the tracer
// provider both run, with a batch exporter.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is where spans go and how many.
type Config struct {
	// OTLP is the collector's OTLP/HTTP URL, http:// or https://; a URL
	// without a path gets the standard /v1/traces.
	OTLP string
	// Sample is the fraction of traces recorded, 0 to 1, decided by the
	// trace id. A request that arrives in a trace its sender did not
	// sample is not recorded; one its sender sampled is at this ratio,
	// unless TrustSampled.
	Sample float64
	// TrustSampled makes a sender's sampled flag decide: a request that
	// arrives sampled is recorded. Only for senders that are trusted to
	// sample sparingly: a client that sets the flag on every request
	// would have every one recorded, the costly path.
	TrustSampled bool
	// Service is the service.name of the spans.
	Service string
}

// Check refuses a config the exporter could not use.
func (c Config) Check() error {
	if _, err := c.options(); err != nil {
		return err
	}
	if !(c.Sample >= 0 && c.Sample <= 1) { // NaN too, which sampled every trace on amd64
		return fmt.Errorf("tracing: sample %g: want 0 to 1", c.Sample)
	}
	if c.Service == "" {
		return errors.New("tracing: no service name")
	}
	return nil
}

// options are the exporter's, from OTLP.
func (c Config) options() ([]otlptracehttp.Option, error) {
	u, err := url.Parse(c.OTLP)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("tracing: otlp %q: want http://host:port or https://host:port/path", c.OTLP)
	}
	path := u.Path
	if path == "" || path == "/" {
		path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(path)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return opts, nil
}

// Tracer records spans and sends them to the collector in batches. A nil
// *Tracer is tracing turned off: Join still propagates, nothing records.
type Tracer struct {
	tp    *sdktrace.TracerProvider
	tr    trace.Tracer
	ratio sdktrace.Sampler
	trust bool // Config.TrustSampled
}

// New starts a tracer: the exporter connects when it first sends. attrs
// describe the process (the edge's POP, say) on every span.
func New(cfg Config, attrs ...attribute.KeyValue) (*Tracer, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	opts, _ := cfg.options()
	exp := otlptracehttp.NewUnstarted(opts...)
	if err := exp.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res := resource.NewSchemaless(append(attrs, attribute.String("service.name", cfg.Service))...)
	ratio := sdktrace.TraceIDRatioBased(cfg.Sample)
	var remote []sdktrace.ParentBasedSamplerOption
	if !cfg.TrustSampled {
		remote = append(remote, sdktrace.WithRemoteParentSampled(ratio))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// The same decision Join takes: the SDK only sees what Join
		// sampled, and confirms it.
		sdktrace.WithSampler(sdktrace.ParentBased(ratio, remote...)),
		sdktrace.WithIDGenerator(ids{}),
	)
	return &Tracer{tp: tp, tr: tp.Tracer("github.com/talowa/wedge"), ratio: ratio, trust: cfg.TrustSampled}, nil
}

// Shutdown sends the spans still batched and stops the exporter, within
// ctx. Nil-safe.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Hop is one process's part in a trace: the span it sends requests on
// with, and the sender's, if a valid traceparent came in.
type Hop struct {
	// Span is this hop's: the trace (the sender's, or a new one), a new
	// span id, the sampled flag as decided. Its Append is the traceparent
	// to send on.
	Span Parent
	// From is the sender's span; valid only when Joined.
	From   Parent
	Joined bool
}

// Join decides this hop's part given the incoming traceparent (err from
// Parse or Find: nil when there was a valid one). A valid one is
// continued, otherwise a new trace starts; either way the trace travels
// on. Whether this hop records (never with t nil) is the decision the
// SDK's ParentBased sampler would take: not when the sender did not
// sample; by the sender when it did and is trusted (TrustSampled); else
// by the ratio. It allocates nothing.
func (t *Tracer) Join(from Parent, err error) Hop {
	h := Hop{From: from, Joined: err == nil}
	if h.Joined {
		h.Span.TraceID = from.TraceID
	} else {
		h.Span.TraceID = NewTraceID()
	}
	h.Span.SpanID = NewSpanID()
	if t != nil && t.sampled(&h) {
		h.Span.Flags = trace.FlagsSampled
	}
	return h
}

// sampled is Join's decision to record h.
func (t *Tracer) sampled(h *Hop) bool {
	if h.Joined && (!h.From.Sampled() || t.trust) {
		return h.From.Sampled()
	}
	return t.ratio.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: context.Background(), TraceID: h.Span.TraceID,
	}).Decision == sdktrace.RecordAndSample
}

// Start records h's span when h is sampled, and returns nil otherwise
// (or with t nil). Its ids are h.Span's, the ones already sent on.
func (t *Tracer) Start(h *Hop, name string, kind trace.SpanKind, start time.Time) trace.Span {
	if t == nil || !h.Span.Sampled() {
		return nil
	}
	ctx := context.Background()
	if h.Joined {
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: h.From.TraceID, SpanID: h.From.SpanID, TraceFlags: h.From.Flags, Remote: true,
		}))
	}
	ctx = context.WithValue(ctx, presetKey{}, h.Span)
	_, sp := t.tr.Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(start))
	return sp
}

// Child records a span of kind within parent, which Start returned.
func (t *Tracer) Child(parent trace.Span, name string, kind trace.SpanKind, start time.Time) trace.Span {
	_, sp := t.tr.Start(trace.ContextWithSpan(context.Background(), parent), name, trace.WithSpanKind(kind), trace.WithTimestamp(start))
	return sp
}

// presetKey marks the ids Start's span takes: chosen, and sent on, before
// the SDK is asked.
type presetKey struct{}

// ids gives a span the preset ids Start put in its context, or new ones.
type ids struct{}

func (ids) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if p, ok := ctx.Value(presetKey{}).(Parent); ok {
		return p.TraceID, p.SpanID
	}
	return NewTraceID(), NewSpanID()
}

func (ids) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if p, ok := ctx.Value(presetKey{}).(Parent); ok {
		return p.SpanID
	}
	return NewSpanID()
}

// Method is a request method as spans name it (OpenTelemetry's HTTP
// conventions): one of RFC 9110's and PATCH as it is, any other "_OTHER",
// and the span name's prefix for it, "HTTP" for another. A client chooses
// the method, and a span name or attribute per method it makes up would
// grow a tracing backend's groups without bound. The strings returned are
// constants, never m, which a caller may reuse.
func Method(m string) (attr, name string) {
	for _, k := range methods {
		if m == k {
			return k, k
		}
	}
	return "_OTHER", "HTTP"
}

var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
