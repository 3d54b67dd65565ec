package pop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestReloadTakesRefusedState: a POP refuses a desired state that sets a
// plugin none of its routes runs; its operator adds such a route to the
// config file and reloads it, and the POP takes the state at once, at the
// revision it refused. It kept refusing it (the agent remembered the
// refusal, for good) until a restart or a write of another state.
func TestReloadTakesRefusedState(t *testing.T) {
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	dir := t.TempDir()
	_, trust, err := registry.GenerateKey(dir, "signer")
	if err != nil {
		t.Fatal(err)
	}
	controlPriv, control, err := registry.GenerateKey(dir, "controller")
	if err != nil {
		t.Fatal(err)
	}
	controlKey, err := registry.LoadPrivateKey(controlPriv)
	if err != nil {
		t.Fatal(err)
	}
	org := origintest.Start(t, origintest.OK)
	hello := wasmtest.BuildFile(t, "../../plugins/hello")
	cfgFile := filepath.Join(dir, "edge.yaml")
	write := func(greetRoute bool) {
		routes := fmt.Sprintf("  - {name: all, origin: app, chain: [{name: hello, file: %q}]}\n", hello)
		if greetRoute {
			routes += fmt.Sprintf("  - {name: greet, path: /greet, origin: app, chain: [{name: greet, file: %q}]}\n", hello)
		}
		y := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: t0k}
pop: pop-1
region: eu-west
origins:
  app: {addr: %q, key: %q}
routes:
%sfleet: {nats: %q, trust: [%q], control_keys: [%q]}
`, org.Addr, origintest.Key.Text(), routes, cp.URL(), trust, control)
		if err := os.WriteFile(cfgFile, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(false)
	cfg, err := edge.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(testutil.SyncBuffer)
	p, err := pop.New(context.Background(), cfg, pop.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Report: 50 * time.Millisecond,
		Reload: func() (*edge.Config, error) { return edge.LoadConfig(cfgFile) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("POP log:\n%s", logs.String())
		}
	}()

	greeting := json.RawMessage(`{"greeting":"Howdy"}`)
	d := manifest.Desired{Plugins: map[string]manifest.Release{"greet": {Config: greeting}}}
	key := manifest.RegionKey("eu-west")
	b, err := manifest.SignDesired(controlKey, key, time.Now(), &d)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := stores.Desired.Put(context.Background(), key, b)
	if err != nil {
		t.Fatal(err)
	}
	var st manifest.Status
	status := func(what string, ok func() bool) {
		t.Helper()
		testutil.Eventually(t, hangGuard, what, func() bool {
			e, err := stores.Status.Get(context.Background(), manifest.StatusKey("eu-west", "pop-1"))
			st = manifest.Status{}
			return err == nil && json.Unmarshal(e.Value(), &st) == nil && ok()
		})
	}
	status("the NACK", func() bool { return st.Revision == rev && !st.Applied })
	if !strings.Contains(st.Error, "no route has that plugin") {
		t.Fatalf("NACK error %q", st.Error)
	}

	write(true)
	req, err := http.NewRequest("POST", "http://"+p.AdminAddr().String()+"/reload", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer t0k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	// The same revision: nothing was written since the NACK.
	status("the ACK of the refused revision", func() bool { return st.Revision == rev && st.Applied })
	if r, ok := st.Running["greet"]; !ok || r.Config != manifest.ConfigHash(greeting) {
		t.Fatalf("running %+v, want greet with the desired config", st.Running)
	}
	resp, err = http.Get("http://" + p.Addr().String() + "/greet")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Hello"); got != "Howdy" {
		t.Fatalf("GET /greet: X-Hello %q, want the desired state's Howdy", got)
	}
}
