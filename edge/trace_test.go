package edge_test

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/internal/tracing"
	"github.com/talowa/wedge/internal/tracing/tracingtest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// traceApp is the application behind the tracing tests: it records the
// trace fields each request reached it with, by path.
type traceApp struct {
	mu   sync.Mutex
	seen map[string]http.Header
}

func (a *traceApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.seen[r.URL.Path] = r.Header.Clone()
	a.mu.Unlock()
	w.Header().Set("Cache-Control", "max-age=60")
	fmt.Fprint(w, "ok")
}

func (a *traceApp) got(t *testing.T, path string) http.Header {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.seen[path]
	if !ok {
		t.Fatalf("%s never reached the application", path)
	}
	return h
}

// traceStack is curl's way in: a node whose chain is auth, traceseen
// (which copies the traceparent it reads to X-Plugin-Traceparent, on the
// request in the request phase and on the response in the response phase) and
// cache, an origin service proxying to a traceApp, and an OTLP collector,
// which the node and the origin export to when tracing is on.
type traceStack struct {
	node       *testNode
	app        *traceApp
	collector  *tracingtest.Collector
	token      string
	originAddr string
}

// traceSetup is what a traceStack's node runs with: tracing, the members
// of its tracing block besides otlp ("" for tracing off, at the origin
// too); extra, YAML at the config's top level; relay, a relay step's
// config, a step put before traceseen when not "".
type traceSetup struct{ tracing, extra, relay string }

func startTraceStack(t *testing.T, setup traceSetup) *traceStack {
	// Batches go out every 50 ms rather than every 5 s, so the test waits
	// for spans only as long as the machine takes.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	s := &traceStack{app: &traceApp{seen: map[string]http.Header{}}, collector: tracingtest.Start(t),
		token: "Bearer " + jwstest.UserToken(jwtSecret, "alice")}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.app}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	var tracer *origin.Tracer
	nodeYAML, relay := setup.extra, ""
	if setup.tracing != "" {
		if tracer, err = origin.NewTracer(origin.TracingConfig{OTLP: s.collector.URL, Sample: 1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tracer.Shutdown(t.Context()) }) //nolint:errcheck
		nodeYAML += fmt.Sprintf("\ntracing: {otlp: %q, %s}", s.collector.URL, setup.tracing)
	}
	if setup.relay != "" {
		relay = fmt.Sprintf("\n      - {file: %q, config: %s}", edgetest.ModuleFile(t, "../wasm/internal/testguests/relay"), setup.relay)
	}
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1, Tracer: tracer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	s.originAddr = origintest.Start(t, proxy).Addr
	p := plugins(t)
	s.node = startNode(t, fmt.Sprintf(`
pop: fra1
%s
origins:
  app: {addr: %q, key: %q}
routes:
  - name: api
    path: /
    origin: app
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}%s
      - {file: %q}
      - {file: %q}
`, nodeYAML, s.originAddr, origintest.Key.Text(), p["auth"],
		base64.RawURLEncoding.EncodeToString(jwtSecret), relay, edgetest.ModuleFile(t, "../wasm/internal/testguests/traceseen"), p["cache"]))
	return s
}

// get sends what curl would, with the trace fields given (name, value
// pairs), wants a 200, and returns the traceparent traceseen read in the
// response phase.
func (s *traceStack) get(t *testing.T, path string, hdr ...string) string {
	t.Helper()
	st, h, body := s.node.do(t, "GET", "x", path, nil, append([]string{"Authorization", s.token}, hdr...)...)
	if st != 200 {
		t.Fatalf("GET %s: %d %q", path, st, body)
	}
	return string(h.Peek("X-Plugin-Traceparent"))
}

// spans waits for the spans of trace id, the edge's server span and the
// origin's upstream span among them, and returns them by name.
func (s *traceStack) spans(t *testing.T, id string) (edgeSpan, originSpan tracingtest.Span, all []tracingtest.Span) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "the edge's and the origin's spans of trace "+id, func() bool {
		all = s.collector.Trace(id)
		var e, o bool
		for _, sp := range all {
			switch {
			case sp.Service == "wedge-edge" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
				edgeSpan, e = sp, true
			case sp.Service == "wedge-origin":
				originSpan, o = sp, true
			}
		}
		return e && o
	})
	return edgeSpan, originSpan, all
}

