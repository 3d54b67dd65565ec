package edge_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/tracing/tracingtest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestTracingSampleNaN: tracing.sample .nan is refused, as access_log's
// is. The range check let NaN through, and TraceIDRatioBased(NaN) turns
// NaN*2^63 into a bound of 2^63 on amd64: every trace was recorded, the
// costly path README warns of (on arm64 the conversion gives 0: none).
func TestTracingSampleNaN(t *testing.T) {
	_, err := edge.ParseConfig([]byte(`
tracing: {otlp: "http://127.0.0.1:4318", sample: .nan}
origins:
  app: {addr: 127.0.0.1:1, key: "`+origintest.Key.Text()+`"}
routes:
  - {path: /, origin: app}
`), t.TempDir())
	if err == nil {
		t.Errorf("tracing: {sample: .nan} accepted, want an error like sample 2's")
	}
	if t.Failed() {
		// What the node does with it: count the requests it records.
		var mu sync.Mutex
		sampled := 0
		addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
			tp, _ := wire.Get(req.Header, "traceparent")
			mu.Lock()
			if strings.HasSuffix(string(tp), "-01") {
				sampled++
			}
			mu.Unlock()
			resp.Status = 200
		})).Addr
		n := startNode(t, fmt.Sprintf(`
tracing: {otlp: %q, sample: .nan}
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
`, tracingtest.Start(t).URL, addr, origintest.Key.Text()))
		for i := range 20 {
			n.do(t, "GET", "h", fmt.Sprintf("/%d", i), nil)
		}
		mu.Lock()
		t.Logf("with sample: .nan the node recorded %d of 20 new traces", sampled)
		mu.Unlock()
	}
}
