package edge_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestOriginLimitSeriesAfterReload: an origin whose limit a reload takes
// away (latency_target removed) has no limit from then on, and
// wedge_edge_origin_concurrency_limit{origin} (and _latency_seconds) go
// too. They went on reporting the last one for ever: the dashboard's
// "Origin concurrency limit" panel showed a limit that no longer existed,
// and an operator reading it while requests piled up on the origin was
// told they were bounded.
func TestOriginLimitSeriesAfterReload(t *testing.T) {
	addr, _, release := heldOrigin(t)
	release()
	doc := func(extra string) string {
		return fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q%s}
routes:
  - {path: /, origin: app}
overload: {min_limit: 4, initial_limit: 4, max_limit: 4, target_delay: 1h, queue_delay: 1h}
`, addr, origintest.Key.Text(), extra)
	}
	n := startNode(t, doc(", latency_target: 1h"))
	series := func() int {
		return len(testutil.Series(t, n.Registry(), "wedge_edge_origin_concurrency_limit", map[string]string{"origin": "app"}))
	}
	if series() != 1 {
		t.Fatal("no origin limit series at start")
	}
	cfg, err := edge.ParseConfig([]byte(doc("")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if series() != 0 {
		t.Fatalf("origin app has no limit after the reload, yet wedge_edge_origin_concurrency_limit{origin=app} = %v",
			testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_concurrency_limit", map[string]string{"origin": "app"}))
	}
}
