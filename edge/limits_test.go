package edge_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

func TestPluginLimitsConfig(t *testing.T) {
	for _, c := range []struct{ limits, want string }{
		{"deadline: 500us", "route \"hello\": plugin hello: deadline 500µs: want 1ms to 10s"},
		{"deadline: 11s", "deadline 11s: want 1ms to 10s"},
		{"deadline: soon", "is not a duration like 10s"},
		{"memory_bytes: 1000", "memory_bytes 1000: want 65536 (64 KiB) to 67108864 (64 MiB)"},
		{"memory_bytes: 134217728", "memory_bytes 134217728: want"},
		{"memory_bytes: -1", "memory_bytes -1: want"},
	} {
		yaml := strings.Replace(config("127.0.0.1:1", "hello.wasm", ""), "config: {greeting: Hi}", c.limits, 1)
		if _, err := edge.ParseConfig([]byte(yaml), t.TempDir()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.limits, err, c.want)
		}
	}
}

// TestRoutePluginLimits: a route's deadline and memory limit for a plugin
// are that plugin's on that route only. Two routes run one module file, one
// with a memory limit too small for what the request makes the plugin keep,
// the other with a short deadline.
func TestRoutePluginLimits(t *testing.T) {
	file := misbehave(t)
	yaml := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: roomy, path: /roomy/, origin: app, chain: [{file: %[3]q}]}
  - {name: tight, path: /tight/, origin: app, chain: [{file: %[3]q, memory_bytes: 8388608}]}
  - {name: quick, path: /quick/, origin: app, chain: [{file: %[3]q, deadline: 20ms}]}
`, startOrigin(t, "o"), origintest.Key.Text(), file)
	logs := &testutil.SyncBuffer{}
	tn := startNodeWith(t, yaml, edge.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)

	// Keeping 8 MiB more fits the default 64 MiB, not an 8 MiB limit.
	if st, _, _ := tn.do(t, "GET", "x", "/roomy/", nil, "X-Misbehave", "request:bloat"); st != 204 {
		t.Fatalf("roomy route: %d, want 204", st)
	}
	if st, _, _ := tn.do(t, "GET", "x", "/tight/", nil, "X-Misbehave", "request:bloat"); st != 503 {
		t.Fatalf("tight route: %d, want the fail-closed 503", st)
	}
	if !strings.Contains(logs.String(), "plugin failed\" plugin=misbehave") || !strings.Contains(logs.String(), "route=tight phase=request kind=memory") {
		t.Fatalf("no memory failure logged for the tight route:\n%s", logs)
	}
	if st, _, _ := tn.do(t, "GET", "x", "/quick/", nil, "X-Misbehave", "request:loop"); st != 503 {
		t.Fatalf("quick route: %d, want the fail-closed 503", st)
	}
	if !strings.Contains(logs.String(), "stopped at its 20ms deadline") {
		t.Fatalf("the quick route's loop was not stopped at its own deadline:\n%s", logs)
	}
}