// originCall is the edge's client span of the origin call among a trace's
// spans, which it wants to be a child of the edge's server span: the
// exporter sends spans in the order they end, so it is in by the time the
// server span is.
func originCall(t *testing.T, edgeSpan tracingtest.Span, all []tracingtest.Span) tracingtest.Span {
	t.Helper()
	i := slices.IndexFunc(all, func(sp tracingtest.Span) bool {
		return sp.Service == "wedge-edge" && sp.Kind == tracepb.Span_SPAN_KIND_CLIENT
	})
	if i < 0 {
		t.Fatalf("no client span of the edge's among %d spans of trace %s", len(all), edgeSpan.TraceID)
	}
	if all[i].Parent != edgeSpan.SpanID {
		t.Errorf("the origin call's span %q has parent %q, want the edge's span %s", all[i].Name, all[i].Parent, edgeSpan.SpanID)
	}
	return all[i]
}

// TestTraceEndToEnd is issue 17's: a request from curl through the edge,
// its plugins and the origin service to the application is one trace:
// the client's, continued; or a new one when the client sent none, or a
// malformed one.
func TestTraceEndToEnd(t *testing.T) {
	s := startTraceStack(t, traceSetup{tracing: "sample: 1"})
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	clientTrace, clientSpan := client[3:35], client[36:52]

	// An unsampled trace first: its traceparent moves on (the edge's span
	// id, not sampled), but no span is recorded. The sampled request
	// after it is a barrier: the batches go out in order.
	const unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	s.get(t, "/unsampled", "traceparent", unsampled)
	if tp := s.app.got(t, "/unsampled").Get("traceparent"); tp[:36] != unsampled[:36] || tp[52:] != "-00" || tp[36:52] == unsampled[36:52] {
		t.Errorf("unsampled: the application got %q, want trace %s, a new parent, not sampled", tp, unsampled[3:35])
	}

	respPhase := s.get(t, "/traced", "traceparent", client, "tracestate", "congo=t61rcWkgMzE")
	edgeSpan, originSpan, all := s.spans(t, clientTrace)
	got := s.app.got(t, "/traced")
	if edgeSpan.Parent != clientSpan {
		t.Errorf("edge span's parent %q, want the client's %s", edgeSpan.Parent, clientSpan)
	}
	// The edge's wait on the origin is a client span between the two.
	call := originCall(t, edgeSpan, all)
	if originSpan.Parent != call.SpanID {
		t.Errorf("origin span's parent %q, want the edge's origin call %s", originSpan.Parent, call.SpanID)
	}
	if call.StartNano < edgeSpan.StartNano || call.EndNano > edgeSpan.EndNano || call.StartNano > call.EndNano {
		t.Errorf("origin call from %d to %d, not within the edge's span, %d to %d", call.StartNano, call.EndNano, edgeSpan.StartNano, edgeSpan.EndNano)
	}
	_, port, _ := net.SplitHostPort(s.originAddr)
	for k, want := range map[string]string{"wedge.origin": "app", "server.address": "127.0.0.1", "server.port": port,
		"http.response.status_code": "200", "http.response.body.size": "2", "http.request.body.size": "0"} {
		if call.Attrs[k] != want {
			t.Errorf("origin call's %s = %q, want %q", k, call.Attrs[k], want)
		}
	}
	if call.Name != "origin app" || call.StatusCode != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("origin call's span %q, status %v: want \"origin app\", unset", call.Name, call.StatusCode)
	}
	// The plugin read the traceparent naming the edge's span, in both
	// phases: only the origin's names the call's.
	want := "00-" + clientTrace + "-" + edgeSpan.SpanID + "-01"
	if got.Get("X-Plugin-Traceparent") != want || respPhase != want {
		t.Errorf("the plugin saw %q, then %q in the response phase, want %q", got.Get("X-Plugin-Traceparent"), respPhase, want)
	}
	// The application's names the origin's span, the tracestate unchanged.
	if want := "00-" + clientTrace + "-" + originSpan.SpanID + "-01"; got.Get("traceparent") != want {
		t.Errorf("the application got %q, want %q", got.Get("traceparent"), want)
	}
	if got.Get("tracestate") != "congo=t61rcWkgMzE" {
		t.Errorf("the application got tracestate %q", got.Get("tracestate"))
	}
	// The request ID the application gets is on both spans.
	id := got.Get("X-Request-Id")
	if id == "" || edgeSpan.Attrs["wedge.request_id"] != id || originSpan.Attrs["wedge.request_id"] != id {
		t.Errorf("request ID: application %q, edge span %q, origin span %q", id, edgeSpan.Attrs["wedge.request_id"], originSpan.Attrs["wedge.request_id"])
	}
	for k, want := range map[string]string{"wedge.route": "api", "http.route": "/", "http.response.status_code": "200",
		"http.request.method": "GET", "url.path": "/traced"} {
		if edgeSpan.Attrs[k] != want {
			t.Errorf("edge span %s = %q, want %q", k, edgeSpan.Attrs[k], want)
		}
	}
	if cs := edgeSpan.Attrs["wedge.cache_status"]; !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("edge span's cache status %q, want the cache's miss", cs)
	}
	if v := edgeSpan.Attrs["wedge.plugins"]; !strings.HasPrefix(v, "auth@") || !strings.Contains(v, ", traceseen@") || !strings.Contains(v, ", cache@") {
		t.Errorf("edge span's plugins %q, want auth, traceseen and cache with their versions", v)
	}
	// A span per plugin call, children of the edge's.
	calls := map[string]bool{}
	for _, sp := range all {
		if strings.HasPrefix(sp.Name, "plugin ") && sp.Parent == edgeSpan.SpanID {
			calls[sp.Name] = true
		}
	}
	for _, name := range []string{"plugin auth request", "plugin traceseen request", "plugin cache request", "plugin cache response"} {
		if !calls[name] {
			t.Errorf("no span %q under the edge's (have %v)", name, calls)
		}
	}
	if n := len(s.collector.Trace(unsampled[3:35])); n != 0 {
		t.Errorf("%d spans of the unsampled trace", n)
	}

	// No traceparent, or a malformed one (uppercase hex, which the spec
	// does not allow): a new trace starts at the edge, without the
	// tracestate that came along, and goes on to the application.
	for path, hdr := range map[string][]string{
		"/fresh":     {"tracestate", "congo=t61rcWkgMzE"},
		"/malformed": {"traceparent", strings.ToUpper(client), "tracestate", "congo=t61rcWkgMzE"},
	} {
		s.get(t, path, hdr...)
		got := s.app.got(t, path)
		p, err := tracing.Parse(got.Get("traceparent"))
		if err != nil || p.TraceID.String() == clientTrace {
			t.Fatalf("%s: the application got %q (%v), want a new trace", path, got.Get("traceparent"), err)
		}
		if got.Get("tracestate") != "" {
			t.Errorf("%s: tracestate %q went on with a new trace", path, got.Get("tracestate"))
		}
		edgeSpan, originSpan, all := s.spans(t, p.TraceID.String())
		call := originCall(t, edgeSpan, all)
		if edgeSpan.Parent != "" || originSpan.Parent != call.SpanID || p.SpanID.String() != originSpan.SpanID {
			t.Errorf("%s: edge span %s (parent %q), origin call %s, origin span %s (parent %s), application's parent %s",
				path, edgeSpan.SpanID, edgeSpan.Parent, call.SpanID, originSpan.SpanID, originSpan.Parent, p.SpanID)
		}
		if want := "00-" + p.TraceID.String() + "-" + edgeSpan.SpanID + "-01"; got.Get("X-Plugin-Traceparent") != want {
			t.Errorf("%s: the plugin saw %q, want %q", path, got.Get("X-Plugin-Traceparent"), want)
		}
	}
}

