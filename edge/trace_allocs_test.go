//go:build !race

package edge_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/talowa/wedge/internal/tracing/tracingtest"
)

// unsampledParent is a client's traceparent that says it did not record.
const unsampledParent = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n"

// withHeader is the hit request req with a field line added.
func withHeader(req []byte, line string) []byte {
	i := bytes.Index(req, []byte("\r\n")) + 2
	return append(append(append([]byte(nil), req[:i]...), line...), req[i:]...)
}

// TestServeHitTracedAllocs: with tracing on, a request that is not
// sampled, in a trace of its own (sample: 0) or in a client's unsampled
// one, costs no allocation either: the traceparent is read, decided on
// and written anew without one.
func TestServeHitTracedAllocs(t *testing.T) {
	n, req := startHitNodeWith(t, fmt.Sprintf("tracing: {otlp: %q, sample: 0}", tracingtest.Start(t).URL))
	h := n.Handler()
	for name, req := range map[string][]byte{"new trace": req, "client's unsampled trace": withHeader(req, unsampledParent)} {
		ctx, r := handlerCtx(t, req)
		fill(h, ctx, r)
		for range 10 {
			serveHit(t, h, ctx, r)
		}
		if a := leastAllocs(func() { serveHit(t, h, ctx, r) }); a != 0 {
			t.Errorf("%s: %v allocations per hit, want 0", name, a)
		}
	}
}

// BenchmarkServeHitTraced is BenchmarkServeHit's handler case with tracing
// off, on but the request not sampled, and sampled (the edge's span and a
// span per plugin call, exported to an in-process collector).
func BenchmarkServeHitTraced(b *testing.B) {
	c := tracingtest.Start(b)
	for _, tc := range []struct{ name, extra string }{
		{"off", ""},
		{"unsampled", fmt.Sprintf("tracing: {otlp: %q, sample: 0}", c.URL)},
		{"sampled", fmt.Sprintf("tracing: {otlp: %q, sample: 1}", c.URL)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n, req := startHitNodeWith(b, tc.extra)
			benchHandlerHit(b, n, req)
		})
	}
}
