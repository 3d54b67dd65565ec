package edge_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestPluginLogs: a plugin's log record leads with plugin=NAME@VERSION, and
// a guest's panic is logged with the phase by name and the panic's text
// and goroutine stack in an attribute of its own, newlines kept, not in
// err.
func TestPluginLogs(t *testing.T) {
	var out testutil.SyncBuffer
	n := startNodeWith(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - name: mis
    origin: app
    chain:
      - {name: misbehave, version: "7", file: %q}
`, startOrigin(t, "o"), origintest.Key.Text(), misbehave(t)), edge.Options{Logger: slog.New(slog.NewJSONHandler(&out, nil))}, nil)

	if status, _, _ := n.do(t, "GET", "mis", "/", nil, "X-Misbehave", "request:log"); status != 204 {
		t.Fatalf("log: %d", status)
	}
	if want := `"msg":"misbehave: deliberate log","plugin":"misbehave@7","k":"v"`; !strings.Contains(out.String(), want) {
		t.Errorf("no %s in the log:\n%s", want, out.String())
	}

	for _, phase := range []string{"request", "response"} {
		_, h, _ := n.do(t, "GET", "mis", "/", nil, "X-Misbehave", phase+":panic")
		rec := failure(t, out.String(), phase)
		if rec == nil {
			t.Fatalf("no plugin failure logged in phase %s:\n%s", phase, out.String())
		}
		// The request's ID too, which the client got (X-Request-Id) and
		// its access-log line and trace carry.
		if rec["plugin"] != "misbehave@7" || rec["kind"] != "trap" && rec["kind"] != "exit" || rec["route"] != "mis" ||
			rec["request_id"] == "" || rec["request_id"] != string(h.Peek("X-Request-Id")) && len(h.Peek("X-Request-Id")) > 0 {
			t.Errorf("%s: record %v", phase, rec)
		}
		if !strings.HasPrefix(rec["stack"], "panic: misbehave: deliberate panic\n") || !strings.Contains(rec["stack"], "\ngoroutine ") {
			t.Errorf("%s: stack %q, want the panic and its goroutine stack on lines of their own", phase, rec["stack"])
		}
		if want := "wasm: plugin misbehave@7: " + phase + ": " + rec["kind"]; !strings.HasPrefix(rec["err"], want) || strings.Contains(rec["err"], "\n") {
			t.Errorf("%s: err %q, want one line starting %q", phase, rec["err"], want)
		}
	}
}

// failure is the first "plugin failed" record of phase in a JSON log.
func failure(t *testing.T, log, phase string) map[string]string {
	t.Helper()
	for line := range strings.Lines(log) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		if rec["msg"] != "plugin failed" || rec["phase"] != phase {
			continue
		}
		m := map[string]string{}
		for k, v := range rec {
			m[k] = fmt.Sprint(v)
		}
		return m
	}
	return nil
}
