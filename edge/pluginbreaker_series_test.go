package edge_test

import (
	"fmt"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin/origintest"
)

// TestReviewBreakerSeriesGoWithTheirRoute: a route removed by a reload
// while its plugin version stays loaded (another route runs it) takes its
// breaker's series with it. They stayed until the version was unloaded,
// an open breaker's state at 2: WedgePluginBreakerOpen fired for a route
// that no longer exists, for as long as the version ran elsewhere.
func TestReviewBreakerSeriesGoWithTheirRoute(t *testing.T) {
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