// TestTraceContextUntraced: with tracing off everywhere the trace context
// still travels: a valid traceparent reaches plugins and the application
// as the client sent it, with its tracestate; a malformed one is replaced
// by a new, unsampled trace, never passed on; none is added where there
// was none.
func TestTraceContextUntraced(t *testing.T) {
	s := startTraceStack(t, traceSetup{})
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	s.get(t, "/valid", "traceparent", client, "tracestate", "congo=t61rcWkgMzE")
	got := s.app.got(t, "/valid")
	if got.Get("traceparent") != client || got.Get("X-Plugin-Traceparent") != client || got.Get("tracestate") != "congo=t61rcWkgMzE" {
		t.Errorf("valid: application %q (tracestate %q), plugin %q", got.Get("traceparent"), got.Get("tracestate"), got.Get("X-Plugin-Traceparent"))
	}
	s.get(t, "/none")
	if got := s.app.got(t, "/none"); got.Get("traceparent") != "" || got.Get("X-Plugin-Traceparent") != "" {
		t.Errorf("none: application %q, plugin %q, want none", got.Get("traceparent"), got.Get("X-Plugin-Traceparent"))
	}
	for path, tp := range map[string]string{
		"/malformed": client[:54] + "x",
		"/zero":      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"/twice":     client + ", " + client,
	} {
		s.get(t, path, "traceparent", tp, "tracestate", "congo=t61rcWkgMzE")
		got := s.app.got(t, path)
		tp := got.Get("traceparent")
		if p, err := tracing.Parse(tp); err != nil || p.Sampled() || tp == client || got.Get("X-Plugin-Traceparent") != tp {
			t.Errorf("%s: application %q (%v), plugin %q: want one new unsampled trace", path, tp, err, got.Get("X-Plugin-Traceparent"))
		}
		if got.Get("tracestate") != "" {
			t.Errorf("%s: tracestate %q went on with a new trace", path, got.Get("tracestate"))
		}
	}
	if n := len(s.collector.Spans()); n != 0 {
		t.Errorf("%d spans exported with tracing off", n)
	}
}

