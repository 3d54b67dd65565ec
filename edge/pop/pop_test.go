package pop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/internal/leaktest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestMainReload starts the command on a config file, then rewrites the file
// and asks the admin listener to reload it: the new greeting is served by
// the same process, and a broken file leaves the old config serving.
func TestMainReload(t *testing.T) {
	originAddr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) { resp.Status = 204 })).Addr

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.wasm"), wasmtest.Build(t, "../../plugins/hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "edge.yaml")
	write := func(greeting string) {
		y := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: t0k}
origins:
  app: {addr: %q, key: %q}
routes:
  - {origin: app, chain: [{file: hello.wasm, config: {greeting: %s}}]}
`, originAddr, origintest.Key.Text(), greeting)
		if err := os.WriteFile(cfgFile, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Hi")
	out, m := runMain(t, cfgFile)
	greet := func() string {
		resp, err := http.Get("http://" + m[1] + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	reload := func() int {
		req, _ := http.NewRequest("POST", "http://"+m[2]+"/reload", nil)
		req.Header.Set("Authorization", "Bearer t0k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := greet(); got != "Hi, world!\n" {
		t.Fatalf("before reload: %q", got)
	}
	write("Hello")
	if st := reload(); st != 200 {
		t.Fatalf("reload: %d", st)
	}
	if got := greet(); got != "Hello, world!\n" {
		t.Fatalf("after reload: %q", got)
	}
	if err := os.WriteFile(cfgFile, []byte("routes: [oops"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := reload(); st != 422 {
		t.Fatalf("reload of a broken file: %d, want 422", st)
	}
	if got := greet(); got != "Hello, world!\n" {
		t.Fatalf("after a failed reload: %q", got)
	}
	// Both said where an operator looks, not only in the HTTP answer: a
	// deploy tool may ignore it.
	if !strings.Contains(out.String(), `msg="edge: reloaded"`) || !strings.Contains(out.String(), `msg="edge: reload failed; still serving the previous config"`) {
		t.Errorf("the log lacks the reloads:\n%s", out.String())
	}
	resp, err := http.Get("http://" + m[2] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `wedge_edge_reloads_total{result="error"} 1`) {
		t.Errorf("the failed reload is not counted:\n%s", b)
	}
}

// runMain runs pop.Main on cfgFile until the test ends, and returns its
// output and, once it serves, the serving line's listen and admin
// addresses (m[1], m[2]).
func runMain(t *testing.T, cfgFile string) (out *testutil.SyncBuffer, m []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = new(testutil.SyncBuffer)
	done := make(chan error, 1)
	go func() { done <- pop.Main(ctx, []string{"-config", cfgFile}, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	re := regexp.MustCompile(`edge: serving" listen=(\S+) tls=\S+ admin=(\S+)`)
	testutil.Eventually(t, hangGuard, "the serving line", func() bool {
		m = re.FindStringSubmatch(out.String())
		return m != nil
	})
	return out, m
}

// hangGuard bounds each wait for an event: only a hang reaches it, however
// busy the machine.
const hangGuard = 2 * time.Minute

