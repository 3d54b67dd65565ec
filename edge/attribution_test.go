package edge_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestHealthAttribution: a request's error and latency count for the
// versions that produced them, not for every version the request ran
// through: a failing or origin-breaking canary of one plugin shows on its
// own row, not on the stable versions of the plugins beside it, which the
// status page and the gates read per version.
func TestHealthAttribution(t *testing.T) {
	app := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 200
		if string(req.Path) == "/boom" {
			resp.Status = 500
		}
	}))
	n := startNode(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {name: outer, file: %q, config: {greeting: Outer}}
      - {name: inner, file: %[3]q, config: {greeting: Inner}}
  - path: /fail/
    origin: app
    chain:
      - {name: outer, file: %[3]q, config: {greeting: Outer}}
      - {name: misbehave, file: %q}
`, app.Addr, origintest.Key.Text(), hello(t), misbehave(t)))
	// inner and misbehave each run a canary, c2, on requests pinned to it.
	rel := map[string]*edge.Release{
		"inner":     {Canary: &edge.Release{Version: "c2", Config: []byte(`{"greeting":"Canary"}`)}, Share: 0.01},
		"misbehave": {Canary: &edge.Release{Version: "c2"}, Share: 0.01},
	}
	if err := n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	stable := map[string]string{}
	for k, r := range n.Running() {
		stable[k] = r.Version
	}
	type counts struct{ requests, errors, timed uint64 }
	health := func() map[string]counts {
		m := map[string]counts{}
		for _, h := range n.Health() {
			var timed uint64
			for _, b := range h.Buckets {
				timed += b
			}
			name := h.Plugin
			if h.Version == "c2" {
				name += "@c2"
			}
			c := m[name]
			m[name] = counts{c.requests + h.Requests, c.errors + h.Errors, c.timed + timed}
		}
		return m
	}
	send := func(k int, path string, want int, hdr ...string) {
		t.Helper()
		for range k {
			if st, _, body := n.do(t, "GET", "x", path, nil, hdr...); st != want {
				t.Fatalf("GET %s %v: %d %q, want %d", path, hdr, st, body, want)
			}
		}
	}

	// The origin fails requests through the inner canary: the canary is
	// what differs from the requests that work, so they are its errors
	// and its latencies alone; outer and the stable inner count them as
	// requests only.
	send(5, "/boom", 500, pin("inner@c2")...)
	send(3, "/ok", 200, pin("inner@c2")...)
	h := health()
	if got, want := h["outer"], (counts{8, 0, 0}); got != want {
		t.Errorf("outer beside a failing canary: %+v, want %+v", got, want)
	}
	if got, want := h["inner@c2"], (counts{8, 5, 8}); got != want {
		t.Errorf("inner canary: %+v, want %+v", got, want)
	}
	// The same failure with no canary on the request: nothing tells the
	// versions apart, so every one that ran counts it.
	send(2, "/boom", 500, pin("inner@"+stable["inner"])...)
	h = health()
	if got, want := h["outer"], (counts{10, 2, 2}); got != want {
		t.Errorf("outer, no canary: %+v, want %+v", got, want)
	}
	if got, want := h["inner"], (counts{2, 2, 2}); got != want {
		t.Errorf("stable inner: %+v, want %+v", got, want)
	}

	// A version that fails (closed: a 5xx) has the error to itself, stable
	// or canary; the hello before it, which only passed the request on,
	// none.
	send(4, "/fail/x", 503, append(pin("misbehave@c2"), "X-Misbehave", "request:fail")...)
	send(1, "/fail/x", 503, append(pin("misbehave@"+stable["misbehave"]), "X-Misbehave", "request:fail")...)
	send(2, "/fail/x", 204, pin("misbehave@c2")...)
	h = health()
	if got, want := h["outer"], (counts{17, 2, 2}); got != want {
		t.Errorf("outer before failing misbehave: %+v, want %+v", got, want)
	}
	if got, want := h["misbehave@c2"], (counts{6, 4, 6}); got != want {
		t.Errorf("misbehave canary: %+v, want %+v", got, want)
	}
	if got, want := h["misbehave"], (counts{1, 1, 1}); got != want {
		t.Errorf("stable misbehave: %+v, want %+v", got, want)
	}
}

// TestHealthAttributionCanaryUpstream: a canary that breaks what it passes
// on, so that a stable plugin after it traps or answers 5xx, has the error
// on its own row too: its rollout gates must see it, not only the stable
// plugin that failed.
func TestHealthAttributionCanaryUpstream(t *testing.T) {
	app := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		resp.Status = 200
	}))
	n := startNode(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {name: relay, file: %q}
      - {name: misbehave, file: %q}
`, app.Addr, origintest.Key.Text(), wasmtest.BuildFile(t, "../wasm/internal/testguests/relay"), misbehave(t)))
	set := func(mode string) *edge.Release {
		return &edge.Release{Version: "c-" + mode, Config: fmt.Appendf(nil, `{"name":"X-Misbehave","value":"request:%s"}`, mode)}
	}
	rel := map[string]*edge.Release{"relay": {Canary: set("trap"), Share: 0.01}}
	if err := n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	errs := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, h := range n.Health() {
			m[h.Plugin+"@"+h.Version] += h.Errors
		}
		return m
	}
	stable := n.Running()["relay"].Version
	// Through the stable relay misbehave behaves: no errors anywhere.
	if st, _, body := n.do(t, "GET", "x", "/", nil, pin("relay@"+stable)...); st != 204 {
		t.Fatalf("stable relay: %d %q, want 204", st, body)
	}
	// The trapping canary makes the stable misbehave trap (a 5xx).
	for range 3 {
		if st, _, body := n.do(t, "GET", "x", "/", nil, pin("relay@c-trap")...); st < 500 {
			t.Fatalf("relay canary c-trap: %d %q, want a 5xx", st, body)
		}
	}
	// A version's counters go with it: look before replacing the canary.
	if e := errs(); e["relay@c-trap"] != 3 {
		t.Errorf("relay canary whose output traps misbehave: %d errors, want 3 (%v)", e["relay@c-trap"], e)
	}
	// Another canary makes it fail, answered 503.
	rel["relay"].Canary = set("fail")
	if err := n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if st, _, body := n.do(t, "GET", "x", "/", nil, pin("relay@c-fail")...); st != 503 {
			t.Fatalf("relay canary c-fail: %d %q, want 503", st, body)
		}
	}
	e := errs()
	if e["relay@c-fail"] != 2 {
		t.Errorf("relay canary whose output fails misbehave: %d errors, want 2 (%v)", e["relay@c-fail"], e)
	}
	if e["relay@"+stable] != 0 {
		t.Errorf("stable relay: %d errors, want 0 (%v)", e["relay@"+stable], e)
	}
}
