package edge_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestPluginBreakerStopsRunaway: a plugin version whose calls run until
// their deadline stops them opens its breaker on its route after
// breaker.failures of them, and the route's requests then get what its
// failure gives without the plugin being called: a 503 where it fails
// closed, the origin's answer where it fails open. A route without it
// is served throughout. The version's health (what the rollout gates and
// the status page read) counts every skipped request as a failure. Past
// open_for one call probes: stopped at its deadline it opens the breaker
// again, ending in time it closes it. A version that runs out of its
// deadline fewer times than failures keeps being called. Each phase has
// its breaker: a runaway response phase opens the response phase's.
//
// Calls are counted by the runtime's call histogram and errors, not by
// time; each route runs its own version label so that their counts are
// apart.
func TestPluginBreakerStopsRunaway(t *testing.T) {
	file := misbehave(t)
	yaml := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: closed, path: /closed/, origin: app, chain: [{file: %[3]q, version: closed, deadline: 5ms,
      breaker: {failures: 3, window: 1h, open_for: 1h}}]}
  - {name: open, path: /open/, origin: app, chain: [{file: %[3]q, version: open, deadline: 5ms, failure: open,
      breaker: {failures: 3, window: 1h, open_for: 50ms}}]}
  - {name: rare, path: /rare/, origin: app, chain: [{file: %[3]q, version: rare, deadline: 5ms,
      breaker: {failures: 3, window: 1h}}]}
  - {name: resp, path: /resp/, origin: app, chain: [{file: %[3]q, version: resp, deadline: 5ms,
      breaker: {failures: 2, window: 1h, open_for: 1h}}]}
  - {name: plain, path: /plain/, origin: app}
