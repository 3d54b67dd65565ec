package edge_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestConfigMistakeBeforeFiles: a config is validated before any file it
// names is read, so a config with a mistake in it is refused for the
// mistake, not for a key file that is not there (yet), and defaults are in
// place by the time validation reports on a route.
func TestConfigMistakeBeforeFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nowhere.key")
	cfg := `
origins:
  app: {addr: 127.0.0.1:1, key: "@` + missing + `"}
routes:
  - {origin: app, chain: [{file: a.wasm, failure: sideways}]}
`
	_, err := edge.ParseConfig([]byte(cfg), dir)
	if err == nil || !strings.Contains(err.Error(), `route "/": plugin a: failure "sideways"`) {
		t.Fatalf("ParseConfig: %v, want the route's failure mode refused, named by its default name", err)
	}
	if _, statErr := os.Stat(missing); !os.IsNotExist(statErr) {
		t.Fatalf("the key file exists: %v", statErr)
	}
	fixed := strings.Replace(cfg, "failure: sideways", "failure: open", 1)
	if _, err := edge.ParseConfig([]byte(fixed), dir); err == nil || !strings.Contains(err.Error(), `origin "app": key:`) {
		t.Fatalf("ParseConfig of the corrected config: %v, want the missing key file", err)
	}
}

// oneOrigin is a config's origins, for the configs these tests refuse.
const oneOrigin = "origins:\n  app: {addr: \"127.0.0.1:1\", key: k}\n"

// wantRefused parses cfg, which must be refused with an error saying want.
func wantRefused(t *testing.T, cfg, want string) {
	t.Helper()
	if _, err := edge.ParseConfig([]byte(cfg), t.TempDir()); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ParseConfig of\n%s: %v, want an error saying %q", cfg, err, want)
	}
}

// TestConfigOriginAddr: an origin address that can never be dialled is
// refused, naming the origin: a reload took it, and the route's every
// request failed until the breaker opened.
func TestConfigOriginAddr(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "127.0.0.1:99999", ":9000", "127.0.0.1:0", "app.internal:http"} {
		wantRefused(t, "origins:\n  app: {addr: \""+addr+"\", key: k}\nroutes:\n  - {origin: app}\n", `origin "app": addr "`+addr+`": want HOST:PORT`)
	}
}

// TestConfigOriginMaxConns: a negative max_conns is refused, naming the
// origin, rather than taken for the default.
func TestConfigOriginMaxConns(t *testing.T) {
	wantRefused(t, "origins:\n  app: {addr: \"127.0.0.1:1\", key: k, max_conns: -1}\nroutes:\n  - {origin: app}\n",
		`origin "app": max_conns is negative`)
}

// TestConfigRouteMistakes: a host with a port (never matched: routing
// drops the request's port) and two routes of one name (their metrics
// mixed, a route/plugin release hit both, tier asks found neither) are
// refused.
func TestConfigRouteMistakes(t *testing.T) {
	for routes, want := range map[string]string{
		"  - {host: \"Example.com:8080\", origin: app}\n":                                    `host "example.com:8080": want a host name alone`,
		"  - {host: example.com., origin: app}\n":                                            `host "example.com.": want a host name alone`,
		"  - {name: api, path: /a/, origin: app}\n  - {name: api, path: /b/, origin: app}\n": `route "api": name given twice`,
	} {
		wantRefused(t, oneOrigin+"routes:\n"+routes, want)
	}
}

// TestConfigLimitsGiven: a negative limit, which a default replaced in
// silence, and a header bound no request fits are refused.
func TestConfigLimitsGiven(t *testing.T) {
	for limits, want := range map[string]string{
		"max_body_bytes: -1":                      "limits: max_body_bytes is negative",
		"max_conns: -5":                           "limits: max_conns is negative",
		"websocket: {max_tunnels: -1}":            "limits: websocket.max_tunnels is negative",
		"websocket: {max_tunnels_per_client: -1}": "limits: websocket.max_tunnels_per_client is negative",
		"max_header_bytes: 10":                    "limits: max_header_bytes 10: want at least 1024",
	} {
		wantRefused(t, "limits: {"+limits+"}\n"+oneOrigin+"routes:\n  - {origin: app}\n", want)
	}
}

// TestReloadSaysWhatWaitsForRestart: a reload that changes what only a
// restart applies (a listener, the limits) says which in the log; a
// changed listen address was ignored in silence.
func TestReloadSaysWhatWaitsForRestart(t *testing.T) {
	base := "listen: 127.0.0.1:1\noverload: {off: true}\norigins:\n  app: {addr: \"127.0.0.1:1\", key: \"" + origintest.Key.Text() + "\"}\nroutes:\n  - {origin: app}\n"
	var logs testutil.SyncBuffer
	n := startNodeWith(t, base, edge.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	changed := strings.Replace(base, "listen: 127.0.0.1:1\n", "listen: 127.0.0.1:2\nlimits: {max_conns: 10}\n", 1)
	cfg, err := edge.ParseConfig([]byte(changed), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `take effect at a restart`) || !strings.Contains(logs.String(), `fields="listen, limits"`) {
		t.Fatalf("the log does not say what waits for a restart:\n%s", logs.String())
	}
}