// TestTracingConfigRefused: a tracing block the exporter could not use is
// an error when the config loads, not a node that silently exports
// nothing.
func TestTracingConfigRefused(t *testing.T) {
	for block, want := range map[string]string{
		`{otlp: "127.0.0.1:4318"}`:                   "want http://host:port",
		`{otlp: "grpc://127.0.0.1:4317"}`:            "want http://host:port",
		`{otlp: "http://127.0.0.1:4318", sample: 2}`: "sample 2",
		`{otlp: "http://127.0.0.1:4318", rate: 1}`:   "field rate not found",
	} {
		_, err := edge.ParseConfig([]byte(`
tracing: `+block+`
origins:
  app: {addr: 127.0.0.1:1, key: "`+origintest.Key.Text()+`"}
routes:
  - {path: /, origin: app}
`), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tracing: %s: %v, want an error with %q", block, err, want)
		}
	}
}

// TestTraceClientSampled: a client's sampled flag does not make the node
// record the request (any client can set it, on every request) unless
// trust_client_sampling says so. At sample 0 the trace still travels on
// to the application, as the node decided it (not sampled), and nothing
// is exported; trusted, the client's flag decides.
func TestTraceClientSampled(t *testing.T) {
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	id := client[3:35]
	s := startTraceStack(t, traceSetup{tracing: "sample: 0"})
	s.get(t, "/forced", "traceparent", client)
	got := s.app.got(t, "/forced")
	if p, err := tracing.Parse(got.Get("traceparent")); err != nil || p.TraceID.String() != id || p.Sampled() {
		t.Errorf("the application got %q (%v), want trace %s, not sampled", got.Get("traceparent"), err, id)
	}
	// Shutting down, the node sends the spans it still holds.
	if err := s.node.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.collector.Trace(id)); n != 0 {
		t.Errorf("%d spans exported for a client's sampled flag at sample 0", n)
	}

	s = startTraceStack(t, traceSetup{tracing: "sample: 0, trust_client_sampling: true"})
	s.get(t, "/trusted", "traceparent", client)
	if edgeSpan, _, _ := s.spans(t, id); edgeSpan.Parent != client[36:52] {
		t.Errorf("trusted: edge span's parent %q, want the client's", edgeSpan.Parent)
	}
}

