package edge_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/internal/tracing"
	"github.com/talowa/wedge/internal/tracing/tracingtest"
	"github.com/talowa/wedge/origin/origintest"
)

// TestTraceOriginFailed: an origin call that fails is an error on the
// edge's client span of the call, with error.type saying how it failed
// (no connection, the deadline passed, the breaker open) and no status
// the origin did not answer.
func TestTraceOriginFailed(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // see startTraceStack
	collector := tracingtest.Start(t)
	down := testutil.RefusedAddr(t)
	// The silent origin takes connections and reads what comes, but never
	// answers (an origin service would answer 504 at the budget's end).
	silent, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c) //nolint:errcheck // until the edge gives up
			}()
		}
	}()
	n := startNode(t, fmt.Sprintf(`
tracing: {otlp: %q, sample: 1}
origins:
  down: {addr: %q, key: %q}
  silent: {addr: %q, key: %q, timeout: 100ms}
routes:
  - {path: /down/, origin: down}
  - {path: /silent/, origin: silent}
`, collector.URL, down, origintest.Key.Text(), silent.Addr(), origintest.Key.Text()))

	// call sends a request in a trace of its own and returns its status
	// and the edge's client span of its origin call.
	call := func(path string) (int, tracingtest.Span) {
		t.Helper()
		p := tracing.Parent{TraceID: tracing.NewTraceID(), SpanID: tracing.NewSpanID(), Flags: 1}
		st, _, _ := n.do(t, "GET", "x", path, nil, "traceparent", string(p.Append(nil)))
		var edgeSpan tracingtest.Span
		var all []tracingtest.Span
		testutil.Eventually(t, 20*time.Second, "the edge's span of "+path, func() bool {
			all = collector.Trace(p.TraceID.String())
			for _, sp := range all {
				if sp.Kind == tracepb.Span_SPAN_KIND_SERVER {
					edgeSpan = sp
					return true
				}
			}
			return false
		})
		if edgeSpan.StatusCode != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%s: edge span's status %v, want an error", path, edgeSpan.StatusCode)
		}
		return st, originCall(t, edgeSpan, all)
	}
	check := func(st int, sp tracingtest.Span, status int, errType string) {
		t.Helper()
		if st != status {
			t.Fatalf("%s: answered %d, want %d", sp.Name, st, status)
		}
		if sp.StatusCode != tracepb.Status_STATUS_CODE_ERROR || sp.Attrs["error.type"] != errType {
			t.Errorf("%s: status %v, error.type %q, want an error of type %q", sp.Name, sp.StatusCode, sp.Attrs["error.type"], errType)
		}
		if code, ok := sp.Attrs["http.response.status_code"]; ok {
			t.Errorf("%s: status code %s on a call the origin did not answer", sp.Name, code)
		}
	}

	st, sp := call("/silent/x")
	check(st, sp, 504, "timeout")
	// Refused connections in a row open the breaker: the calls before
	// failed to connect, the one that finds it open says so.
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("the breaker did not open after 10 requests to an origin that refuses connections")
		}
		if st, sp := call("/down/x"); st != 503 || i == 0 {
			check(st, sp, 502, "transport")
		} else {
			check(st, sp, 503, "breaker_open")
			break
		}
	}
}
