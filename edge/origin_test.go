package edge_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestOriginFailedLogged: an origin that is down fails every request, and
// its "origin failed" line goes to the log once a second, with the request
// ID to find it by and how many failures it stands for: a line per request
// flooded the log on the request path during an outage.
func TestOriginFailedLogged(t *testing.T) {
	down := testutil.RefusedAddr(t)
	var logs testutil.SyncBuffer
	n := startNodeWith(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
`, down, origintest.Key.Text()), edge.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	const requests = 30
	start := time.Now()
	for range requests {
		if st, _, _ := n.do(t, "GET", "x", "/", nil); st < 500 {
			t.Fatalf("an origin that is down: %d", st)
		}
	}
	took := time.Since(start)
	var lines []string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "origin failed") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 || len(lines) > int(took/time.Second)+2 || !strings.Contains(lines[0], "request_id=") {
		t.Fatalf("%d requests in %s logged %d \"origin failed\" lines, want one a second with its request_id:\n%s",
			requests, took.Round(time.Millisecond), len(lines), strings.Join(lines, ""))
	}
}
