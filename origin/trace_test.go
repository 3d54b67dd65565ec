package origin

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/internal/tracing"
	"github.com/talowa/wedge/internal/tracing/tracingtest"
	"github.com/talowa/wedge/origin/wire"
)

// traceLines are the upstream's trace fields, as received.
func traceLines(raw string) []string {
	var out []string
	for _, l := range headerLines(raw) {
		if name, _, _ := strings.Cut(l, ":"); strings.EqualFold(name, "traceparent") || strings.EqualFold(name, "tracestate") {
			out = append(out, l)
		}
	}
	return out
}

// TestProxyTrace: with a Tracer, each upstream call is a span, the child
// of the edge's span the traceparent names, and the application's
// traceparent names it instead, however the field was spelt; the
// tracestate goes on unchanged. A request without a valid traceparent
// starts a trace of its own, without the tracestate.
func TestProxyTrace(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	c := tracingtest.Start(t)
	tr, err := NewTracer(TracingConfig{OTLP: c.URL, Sample: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(t.Context()) }) //nolint:errcheck
	u := startUpstream(t, func(*fasthttp.RequestCtx) {})
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1, Tracer: tr})
	span := func(traceID string) tracingtest.Span {
		t.Helper()
		var got []tracingtest.Span
		testutil.Eventually(t, 20*time.Second, "the upstream call's span", func() bool {
			got = c.Trace(traceID)
			return len(got) > 0
		})
		if len(got) != 1 || got[0].Service != "wedge-origin" || got[0].Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Fatalf("spans %+v, want one client span of wedge-origin", got)
		}
		return got[0]
	}

	const edge = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := getReq("/traced")
	req.ID = wire.Bytes("edge-7")
	req.AddHeader([]byte("TraceParent"), []byte(edge))
	req.AddHeader([]byte("tracestate"), []byte("congo=t61rcWkgMzE"))
	if resp := serve(p, req, 5*time.Second); resp.Status != 200 {
		t.Fatalf("status %d", resp.Status)
	}
	sp := span(edge[3:35])
	if sp.Parent != edge[36:52] || sp.Attrs["wedge.request_id"] != "edge-7" || sp.Attrs["http.response.status_code"] != "200" {
		t.Errorf("span %+v, want the edge's span as parent, the request ID and the status", sp)
	}
	want := []string{"tracestate: congo=t61rcWkgMzE", "traceparent: 00-" + edge[3:35] + "-" + sp.SpanID + "-01"}
	if got := traceLines(u.lastRaw()); !slices.Equal(got, want) {
		t.Errorf("the application got %q, want %q", got, want)
	}

	for _, tp := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"} {
		req := getReq("/new")
		if tp != "" {
			req.AddHeader([]byte("traceparent"), []byte(tp))
		}
		req.AddHeader([]byte("tracestate"), []byte("congo=t61rcWkgMzE"))
		serve(p, req, 5*time.Second)
		got := traceLines(u.lastRaw())
		if len(got) != 1 {
			t.Fatalf("%q: the application got %q, want one traceparent and no tracestate", tp, got)
		}
		np, err := tracing.Parse(strings.TrimPrefix(got[0], "traceparent: "))
		if err != nil || np.TraceID.String() == edge[3:35] {
			t.Fatalf("%q: the application got %q (%v), want a new trace", tp, got[0], err)
		}
		if sp := span(np.TraceID.String()); sp.Parent != "" || sp.SpanID != np.SpanID.String() {
			t.Errorf("%q: span %+v, want a root span the application's traceparent names", tp, sp)
		}
	}
}