`, startOrigin(t, "o"), origintest.Key.Text(), file)
	logs := &testutil.SyncBuffer{}
	tn := startNodeWith(t, yaml, edge.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	loop := []string{"X-Misbehave", "request:loop"}
	calls := func(version, phase string) float64 {
		return metric(t, tn, "wedge_plugin_call_duration_seconds", "version", version, "phase", phase)
	}
	timeouts := func(version string) float64 {
		return metric(t, tn, "wedge_plugin_errors_total", "version", version, "kind", "timeout")
	}
	state := func(route, phase string) float64 {
		return metric(t, tn, "wedge_edge_plugin_breaker_state", "route", route, "phase", phase)
	}
	health := func(version string) manifest.Health {
		for _, h := range tn.Health() {
			if h.Version == version {
				return h
			}
		}
		t.Fatalf("no health of version %s: %+v", version, tn.Health())
		return manifest.Health{}
	}

	// Fail closed: three runaways open it.
	for i := range 3 {
		if st, _, _ := tn.do(t, "GET", "x", "/closed/", nil, loop...); st != 503 {
			t.Fatalf("runaway %d: %d, want the fail-closed 503", i, st)
		}
	}
	if s, o := state("closed", "request"), metric(t, tn, "wedge_edge_plugin_breaker_opens_total", "route", "closed"); s != 2 || o != 1 {
		t.Fatalf("after 3 runaways: breaker state %v, opens %v; want open (2), once", s, o)
	}
	if !strings.Contains(logs.String(), `msg="plugin breaker opened`) || !strings.Contains(logs.String(), "@closed route=closed phase=request rule=failures timeouts=3") {
		t.Fatalf("the opening was not logged:\n%s", logs)
	}
	before, hBefore := calls("closed", "request"), health("closed")
	for i := range 20 {
		hdr := loop
		if i%2 == 0 {
			hdr = nil // a request the plugin would answer 204: not called, it cannot
		}
		if st, _, _ := tn.do(t, "GET", "x", "/closed/", nil, hdr...); st != 503 {
			t.Fatalf("request %d while open: %d, want the fail-closed 503", i, st)
		}
		if st, _, body := tn.do(t, "GET", "x", "/plain/", nil); st != 200 || !strings.HasPrefix(body, "o: GET /plain/") {
			t.Fatalf("the route without the plugin while open: %d %q", st, body)
		}
	}
	if got := calls("closed", "request"); got != before {
		t.Fatalf("the plugin was called %v times while its breaker was open", got-before)
	}
	if got := metric(t, tn, "wedge_edge_plugin_breaker_skipped_total", "route", "closed", "phase", "request"); got != 20 {
		t.Fatalf("skipped_total %v, want the 20 requests' request phases", got)
	}
	if h := health("closed"); h.Requests-hBefore.Requests != 20 || h.Errors-hBefore.Errors != 20 {
		t.Fatalf("health while open: %d requests, %d errors more; want 20 and 20", h.Requests-hBefore.Requests, h.Errors-hBefore.Errors)
	}
	if n := strings.Count(logs.String(), "@closed route=closed phase=request kind="); n != 3 {
		t.Errorf("%d plugin failures logged for 3 runaways: a skipped call logs none", n)
	}

	// Fail open: the requests go on to the origin, and a version that
	// fails open is failing all the same for its gates.
	for i := range 3 {
		if st, _, body := tn.do(t, "GET", "x", "/open/", nil, loop...); st != 200 || !strings.HasPrefix(body, "o: ") {
			t.Fatalf("runaway %d: %d %q, want the origin's answer (fail open)", i, st, body)
		}
	}
	// Open, or half-open already: its 50 ms may be over by the time the
	// series is read, and the breaker turns half-open on its own.
	if s, o := state("open", "request"), metric(t, tn, "wedge_edge_plugin_breaker_opens_total", "route", "open"); s < 1 || o != 1 {
		t.Fatalf("fail-open route: breaker state %v, opens %v; want open (2, or 1 past open_for), once\n%s", s, o, logs)
	}
	if h := health("open"); h.Errors != h.Requests || h.Requests < 3 {
		t.Fatalf("fail-open health: %d errors of %d requests, want all", h.Errors, h.Requests)
	}
	// Past open_for a runaway probe runs, is stopped and opens it again.
	deadline := time.Now().Add(20 * time.Second)
	for timeouts("open") == 3 {
		if time.Now().After(deadline) {
			t.Fatal("no probe ran within 20 s of a 50 ms open_for")
		}
		if st, _, body := tn.do(t, "GET", "x", "/open/", nil, loop...); st != 200 || !strings.HasPrefix(body, "o: ") {
			t.Fatalf("runaway while open or probing: %d %q", st, body)
		}
	}
	if got, s := timeouts("open"), state("open", "request"); got != 4 || s < 1 {
		t.Fatalf("after a failed probe: %v timeouts, state %v; want 4 and open (2, or 1 past open_for)", got, s)
	}
	if o := metric(t, tn, "wedge_edge_plugin_breaker_opens_total", "route", "open"); o != 2 {
		t.Fatalf("opens %v, want 2: the failed probe opens it again", o)
	}
	if h := health("open"); h.Errors != h.Requests {
		t.Fatalf("fail-open health: %d errors of %d requests, want all", h.Errors, h.Requests)
	}
	// A probe that behaves closes it: the plugin answers 204 itself.
	for {
		if time.Now().After(deadline) {
			t.Fatal("no probe closed the breaker within 20 s of a 50 ms open_for")
		}
		st, _, body := tn.do(t, "GET", "x", "/open/", nil)
		if st == 204 {
			break
		}
		if st != 200 || !strings.HasPrefix(body, "o: ") {
			t.Fatalf("while open: %d %q, want the origin's answer (fail open)", st, body)
		}
	}
	if s := state("open", "request"); s != 0 {
		t.Fatalf("after a probe that ended in time: state %v, want closed (0)", s)
	}
	before = calls("open", "request")
	for i := range 5 {
		if st, _, _ := tn.do(t, "GET", "x", "/open/", nil); st != 204 {
			t.Fatalf("request %d after closing: %d, want the plugin's 204", i, st)
		}
	}
	if got := calls("open", "request") - before; got < 5 {
		t.Fatalf("%v calls for 5 requests after closing", got)
	}

	// Runaways in the response phase open its breaker, which skips that
	// phase only: the request phase, which ends in time, is still called
	// (it answers 204, which the skipped response phase fails closed).
	for i := range 2 {
		if st, _, _ := tn.do(t, "GET", "x", "/resp/", nil, "X-Misbehave", "response:loop"); st != 503 {
			t.Fatalf("response-phase runaway %d: %d, want the fail-closed 503", i, st)
		}
	}
	if s := state("resp", "response"); s != 2 {
		t.Fatalf("after 2 response-phase runaways: state %v, want open (2)", s)
	}
	before, reqBefore := calls("resp", "response"), calls("resp", "request")
	if st, _, _ := tn.do(t, "GET", "x", "/resp/", nil); st != 503 {
		t.Fatalf("while open: %d, want the fail-closed 503", st)
	}
	if got := calls("resp", "response"); got != before {
		t.Fatalf("the response phase was called %v times while its breaker was open", got-before)
	}
	if got := calls("resp", "request"); got != reqBefore+1 {
		t.Fatalf("the request phase was called %v times for one request, want once: its breaker is closed", got-reqBefore)
	}

	// Runaways fewer than failures leave it closed: the plugin keeps
	// being called.
	for i := range 20 {
		hdr := []string(nil)
		if i == 5 || i == 15 {
			hdr = loop
		}
		st, _, _ := tn.do(t, "GET", "x", "/rare/", nil, hdr...)
		if hdr == nil && st != 204 || hdr != nil && st != 503 {
			t.Fatalf("rare route, request %d (%q): %d", i, hdr, st)
		}
	}
	if s, o := state("rare", "request"), metric(t, tn, "wedge_edge_plugin_breaker_opens_total", "route", "rare"); s != 0 || o != 0 {
		t.Fatalf("two runaways of three: state %v, opens %v; want it never opened", s, o)
	}
	if got := timeouts("rare"); got != 2 {
		t.Fatalf("rare route: %v timeouts, want 2", got)
	}
}