// TestRunStops starts a POP with New and Run, on a control plane, and stops
// it with a request in flight: the POP serves over a real socket and its
// agent connects; on cancel it stops accepting at once but Run waits for
// the request, which gets its answer; then Run returns nil and leaves no
// goroutine of the node, the agent, the servers or the NATS client behind.
func TestRunStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Shutdown()
	dir := t.TempDir()
	_, trust, err := registry.GenerateKey(dir, "signer")
	if err != nil {
		t.Fatal(err)
	}
	_, control, err := registry.GenerateKey(dir, "controller")
	if err != nil {
		t.Fatal(err)
	}
	// The origin service holds /slow until release is closed.
	entered, release := make(chan struct{}, 1), make(chan struct{})
	org := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		if string(req.Path) == "/slow" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-time.After(hangGuard): // a failed test must not hang
			}
		}
		resp.Status = 200
		resp.Body = []byte("from the origin")
	}))

	cfg, err := edge.ParseConfig([]byte(fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
pop: pop-1
region: eu-west
origins:
  app: {addr: %q, key: %q}
routes:
  - {origin: app, chain: [{name: hello, file: %q}]}
fleet: {nats: %q, trust: [%q], control_keys: [%q]}
`, org.Addr, origintest.Key.Text(), wasmtest.BuildFile(t, "../../plugins/hello"), cp.URL(), trust, control)), dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(testutil.SyncBuffer)
	p, err := pop.New(ctx, cfg, pop.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Report: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		<-done
		if t.Failed() {
			t.Logf("POP log:\n%s", logs.String())
		}
	}()

	addr := p.Addr().String()
	get := func(path string) (int, string, error) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: hangGuard}
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	if st, body, err := get("/hello"); st != 200 || body != "Hello, world!\n" || err != nil {
		t.Fatalf("GET /hello: %d %q %v", st, body, err)
	}
	// The agent runs: its link to the control plane is up.
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + p.AdminAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(m, []byte("\nwedge_fleet_connected 1\n")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never connected")
		}
	}

	slow := make(chan string, 1)
	go func() {
		st, body, err := get("/slow")
		slow <- fmt.Sprintf("%d %s %v", st, body, err)
	}()
	select {
	case <-entered:
	case <-time.After(hangGuard):
		t.Fatal("the held request never reached the origin")
	}
	stop()
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts after the stop")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned with a request in flight: %v", err)
	case got := <-slow:
		t.Fatalf("the request in flight ended before the origin answered: %s", got)
	default:
	}
	close(release)
	if got := <-slow; got != "200 from the origin <nil>" {
		t.Fatalf("the request in flight at the stop got %q", got)
	}
	select {
	case err := <-done:
		done <- err // for the deferred wait
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("Run did not return within %s of the stop", hangGuard)
	}
	// What Run waits for has stopped when it returns, not a moment later.
	if left := leaktest.Stacks("fleet.(*Agent)", "edge.(*Node).Serve", "pop.(*POP)"); len(left) > 0 {
		t.Fatalf("Run returned with %d goroutines of its own running:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
	// The origin service is the test's: stopped first, so what is left is
	// the POP's. Connections and workers end as their servers and clients
	// close, which may take a moment.
	org.Close()
	leaktest.Check(t, hangGuard, "github.com/talowa/wedge/edge", "fasthttp.(*Server)", "fasthttp.(*workerPool)",
		"fasthttp.(*HostClient)", "net/http.(*Server)", "net/http.(*conn)", "nats%2ego")
}

// TestRunWaitsForAdminCalls holds a reload in flight through the admin API
// while the POP stops: Run must wait for it to return (the reload would
// otherwise run against a closed node after Run said everything stopped).
// The reload is let go only once Run is seen waiting for it, so a Run that
// does not wait returns first and fails the test.
func TestRunWaitsForAdminCalls(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	org := origintest.Start(t, origintest.OK)
	cfg, err := edge.ParseConfig([]byte(fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: t0k}
origins:
  app: {addr: %q, key: %q}
routes:
  - {origin: app, chain: []}
`, org.Addr, origintest.Key.Text())), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	entered, letGo := make(chan struct{}), make(chan struct{})
	var reloaded atomic.Bool
	p, err := pop.New(ctx, cfg, pop.Options{Reload: func() (*edge.Config, error) {
		close(entered)
		<-letGo
		reloaded.Store(true)
		return nil, errors.New("held reload")
	}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	go func() {
		req, _ := http.NewRequest("POST", "http://"+p.AdminAddr().String()+"/reload", nil)
		req.Header.Set("Authorization", "Bearer t0k")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-entered:
	case <-time.After(hangGuard):
		t.Fatal("the reload never started")
	}
	stop()
	let := false
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(time.Millisecond) {
		select {
		case err := <-done:
			if !reloaded.Load() {
				t.Fatalf("Run returned (%v) with an admin call still running", err)
			}
			return
		default:
		}
		if !let && len(leaktest.Stacks("pop.(*adminCalls).wait")) > 0 {
			close(letGo)
			let = true
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never returned")
		}
	}
}

// TestMainReopenLog: SIGUSR1 reopens the access log under its path, so
// rotation (rename, then signal) needs no reload, whose drain would close
// every WebSocket tunnel; the renamed file keeps what was written before.
func TestMainReopenLog(t *testing.T) {
	originAddr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) { resp.Status = 204 })).Addr
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	cfgFile := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
access_log: {path: %q}
origins:
  app: {addr: %q, key: %q}
routes:
  - {origin: app}
`, logFile, originAddr, origintest.Key.Text())), 0o644); err != nil {
		t.Fatal(err)
	}
	out, m := runMain(t, cfgFile)
	get := func(path string) {
		resp, err := http.Get("http://" + m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	lines := func(f string) string {
		b, _ := os.ReadFile(f)
		return string(b)
	}
	get("/before")
	testutil.Eventually(t, hangGuard, "the first line", func() bool { return strings.Contains(lines(logFile), `"path":"/before"`) })
	rotated := logFile + ".1"
	if err := os.Rename(logFile, rotated); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, "the reopen", func() bool { return strings.Contains(out.String(), "edge: access log reopened") })
	get("/after")
	testutil.Eventually(t, hangGuard, "the line in the new file", func() bool { return strings.Contains(lines(logFile), `"path":"/after"`) })
	if old := lines(rotated); !strings.Contains(old, `"path":"/before"`) || strings.Contains(old, `"path":"/after"`) {
		t.Fatalf("the rotated file holds %q", old)
	}
}
