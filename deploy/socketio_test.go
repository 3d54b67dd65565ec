package deploy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// sioDir holds the socket.io application and client the test runs, and
// the package.json (and lock) that pins their npm packages.
const sioDir = "testdata/socketio"

// sioWait bounds every wait for something the node processes print.
const sioWait = 30 * time.Second

// TestSocketIO runs a real socket.io application (two instances) and real
// socket.io clients, npm's socket.io and socket.io-client, through an edge
// node whose /socket.io/ route runs the auth plugin, and an origin service
// proxying to both instances: the handshake needs a token, sessions stick
// to the instance that opened them, long polls outlive the origin's
// timeout (the route's own applies), messages flow both ways in order,
// rooms reach clients on other connections, sessions go on after the
// node reloads its config, and a session whose instance dies reconnects to
// the other. It runs each transport on its own (polling; WebSocket, through
// the node's tunnels) and both as socket.io's clients use them by default:
// polling first, then the upgrade to WebSocket, which must reach the
// instance that holds the session too.
func TestSocketIO(t *testing.T) {
	modules := npmInstall(t)
	for _, transports := range []string{"polling", "websocket", "polling,websocket"} {
		t.Run(transports, func(t *testing.T) {
			t.Parallel()
			testSocketIO(t, modules, transports)
		})
	}
}

func testSocketIO(t *testing.T, modules, transports string) {
	// Tunnels end on a reload that changes their route's chain (close
	// 1001); long polls do not.
	tunnel := strings.Contains(transports, "websocket")

	// The heartbeat (pingInterval) is the longest a long poll waits for
	// news: twice the origin's timeout below, so that every idle poll
	// outlives it.
	app := startNodeProc(t, modules, "app.js", "2000", "20000")
	var ready struct{ Ready map[string]int }
	app.expect(t, "ready", func(line []byte) bool { return json.Unmarshal(line, &ready) == nil && len(ready.Ready) == 2 })
	var ups []string
	for _, name := range []string{"a", "b"} {
		ups = append(ups, fmt.Sprintf("http://127.0.0.1:%d", ready.Ready[name]))
	}
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: ups, HealthInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: proxy, MaxTimeout: time.Minute}, nil)

	secret := []byte("0123456789abcdef0123456789abcdef")
	yaml := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q, timeout: 1s}