func TestPluginBreakerConfig(t *testing.T) {
	for _, c := range []struct{ breaker, want string }{
		{"breaker: {failures: -1}", "route \"hello\": plugin hello: breaker: failures -1: want 1 to 1000"},
		{"breaker: {failures: 1001}", "breaker: failures 1001: want 1 to 1000"},
		{"breaker: {open_for: soon}", "is not a duration like 10s"},
	} {
		yaml := strings.Replace(config("127.0.0.1:1", "hello.wasm", ""), "config: {greeting: Hi}", c.breaker, 1)
		if _, err := edge.ParseConfig([]byte(yaml), t.TempDir()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.breaker, err, c.want)
		}
	}
}

// TestPluginBreakerSeriesGoWithTheirRoute: a route removed by a reload
// while its plugin version stays loaded (another route runs it) takes its
// breaker's series with it. They stayed until the version was unloaded,
// an open breaker's state at 2: WedgePluginBreakerOpen fired for a route
// that no longer exists, for as long as the version ran elsewhere.
func TestPluginBreakerSeriesGoWithTheirRoute(t *testing.T) {
	file := misbehave(t)
	origin := startOrigin(t, "o")
	both := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: gone, path: /gone/, origin: app, chain: [{file: %[3]q, version: v, deadline: 5ms,
      breaker: {failures: 1, window: 1h, open_for: 1h}}]}
  - {name: kept, path: /kept/, origin: app, chain: [{file: %[3]q, version: v, deadline: 5ms,
      breaker: {failures: 1, window: 1h, open_for: 1h}}]}
`, origin, origintest.Key.Text(), file)
	tn := startNodeWith(t, both, edge.Options{}, nil)
	if st, _, _ := tn.do(t, "GET", "x", "/gone/", nil, "X-Misbehave", "request:loop"); st != 503 {
		t.Fatalf("runaway: %d, want 503", st)
	}
	if s := metric(t, tn, "wedge_edge_plugin_breaker_state", "route", "gone", "phase", "request"); s != 2 {
		t.Fatalf("breaker state %v, want open (2)", s)
	}
	kept := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: kept, path: /kept/, origin: app, chain: [{file: %[3]q, version: v, deadline: 5ms,
      breaker: {failures: 1, window: 1h, open_for: 1h}}]}
`, origin, origintest.Key.Text(), file)
	reload(t, tn, kept)
	if st, _, _ := tn.do(t, "GET", "x", "/kept/", nil); st >= 500 {
		t.Fatalf("the kept route after the reload: %d", st)
	}
	if s := metric(t, tn, "wedge_edge_plugin_breaker_state", "route", "gone"); s != 0 {
		t.Fatalf("route gone removed by the reload still has wedge_edge_plugin_breaker_state %v (open), as long as the version runs on route kept", s)
	}
}