// TestTraceAccessLog: the access log's trace_id is the trace the request
// came in (here the client's), even when a plugin rewrites the
// traceparent it passes on, with tracing on or off; and with both on, a
// plugin call's span and its access log times are one reading of the
// clock: each request phase's span begins where the one before ended, and
// lasts what the line says.
func TestTraceAccessLog(t *testing.T) {
	const (
		client    = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		rewritten = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	)
	for _, traced := range []string{"sample: 1", ""} {
		t.Run("tracing="+traced, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "access.log")
			s := startTraceStack(t, traceSetup{tracing: traced, extra: fmt.Sprintf("access_log: {path: %q}", logFile),
				relay: fmt.Sprintf("{name: traceparent, value: %q}", rewritten)})
			s.get(t, "/logged", "traceparent", client)
			if got := s.app.got(t, "/logged").Get("X-Plugin-Traceparent"); got != rewritten {
				t.Fatalf("traceseen read %q, want the relay's %q", got, rewritten)
			}
			line := waitAccessLog(t, logFile, 1)[0]
			if line.TraceID != client[3:35] {
				t.Errorf("trace_id %q, want the client's %s, not the rewritten one", line.TraceID, client[3:35])
			}
			if traced == "" {
				return
			}
			// The origin got the relay's traceparent, not one naming the
			// edge's origin call: the origin's span is in the relay's trace.
			var originSpan tracingtest.Span
			testutil.Eventually(t, 20*time.Second, "the origin's span in the relay's trace", func() bool {
				all := s.collector.Trace(rewritten[3:35])
				i := slices.IndexFunc(all, func(sp tracingtest.Span) bool { return sp.Service == "wedge-origin" })
				if i >= 0 {
					originSpan = all[i]
				}
				return i >= 0
			})
			if originSpan.Parent != rewritten[36:52] {
				t.Errorf("origin span's parent %q, want the relay's %s", originSpan.Parent, rewritten[36:52])
			}
			var all []tracingtest.Span
			testutil.Eventually(t, 20*time.Second, "the edge's span", func() bool {
				all = s.collector.Trace(client[3:35])
				return slices.ContainsFunc(all, func(sp tracingtest.Span) bool { return sp.Kind == tracepb.Span_SPAN_KIND_SERVER })
			})
			calls := map[string]tracingtest.Span{}
			for _, sp := range all {
				calls[sp.Name] = sp
			}
			var prev *tracingtest.Span
			for _, p := range line.Plugins {
				name, _, _ := strings.Cut(p.Plugin, "@")
				sp, ok := calls["plugin "+name+" request"]
				if !ok {
					t.Fatalf("no span for %s's request phase: %v", name, slices.Collect(maps.Keys(calls)))
				}
				if prev != nil && sp.StartNano != prev.EndNano {
					t.Errorf("%s's span begins at %d, the one before ended at %d", name, sp.StartNano, prev.EndNano)
				}
				// The span's times are wall clock, the line's monotonic.
				if d := int64(sp.EndNano-sp.StartNano) / 1000; d < *p.RequestUS-1 || d > *p.RequestUS+1 {
					t.Errorf("%s: span of %d µs, line's request_us %d", name, d, *p.RequestUS)
				}
				prev = &sp
			}
		})
	}
}

// TestTraceMethodOther: a method outside the standard set (any client can
// make one up) names no span and no attribute value of its own: spans by
// method name grew a tracing backend's groups without bound.
func TestTraceMethodOther(t *testing.T) {
	s := startTraceStack(t, traceSetup{tracing: "sample: 1"})
	const tp = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if st, _, body := s.node.do(t, "XQZ1", "x", "/made-up", nil, "Authorization", s.token, "traceparent", tp); st != 200 {
		t.Fatalf("XQZ1: %d %q", st, body)
	}
	edgeSpan, originSpan, _ := s.spans(t, tp[3:35])
	if edgeSpan.Name != "HTTP /" || edgeSpan.Attrs["http.request.method"] != "_OTHER" ||
		originSpan.Name != "HTTP upstream" || originSpan.Attrs["http.request.method"] != "_OTHER" {
		t.Fatalf("edge span %q %v, origin span %q %v: want HTTP and _OTHER", edgeSpan.Name, edgeSpan.Attrs["http.request.method"],
			originSpan.Name, originSpan.Attrs["http.request.method"])
	}
}
