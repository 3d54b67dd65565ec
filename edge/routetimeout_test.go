package edge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestRouteTimeout: a route's timeout replaces its origin's as the budget
// of its requests, so the application may hold one of them past the
// origin's timeout (a long poll), while the other routes keep the origin's.
func TestRouteTimeout(t *testing.T) {
	// The application holds every request longer than the origin's timeout
	// (this is what it does, not a wait for something).
	const hold = 300 * time.Millisecond
	app := origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		time.Sleep(hold)
		resp.Status = 200
		resp.Body = fmt.Appendf(resp.Body, "budget %v", time.Duration(req.Timeout)*time.Microsecond)
	})
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: app, MaxTimeout: time.Hour}, nil)
	n := startNode(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q, timeout: 100ms}
routes:
  - {path: /, origin: app}
  - {path: /socket.io/, origin: app, timeout: 1h}
`, o.Addr, origintest.Key.Text()))

	st, _, body := n.do(t, "GET", "x", "/socket.io/?EIO=4&transport=polling", nil)
	if st != 200 || !strings.HasPrefix(body, "budget 59m") {
		t.Fatalf("on the route with a timeout: %d %q, want 200 with the route's budget", st, body)
	}
	if st, _, body := n.do(t, "GET", "x", "/other", nil); st != 504 {
		t.Fatalf("on the route without: %d %q, want 504 at the origin's timeout", st, body)
	}
}