// TestPluginBreakerFailedReloadKeepsOpenState: a reload that fails (a
// later route's module does not compile) after making a breaker of a
// changed config for a route whose running breaker is open shares that
// breaker's series (its labels name no config): it set
// wedge_edge_plugin_breaker_state to 0 while the running breaker stayed
// open and skipped every call, and WedgePluginBreakerOpen resolved. A
// reload that succeeds with the new config lets the open one go, and the
// series shows the new breaker's state.
func TestPluginBreakerFailedReloadKeepsOpenState(t *testing.T) {
	file := misbehave(t)
	origin := startOrigin(t, "o")
	bad := t.TempDir() + "/bad.wasm"
	if err := os.WriteFile(bad, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := func(openFor, extra string) string {
		return fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: r, path: /r/, origin: app, chain: [{file: %[3]q, version: v, deadline: 5ms,
      breaker: {failures: 1, window: 1h, open_for: %[4]s}}]}
%[5]s`, origin, origintest.Key.Text(), file, openFor, extra)
	}
	tn := startNodeWith(t, cfg("1h", ""), edge.Options{}, nil)
	state := func() float64 {
		return metric(t, tn, "wedge_edge_plugin_breaker_state", "route", "r", "phase", "request")
	}
	skipped := func() float64 {
		return metric(t, tn, "wedge_edge_plugin_breaker_skipped_total", "route", "r", "phase", "request")
	}
	if st, _, _ := tn.do(t, "GET", "x", "/r/", nil, "X-Misbehave", "request:loop"); st != 503 {
		t.Fatalf("runaway: %d, want 503", st)
	}
	if s := state(); s != 2 {
		t.Fatalf("state %v, want open (2)", s)
	}
	next, err := edge.ParseConfig([]byte(cfg("2h", fmt.Sprintf("  - {name: b, path: /b/, origin: app, chain: [{file: %q}]}\n", bad))), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.Reload(context.Background(), next); err == nil {
		t.Fatal("a reload with a module that does not compile succeeded")
	}
	before := skipped()
	if st, _, _ := tn.do(t, "GET", "x", "/r/", nil); st != 503 {
		t.Fatalf("after the failed reload: %d, want the open breaker's 503", st)
	}
	if s, after := state(), skipped(); s != 2 || after != before+1 {
		t.Fatalf("after a failed reload: wedge_edge_plugin_breaker_state %v, skipped %v -> %v; want open (2), the running breaker skipping", s, before, after)
	}
	reload(t, tn, cfg("2h", ""))
	if s := state(); s != 0 {
		t.Fatalf("after a reload with a new breaker config: state %v, want the new breaker's closed (0)", s)
	}
	if st, _, _ := tn.do(t, "GET", "x", "/r/", nil); st != 204 {
		t.Fatalf("after a reload with a new breaker config: %d, want the plugin's 204", st)
	}
}

// TestPluginBreakerConfigCanaryKeepsOpenState: a canary that changes only
// the plugin's config runs the stable version's name and version, so its
// breaker on the route shares the stable breaker's series: made while
// the stable one was open, it set wedge_edge_plugin_breaker_state to 0,
// while the stable breaker went on skipping every stable-side request.
func TestPluginBreakerConfigCanaryKeepsOpenState(t *testing.T) {
	file := misbehave(t)
	yaml := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: r, path: /r/, origin: app, chain: [{name: mb, file: %[3]q, version: v, deadline: 5ms,
      breaker: {failures: 1, window: 1h, open_for: 1h}}]}
`, startOrigin(t, "o"), origintest.Key.Text(), file)
	tn := startNodeWith(t, yaml, edge.Options{}, nil)
	state := func() float64 {
		return metric(t, tn, "wedge_edge_plugin_breaker_state", "route", "r", "phase", "request")
	}
	if st, _, _ := tn.do(t, "GET", "x", "/r/", nil, "X-Misbehave", "request:loop"); st != 503 {
		t.Fatalf("runaway: %d, want 503", st)
	}
	if s := state(); s != 2 {
		t.Fatalf("state %v, want open (2)", s)
	}
	rel := map[string]*edge.Release{"mb": {Canary: &edge.Release{Config: []byte(`{"x":1}`)}, Share: 1}}
	if err := tn.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != 2 {
		t.Fatalf("with a config-only canary beside the open stable breaker: state %v, want open (2)", s)
	}
}
