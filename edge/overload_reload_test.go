package edge_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestOverloadReloadRestartOnly: a reload that changes the overload block
// (here the operator's emergency overload: {off: true}, then new bounds)
// must either take effect or be named in the reload's "take effect at a
// restart" warning, as limits and listeners are. It did neither: the node
// kept its start-up limit in silence (while the origins' limits, built
// from the new block, followed it: half applied).
func TestOverloadReloadRestartOnly(t *testing.T) {
	addr, _, release := heldOrigin(t)
	release()
	doc := func(overload string) string {
		return fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q, latency_target: 1h}
routes:
  - {path: /, origin: app}
overload: %s
`, addr, origintest.Key.Text(), overload)
	}
	logs := &testutil.SyncBuffer{}
	n := edgetest.StartWith(t, doc("{min_limit: 4, initial_limit: 4, max_limit: 4, target_delay: 1h, queue_delay: 1h}"),
		edge.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	limit := func() float64 { return testutil.MetricSum(t, n.Registry(), "wedge_edge_concurrency_limit", nil) }
	if got := limit(); got != 4 {
		t.Fatalf("limit at start %v, want 4", got)
	}
	for _, tc := range []struct{ block, want string }{
		{"{off: true}", "0 (off)"},
		{"{min_limit: 50, initial_limit: 50, max_limit: 50, target_delay: 1h, queue_delay: 1h}", "50"},
	} {
		cfg, err := edge.ParseConfig([]byte(doc(tc.block)), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Reload(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		applied := limit() != 4
		warned := strings.Contains(logs.String(), "overload")
		origin := testutil.MetricSum(t, n.Registry(), "wedge_edge_origin_concurrency_limit", map[string]string{"origin": "app"})
		if !applied && !warned {
			t.Logf("meanwhile the origin's limit follows the new block: wedge_edge_origin_concurrency_limit{origin=app} = %v", origin)
			t.Errorf("reload to overload: %s: the node kept concurrency limit %v (want %s) and the log names no overload change as restart-only:\n%s",
				tc.block, limit(), tc.want, logs.String())
		}
	}
}