routes:
  - path: /socket.io/
    origin: app
    timeout: 1m
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}
`, o.Addr, origintest.Key.Text(), edgetest.ModuleFile(t, "../plugins/auth"), base64.RawURLEncoding.EncodeToString(secret))
	n := edgetest.Start(t, yaml)
	url := "http://" + n.Addr

	// No token: the edge refuses the handshake, and the client cannot
	// connect.
	if st := httpGet(t, url+"/socket.io/?EIO=4&transport=polling"); st != 401 {
		t.Fatalf("handshake without a token: %d, want 401", st)
	}
	anon := startNodeProc(t, modules, "client.js", url, "", transports)
	anon.expect(t, "connect_error", anon.event("connect_error"))
	anon.stop(t)

	alice := startNodeProc(t, modules, "client.js", url, jwstest.UserToken(secret, "alice"), transports)
	bob := startNodeProc(t, modules, "client.js", url, jwstest.UserToken(secret, "bob"), transports)
	for _, c := range []*nodeProc{alice, bob} {
		c.expect(t, "connect", c.event("connect"))
		if transports == "polling,websocket" {
			// The upgrade names the session: on another instance it
			// would get 400.
			c.await(t, "upgrade")
		}
	}
	// The server's heartbeats come through. Over polling each ends a long
	// poll held past the origin's 1 s timeout, which the route's own
	// replaces: with the origin's, the poll would get a 504 and the client
	// would disconnect.
	for range 2 {
		alice.expect(t, "ping", alice.event("ping"))
	}
	t.Logf("alice on %s, bob on %s", alice.lastOf("connect")["instance"], bob.lastOf("connect")["instance"])

	// A thousand messages each way, all on the instance that holds the
	// session.
	for _, c := range []*nodeProc{alice, bob} {
		c.send(t, map[string]any{"cmd": "echo", "n": 1000})
		c.expect(t, "echoed", c.event("echoed"))
		on := c.lastOf("connect")["instance"]
		if got, _ := c.last["instances"].([]any); len(got) != 1 || got[0] != on {
			t.Fatalf("%s, connected to %v, had echoes from %v: a session must stay on one instance", c.name, on, got)
		}
	}
	for _, c := range []*nodeProc{alice, bob} {
		c.noDisconnect(t)
	}

	// A room: what one says the other hears.
	for _, c := range []*nodeProc{alice, bob} {
		c.send(t, map[string]any{"cmd": "join", "room": "lobby"})
		c.expect(t, "joined", c.event("joined"))
	}
	alice.send(t, map[string]any{"cmd": "say", "room": "lobby", "msg": "hi from alice"})
	bob.expect(t, "alice's words", func(l []byte) bool { return strings.Contains(string(l), "hi from alice") })
	bob.send(t, map[string]any{"cmd": "say", "room": "lobby", "msg": "hi from bob"})
	alice.expect(t, "bob's words", func(l []byte) bool { return strings.Contains(string(l), "hi from bob") })

	// The node reloads its config as it was: the sessions go on, tunnels
	// included. Then a reload that changes the route's chain (the auth
	// plugin's deadline): the sessions go on, reconnecting if they must,
	// and messages still flow.
	reload := func(yaml string) {
		t.Helper()
		cfg, err := edge.ParseConfig([]byte(yaml), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Reload(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload(yaml)
	for _, c := range []*nodeProc{alice, bob} {
		c.send(t, map[string]any{"cmd": "echo", "n": 100})
		c.expect(t, "echoed after the reload", c.event("echoed"))
		c.noDisconnect(t)
	}
	reload(strings.Replace(yaml, "- {file:", "- {deadline: 200ms, file:", 1))
	for _, c := range []*nodeProc{alice, bob} {
		if tunnel {
			c.expect(t, "disconnect on the reload", c.event("disconnect"))
			c.expect(t, "connect after the reload", c.event("connect"))
		}
		c.send(t, map[string]any{"cmd": "echo", "n": 100})
		c.expect(t, "echoed after the reload", c.event("echoed"))
		if !tunnel {
			c.noDisconnect(t)
		}
	}

	// Alice's instance dies: she reconnects, to the other one.
	dead := alice.lastOf("connect")["instance"]
	app.send(t, map[string]any{"cmd": "kill", "instance": dead})
	alice.expect(t, "disconnect", alice.event("disconnect"))
	alice.expect(t, "connect", alice.event("connect"))
	if got := alice.last["instance"]; got == dead || got == "" {
		t.Fatalf("alice reconnected to %q; %s is dead", got, dead)
	}
	alice.send(t, map[string]any{"cmd": "echo", "n": 100})
	alice.expect(t, "echoed after failover", alice.event("echoed"))
}

// npmInstall installs the packages of sioDir's package-lock.json, once per
// lock: in the user's cache directory (wedge/npm/HASH, shared between
// runs), and returns its node_modules.
func npmInstall(t *testing.T) string {
	t.Helper()
	_, nodeErr := exec.LookPath("node")
	_, npmErr := exec.LookPath("npm")
	if err := errors.Join(nodeErr, npmErr); err != nil {
		if os.Getenv("WEDGE_SKIP_NODE") != "" {
			t.Skip(err)
		}
		t.Fatalf("%v: install Node.js and npm (.ci/run does), or set WEDGE_SKIP_NODE=1", err)
	}
	files := map[string][]byte{}
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(sioDir, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "wedge", "npm", hex.EncodeToString(h.Sum(nil)[:8]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(dir, "installed")); err == nil {
		return modules
	}
	// Installed in a directory of its own and renamed into place, so that
	// concurrent runs never see half an install.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, "installed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run may have put its install there first.
		if _, statErr := os.Stat(filepath.Join(dir, "installed")); statErr != nil {
			t.Fatal(err)
		}
	}
	return modules
}

// nodeProc is a node script of sioDir that prints JSON lines and takes
// commands on stdin.
type nodeProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte
	stderr *testutil.SyncBuffer
	seen   [][]byte       // every line read so far
	last   map[string]any // the line the latest expect matched
}

func startNodeProc(t *testing.T, modules, script string, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join(sioDir, script)}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	p := &nodeProc{name: script, cmd: cmd, lines: make(chan []byte, 4096), stderr: new(testutil.SyncBuffer)}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- slices.Clone(sc.Bytes())
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// event matches a line {"ev": ev, ...}.
func (p *nodeProc) event(ev string) func([]byte) bool {
	return func(line []byte) bool {
		var m map[string]any
		return json.Unmarshal(line, &m) == nil && m["ev"] == ev
	}
}

// expect reads lines until one matches, within sioWait.
func (p *nodeProc) expect(t *testing.T, what string, match func([]byte) bool) {
	t.Helper()
	timer := time.NewTimer(sioWait)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited waiting for %s: %v\nstdout:\n%s\nstderr:\n%s", p.name, what, p.cmd.Wait(), p.output(), p.stderr)
			}
			p.seen = append(p.seen, line)
			if strings.Contains(string(line), `"ev":"fail"`) {
				t.Fatalf("%s waiting for %s: %s", p.name, what, line)
			}
			if match(line) {
				p.last = nil
				json.Unmarshal(line, &p.last)
				return
			}
		case <-timer.C:
			t.Fatalf("%s: no %s in %v\nstdout:\n%s\nstderr:\n%s", p.name, what, sioWait, p.output(), p.stderr)
		}
	}
}

// await returns when a line of event ev has been read: at once if one was
// already.
func (p *nodeProc) await(t *testing.T, ev string) {
	t.Helper()
	if p.lastOf(ev) == nil {
		p.expect(t, ev, p.event(ev))
	}
}

// lastOf returns the latest line read of event ev.
func (p *nodeProc) lastOf(ev string) map[string]any {
	match := p.event(ev)
	for _, line := range slices.Backward(p.seen) {
		if match(line) {
			var m map[string]any
			json.Unmarshal(line, &m)
			return m
		}
	}
	return nil
}

// noDisconnect fails the test if the client lost its connection so far.
func (p *nodeProc) noDisconnect(t *testing.T) {
	t.Helper()
	if p.lastOf("disconnect") != nil {
		t.Fatalf("%s lost its connection:\n%s", p.name, p.output())
	}
}

func (p *nodeProc) output() string {
	var b strings.Builder
	for _, l := range p.seen {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.String()
}

func (p *nodeProc) send(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

// stop closes stdin, which ends the script, and kills it if it has not
// ended within sioWait.
func (p *nodeProc) stop(t *testing.T) {
	if p.stdin.Close() != nil {
		return // stopped already
	}
	done := make(chan struct{})
	go func() {
		for range p.lines {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(sioWait):
		t.Errorf("%s did not exit when its stdin closed", p.name)
		p.cmd.Process.Kill()
		<-done
	}
	p.cmd.Wait()
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	st, _, err := fasthttp.GetTimeout(nil, url, sioWait)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
