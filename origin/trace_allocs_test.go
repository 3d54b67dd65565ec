//go:build !race

package origin

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/tracing/tracingtest"
	"github.com/talowa/wedge/origin/wire"
)

// TestProxyTraceAllocs: a call that is not sampled costs the proxy no
// allocation more with a Tracer than without one.
func TestProxyTraceAllocs(t *testing.T) {
	tr, err := NewTracer(TracingConfig{OTLP: tracingtest.Start(t).URL, Sample: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(t.Context()) }) //nolint:errcheck
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	allocs := func(tracer *Tracer, traceparent string) float64 {
		p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1, Tracer: tracer})
		req := getReq("/p")
		req.Method = wire.Bytes("POST") // not collapsed: the upstream call every time
		if traceparent != "" {
			req.AddHeader([]byte("traceparent"), []byte(traceparent))
		}
		var resp wire.Response
		run := func() {
			resp.Reset()
			p.ServeOrigin(ctx, req, &resp)
		}
		for range 10 {
			run()
		}
		least := testing.AllocsPerRun(200, run)
		for range 2 {
			least = min(least, testing.AllocsPerRun(200, run))
		}
		if resp.Status != 200 {
			t.Fatalf("status %d", resp.Status)
		}
		return least
	}
	base := allocs(nil, "")
	for _, tp := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"} {
		a := allocs(tr, tp)
		if a > base {
			t.Errorf("traceparent %q: %v allocations per call, %v without tracing", tp, a, base)
		}
		t.Logf("traceparent %q: %v allocations per call, %v without tracing", tp, a, base)
	}
}
