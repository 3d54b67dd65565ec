package origin

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/talowa/wedge/internal/tracing"
	"github.com/talowa/wedge/origin/wire"
)

// TracingConfig exports a span per upstream call over OTLP/HTTP.
type TracingConfig struct {
	// OTLP is the collector's OTLP/HTTP URL, e.g. http://127.0.0.1:4318
	// (a URL without a path gets /v1/traces).
	OTLP string
	// Sample is the fraction of new traces recorded, 0 to 1: those of
	// requests that arrive without a valid traceparent. One that comes
	// with one follows its sampled flag, as the edge set it.
	Sample float64
	// Service is the spans' service.name. Default wedge-origin.
	Service string
}

// Tracer records the proxy's spans (ProxyConfig.Tracer). A nil *Tracer
// records nothing.
type Tracer struct{ t *tracing.Tracer }

// NewTracer starts a tracer; Shutdown sends what it still holds.
func NewTracer(cfg TracingConfig) (*Tracer, error) {
	if cfg.Service == "" {
		cfg.Service = "wedge-origin"
	}
	// The sender is an edge, which decided whether to sample (a client's
	// flag alone does not make it): its decision holds here, so the
	// trace is recorded at both or neither.
	t, err := tracing.New(tracing.Config{OTLP: cfg.OTLP, Sample: cfg.Sample, Service: cfg.Service, TrustSampled: true})
	if err != nil {
		return nil, err
	}
	return &Tracer{t}, nil
}

// Shutdown sends the spans still batched and stops, within ctx. Nil-safe.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.t.Shutdown(ctx)
}

var nameTraceparent = []byte(tracing.Header)

// upstreamSpan is a sampled upstream call's span; the zero value records
// nothing.
type upstreamSpan struct{ sp trace.Span }

// start continues the trace of req in freq, the request to the
// application, which buildRequest filled: the application's traceparent
// names this call's span, in the edge's trace (the tracestate goes on
// unchanged, as buildRequest copied it). A request that came without a
// valid traceparent (not from an edge: from an in-process client, say)
// starts a new trace without a tracestate. With t nil, freq keeps what the
// edge sent. Unless the call is sampled, it allocates nothing.
func (t *Tracer) start(freq *fasthttp.Request, req *wire.Request) upstreamSpan {
	if t == nil {
		return upstreamSpan{}
	}
	from, err := tracing.Find(len(req.Header),
		func(i int) []byte { return req.Header[i].Name }, func(i int) []byte { return req.Header[i].Value })
	h := &freq.Header
	for i := range req.Header {
		// Set spells the name as given (normalizing is off): drop each
		// spelling the edge or a client used.
		if n := req.Header[i].Name; asciiEqualFold(n, tracing.Header) || (err != nil && asciiEqualFold(n, tracing.StateHeader)) {
			h.DelBytes(n)
		}
	}
	hop := t.t.Join(from, err)
	var buf [64]byte
	h.SetBytesKV(nameTraceparent, hop.Span.Append(buf[:0]))
	if !hop.Span.Sampled() {
		return upstreamSpan{}
	}
	method, name := tracing.Method(string(req.Method))
	sp := t.t.Start(&hop, name+" upstream", trace.SpanKindClient, time.Now())
	sp.SetAttributes(
		attribute.String("http.request.method", method),
		attribute.String("url.path", string(req.Path)),
		attribute.String("wedge.request_id", string(req.ID)),
	)
	return upstreamSpan{sp}
}

// end ends the span with the answer's status.
func (s upstreamSpan) end(resp *wire.Response) {
	if s.sp == nil {
		return
	}
	s.sp.SetAttributes(attribute.Int("http.response.status_code", int(resp.Status)))
	if resp.Status >= 500 {
		s.sp.SetStatus(codes.Error, "")
	}
	s.sp.End()
}
