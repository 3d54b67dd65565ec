package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// hangGuard bounds each wait for an event (a process up or stopped, a
// report seen): long enough for a machine busy with other tests under
// -race, so that reaching it means a hang.
const hangGuard = 2 * time.Minute

// TestMain lets the test binary stand in for wedgectl when `up` starts
// edge processes: it runs them by executing itself.
func TestMain(m *testing.M) {
	if os.Getenv("WEDGECTL_SUBPROCESS") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
		err := run(ctx, os.Args[1:], os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "wedgectl:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestUpStopsOnSIGTERM: `up` stopped by SIGTERM (kill, systemd, docker)
// removes its directory, keys and credentials in it, as on Ctrl-C; it
// stayed behind.
func TestUpStopsOnSIGTERM(t *testing.T) {
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "up", "--chain", "", "--listen", "127.0.0.1:0", "--nats", "127.0.0.1:0", "--status", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), subprocessEnv, "TMPDIR="+tmp)
	out := new(testutil.SyncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	testutil.Eventually(t, hangGuard, "up running", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("up ended: %v\n%s", err, out)
		default:
		}
		return strings.Contains(out.String(), "control plane:")
	})
	if entries, _ := os.ReadDir(tmp); len(entries) == 0 {
		t.Fatalf("up made no directory in TMPDIR %s", tmp)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("up after SIGTERM: %v\n%s", err, out)
		}
	case <-time.After(hangGuard):
		cmd.Process.Kill()
		t.Fatalf("up did not stop on SIGTERM\n%s", out)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("up left %s behind in TMPDIR", entries[0].Name())
	}
}

// TestUpRegions runs `wedgectl up --regions eu-west:3,us-east` and checks
// the local fleet: one edge process per POP serving on consecutive ports,
// three in eu-west and one in us-east, each reporting to the embedded
// control plane under its region, each eu-west POP seeing the other two
// (the membership its status reports), and the status page showing all
// four. Ctrl-C (the context) stops the processes and the control plane.
func TestUpRegions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four edge processes")
	}
	u := startUp(t, "--regions", "eu-west:3,us-east", "--chain", "cache",
		"--listen", "127.0.0.1:0", "--nats", "127.0.0.1:0", "--status", "127.0.0.1:0")
	m := u.await(t, "up printing its fleet", regexp.MustCompile(`edges: (.*)\ncontrol plane: (\S+)\s+status page: (\S+)\n.*WEDGE_CREDS=(\S+) WEDGE_CA=(\S+)`))
	// Each edge's log is where up said it is.
	lf := u.await(t, "up naming an edge's log", regexp.MustCompile(`starting edge us-east-1 \(its log: (\S+)\)`))
	if b, err := os.ReadFile(lf[1]); err != nil || len(b) == 0 {
		t.Errorf("us-east-1's log %s: %v, %d bytes", lf[1], err, len(b))
	}
	// Its config, beside the log, carries the admin token up names (in
	// the lines m matched).
	tf := regexp.MustCompile(`edges' admin token \(Wedge-Pin-Token, with a Wedge-Pin\): in (\S+)`).FindStringSubmatch(u.out.String())
	if tf == nil {
		t.Fatalf("up names no admin token file:\n%s", u.out)
	}
	conf := strings.TrimSuffix(lf[1], ".log") + ".yaml"
	cfg, err := edge.ParseConfig([]byte(readFile(t, conf)), filepath.Dir(conf))
	if err != nil {
		t.Fatal(err)
	}
	if token := strings.TrimSpace(readFile(t, tf[1])); token == "" || cfg.Admin.Token != token {
		t.Errorf("us-east-1's admin token %q, want %q of %s", cfg.Admin.Token, token, tf[1])
	}
	edges := regexp.MustCompile(`http://(\S+) \(([a-z0-9-]+)\)`).FindAllStringSubmatch(m[1], -1)
	var pops []string
	for _, e := range edges {
		pops = append(pops, e[2])
	}
	if strings.Join(pops, " ") != "eu-west-1 eu-west-2 eu-west-3 us-east-1" {
		t.Fatalf("edges line %q: want eu-west-1..3 and us-east-1", m[1])
	}
	for _, e := range edges {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + e[1] + "/api/hello")
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("edge %s (%s): %v %d %s", e[2], e[1], err, resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}

	// With up's credentials; an edge's own may write its status only.
	nc, err := controlplane.Dial(m[2], "test", nil, controlplane.Security{Creds: m[4], CA: m[5]}.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := t.Context()
	s, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(hangGuard); ; {
		sum, err := rollout.Overview(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range sum.Regions {
			got = append(got, r.Region+":"+strings.Join(r.POPs, "+"))
		}
		if strings.Join(got, " ") == "eu-west:eu-west-1+eu-west-2+eu-west-3 us-east:us-east-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control plane sees %v, want the two regions' POPs", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	page, err := http.Get(m[3])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	// The control plane's metrics, beside the page as with control --http.
	mresp, err := http.Get(m[3] + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if mresp.StatusCode != 200 || !strings.Contains(string(metrics), "wedge_control_pops") {
		t.Fatalf("status page /metrics: %d\n%.300s", mresp.StatusCode, metrics)
	}
	// Each POP sees the POPs of its region, by the status reports they
	// write, and says so in its own, with the address of its cache tier's
	// listener (not the HTTP one).
	want := map[string]string{
		"eu-west-1": "eu-west-1 eu-west-2 eu-west-3", "eu-west-2": "eu-west-1 eu-west-2 eu-west-3",
		"eu-west-3": "eu-west-1 eu-west-2 eu-west-3", "us-east-1": "us-east-1",
	}
	for _, e := range edges {
		testutil.Eventually(t, hangGuard, e[2]+" sees its region", func() bool {
			entry, err := s.Status.Get(ctx, manifest.StatusKey(e[2][:strings.LastIndexByte(e[2], '-')], e[2]))
			var st manifest.Status
			return err == nil && json.Unmarshal(entry.Value(), &st) == nil &&
				strings.Join(st.Members, " ") == want[e[2]] && st.Peer != "" && st.Peer != e[1]
		})
	}
	// The eu-west POPs share a cache tier: of three asking for a new URL
	// in turn, those that do not own it get it from the one that does.
	// (The same Host for all: the POPs' own addresses would make three
	// URLs, three cache keys.)
	var statuses []string
	for _, e := range edges[:3] {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + e[1] + "/api/hello?tier=1")
		req.UseHostHeader = true
		req.Header.SetHost("app.test")
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("edge %s (%s): %v %d %s", e[2], e[1], err, resp.StatusCode(), resp.Body())
		}
		var lines []string
		for _, v := range resp.Header.PeekAll("Cache-Status") {
			lines = append(lines, string(v))
		}
		statuses = append(statuses, strings.Join(lines, ", "))
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	t.Logf("Cache-Status at eu-west-1..3 in turn: %q", statuses)
	if !slices.ContainsFunc(statuses[1:], func(s string) bool { return strings.Contains(s, "-tier; hit") }) {
		t.Fatalf("no eu-west POP was answered by the tier: Cache-Status %q", statuses)
	}
	for _, want := range []string{"eu-west-1", "eu-west-2", "eu-west-3", "us-east-1"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("status page does not show %s:\n%s", want, body)
		}
	}
	nc.Close()
	u.stop(t)
	// The edge processes are gone with up.
	for _, e := range edges {
		if c, err := net.DialTimeout("tcp", e[1], time.Second); err == nil {
			c.Close()
			t.Fatalf("edge %s still accepts after up stopped", e[2])
		}
	}
}

// TestParseRegions: NAME:N names N POPs <region>-1..N, in order (up gives
// them consecutive ports in that order), NAME alone one; bad lists say why.
func TestParseRegions(t *testing.T) {
	got, err := parseRegions("eu-west:3, us-east,ap-south:1")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.region+"/"+p.name)
	}
	if want := "eu-west/eu-west-1 eu-west/eu-west-2 eu-west/eu-west-3 us-east/us-east-1 ap-south/ap-south-1"; strings.Join(s, " ") != want {
		t.Fatalf("got %v, want %s", s, want)
	}
	for in, want := range map[string]string{
		"eu-west:0":         "N from 1 to 9",
		"eu-west:10":        "N from 1 to 9",
		"eu-west:x":         "N from 1 to 9",
		"eu-west:":          "N from 1 to 9",
		"Eu-West":           `region "Eu-West"`,
		"eu-west:2,eu-west": "eu-west given twice",
		// A valid region whose POP names ("-1") are too long.
		strings.Repeat("r", 63): `pop "` + strings.Repeat("r", 63) + `-1"`,
	} {
		if _, err := parseRegions(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseRegions(%q): %v, want an error with %q", in, err, want)
		}
	}
}

// TestRegionPorts: the POPs of --regions take consecutive ports from
// --listen's, in parseRegions' order; port 0 gives each a free port, and
// a list that runs past port 65535 is refused.
func TestRegionPorts(t *testing.T) {
	pops, err := parseRegions("eu-west:3,us-east")
	if err != nil {
		t.Fatal(err)
	}
	ports := func(listen string) (string, error) {
		var s []string
		for i, p := range pops {
			l, err := nextPort(listen, i)
			if err != nil {
				return "", err
			}
			s = append(s, p.name+"="+l)
		}
		return strings.Join(s, " "), nil
	}
	for listen, want := range map[string]string{
		"127.0.0.1:8080": "eu-west-1=127.0.0.1:8080 eu-west-2=127.0.0.1:8081 eu-west-3=127.0.0.1:8082 us-east-1=127.0.0.1:8083",
		"[::1]:9000":     "eu-west-1=[::1]:9000 eu-west-2=[::1]:9001 eu-west-3=[::1]:9002 us-east-1=[::1]:9003",
		"127.0.0.1:0":    "eu-west-1=127.0.0.1:0 eu-west-2=127.0.0.1:0 eu-west-3=127.0.0.1:0 us-east-1=127.0.0.1:0",
	} {
		if got, err := ports(listen); got != want || err != nil {
			t.Errorf("--listen %s: %s %v, want %s", listen, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:65533", "127.0.0.1", "127.0.0.1:http"} {
		if got, err := ports(bad); err == nil {
			t.Errorf("--listen %s: %s, want an error", bad, got)
		}
	}
}

// TestUp runs `wedgectl up` on a free port and walks the README's tour of
// it: 401 without a token, 200 with the printed one, a cache hit with Age
// and Cache-Status on the repeat, 429 with RateLimit fields past the
// per-identity limit; then Ctrl-C (the context) stops it cleanly.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three plugins")
	}
	u := startUp(t, "--listen", "127.0.0.1:0", "--nats", "127.0.0.1:0", "--status", "127.0.0.1:0")
	m := u.await(t, "up printing its address and token", regexp.MustCompile(`edge http://(\S+) .*\n(?s:.*)WEDGE_TOKEN=(\S+)`))
	addr, token := m[1], m[2]

	// Without --plugin there is nothing to watch: no inotify instance, of
	// which a user has few (fs.inotify.max_user_instances). Linux only.
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); l == "anon_inode:inotify" {
				t.Errorf("up without --plugin holds an inotify instance (fd %s)", fd.Name())
			}
		}
	}

	get := func(auth string) (int, *fasthttp.ResponseHeader, string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/api/hello")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		h := new(fasthttp.ResponseHeader)
		resp.Header.CopyTo(h)
		return resp.StatusCode(), h, string(resp.Body())
	}
	st, h, _ := get("")
	if st != 401 || !strings.HasPrefix(string(h.Peek("WWW-Authenticate")), "Bearer") {
		t.Fatalf("without a token: %d, WWW-Authenticate %q", st, h.Peek("WWW-Authenticate"))
	}
	st, _, first := get(token)
	// The application gets the identity the auth plugin forwarded, and
	// the request ID the edge's logs know the request by.
	if st != 200 || !strings.Contains(first, `"user":"demo-user"`) || !regexp.MustCompile(`"request_id":"[^"]+"`).MatchString(first) {
		t.Fatalf("with the token: %d %s", st, first)
	}
	st, h, again := get(token)
	if st != 200 || again != first || !strings.Contains(strings.ToLower(string(h.Peek("Cache-Status"))), "hit") {
		t.Fatalf("repeat: %d, Cache-Status %q, same body %t", st, h.Peek("Cache-Status"), again == first)
	}
	if _, err := strconv.Atoi(string(h.Peek("Age"))); err != nil {
		t.Errorf("a hit without an Age: %q", h.Peek("Age"))
	}
	// 30 requests at once, from one identity: more than 10 within a
	// second however slowly the machine answers each (one after another,
	// a request of 100 ms would never exceed the limit).
	var wg sync.WaitGroup
	limited := make(chan *fasthttp.ResponseHeader, 30)
	for range 30 {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + addr + "/api/hello")
			req.Header.Set("Authorization", "Bearer "+token)
			if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err == nil && resp.StatusCode() == 429 {
				h := new(fasthttp.ResponseHeader)
				resp.Header.CopyTo(h)
				limited <- h
			}
		})
	}
	wg.Wait()
	close(limited)
	h, ok := <-limited
	if !ok {
		t.Fatal("30 requests at once never met the 10/s limit")
	}
	if h.Peek("Retry-After") == nil || h.Peek("RateLimit") == nil || h.Peek("RateLimit-Policy") == nil {
		t.Errorf("429 without Retry-After / RateLimit / RateLimit-Policy: %s", h.String())
	}
}

// TestUpPin: `wedgectl up` gives its edges an admin token, in a file of
// its own it names, so the README's canary smoke test runs locally: with a
// canary of cache@2 rolled out as the README has it, a Wedge-Pin of the
// side the client is not on, sent with that token, runs that side, and
// with another token (or none) is ignored. The edges had no token, and so
// ignored every pin.
func TestUpPin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin twice and rolls it out")
	}
	u := startUp(t, "--chain", "cache", "--listen", "127.0.0.1:0", "--nats", "127.0.0.1:0", "--status", "")
	m := u.await(t, "up printing its edge, control plane and keys", regexp.MustCompile(
		`edge http://(\S+) (?s:.*)control plane: (\S+)(?s:.*)WEDGE_CREDS=(\S+) WEDGE_CA=(\S+)\n`+
			`plugin signing key: (\S+), its public key \(the POPs' trust store\): WEDGE_TRUST=(\S+)\n(?s:.*)WEDGE_TOKEN=`))
	addr, key := m[1], m[5]
	tm := regexp.MustCompile(`edges' admin token \(Wedge-Pin-Token, with a Wedge-Pin\): in (\S+)`).FindStringSubmatch(u.out.String())
	if tm == nil {
		t.Fatalf("up names no admin token file:\n%s", u.out)
	}
	if fi, err := os.Stat(tm[1]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file %s: %v, want mode 0600", tm[1], fi)
	}
	token := strings.TrimSpace(readFile(t, tm[1]))
	if len(token) < 32 {
		t.Fatalf("admin token %q: want 32 random bytes", token)
	}

	// The README's rollout, with the environment up prints.
	t.Setenv("WEDGE_NATS", m[2])
	t.Setenv("WEDGE_CREDS", m[3])
	t.Setenv("WEDGE_CA", m[4])
	t.Setenv("WEDGE_TRUST", m[6])
	repo, err := findCheckout("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	wasm := filepath.Join(t.TempDir(), "cache.wasm")
	for _, args := range [][]string{
		{"plugin", "build", filepath.Join(repo, "plugins", "cache"), "-o", wasm},
		{"plugin", "push", wasm, "--name", "cache", "--version", "2", "--key", key},
		// A bake of an hour: the canary stays at 10% for the test.
		{"rollout", "start", "cache@2", "--waves", "local:10%,local", "--gate", "error_rate<50%", "--bake", "1h"},
	} {
		var out bytes.Buffer
		if err := run(ctx, args, &out); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	nc, err := controlplane.Dial(m[2], "test", nil, controlplane.Security{Creds: m[3], CA: m[4]}.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	var running manifest.Running
	testutil.Eventually(t, hangGuard, "the edge running the canary", func() bool {
		e, err := s.Status.Get(ctx, manifest.StatusKey("local", "local-1"))
		var st manifest.Status
		if err != nil || json.Unmarshal(e.Value(), &st) != nil {
			return false
		}
		running = st.Running["cache"]
		return running.Canary == "2"
	})

	// served is the cache version that ran for a request with hdr.
	served := func(hdr ...string) string {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/api/hello")
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("GET /api/hello %q: %v %d %s", hdr, err, resp.StatusCode(), resp.Body())
		}
		return string(resp.Header.Peek("Wedge-Served"))
	}
	// The split places this client on one side; the pin asks for the
	// other, so only an honoured pin changes what runs.
	mine, other := served(), "cache@2"
	if mine == other {
		other = "cache@" + running.Version
	}
	if mine != "cache@"+running.Version && mine != "cache@2" {
		t.Fatalf("served by %q, want cache@%s or cache@2", mine, running.Version)
	}
	if got := served(manifest.PinHeader, other, manifest.PinTokenHeader, token); got != other {
		t.Errorf("pinned to %s with up's admin token: served by %q", other, got)
	}
	for _, wrong := range []string{"", "not-" + token} {
		if got := served(manifest.PinHeader, other, manifest.PinTokenHeader, wrong); got != mine {
			t.Errorf("pinned to %s with token %q: served by %q, want the pin ignored (%s)", other, wrong, got, mine)
		}
	}
}

// TestUpNeedsNATSAddress: the local edges join the control plane over
// --nats, as deployed ones do, so an empty address is refused up front;
// before, up started an edge with no fleet agent and said nothing.
func TestUpNeedsNATSAddress(t *testing.T) {
	err := run(context.Background(), []string{"up", "--nats", ""}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-nats needs an address") {
		t.Fatalf("up --nats \"\": %v, want it refused", err)
	}
}

// upRun is `wedgectl up` run by a test on a goroutine, as a person runs
// it; stop is their Ctrl-C, and the test's end stops it too.
type upRun struct {
	out    *testutil.SyncBuffer
	cancel context.CancelFunc
	done   chan error
	ended  bool
}

func startUp(t *testing.T, args ...string) *upRun {
	ctx, cancel := context.WithCancel(context.Background())
	u := &upRun{out: new(testutil.SyncBuffer), cancel: cancel, done: make(chan error, 1)}
	go func() { u.done <- run(ctx, append([]string{"up"}, args...), u.out) }()
	t.Cleanup(func() { u.stop(t) })
	return u
}

// stop stops up, once, and checks that it ends cleanly and in time.
func (u *upRun) stop(t *testing.T) {
	if u.ended {
		return
	}
	u.ended = true
	u.cancel()
	select {
	case err := <-u.done:
		if err != nil {
			t.Errorf("up: %v", err)
		}
	case <-time.After(hangGuard):
		t.Errorf("up did not stop within %s of Ctrl-C", hangGuard)
	}
}

// await returns re's match in what up prints, polling until it appears;
// up ending first fails t (or skips it, for want of a Rust toolchain where
// WEDGE_SKIP_RUST is set).
func (u *upRun) await(t *testing.T, what string, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	testutil.Eventually(t, 5*time.Minute, what, func() bool {
		select {
		case err := <-u.done:
			u.ended = true
			if errors.Is(err, wasmbuild.ErrNoRust) && os.Getenv("WEDGE_SKIP_RUST") != "" {
				t.Skipf("WEDGE_SKIP_RUST is set: %v", err)
			}
			t.Fatalf("up ended: %v\n%s", err, u.out)
		default:
		}
		m = re.FindStringSubmatch(u.out.String())
		return m != nil
	})
	return m
}

// TestTryHints: up's suggestions hold for the chain it runs. They were
// the default chain's whatever ran: a 401 with no auth, a 429 with no
// rate limit, a plugin's curl without the token auth in front of it asks.
func TestTryHints(t *testing.T) {
	for _, tc := range []struct {
		name      string
		h         tryHints
		want, not []string
	}{
		{"default", tryHints{chain: []string{"auth", "ratelimit", "cache"}, nats: "tls://127.0.0.1:18801", adminToken: "/tmp/up/admin-token"},
			[]string{"/api/hello  # 401 without a token", "# 200, then a cache HIT with Age", "# 429 past 10/s", "rollout start cache@2",
				"export WEDGE_NATS=tls://127.0.0.1:18801 ",
				`curl -i -H "Wedge-Pin: cache@2" -H "Wedge-Pin-Token: $(cat /tmp/up/admin-token)" -H "Authorization: Bearer $WEDGE_TOKEN" /api/hello`}, nil},
		{"cache alone", tryHints{chain: []string{"cache"}},
			[]string{"curl -i /api/hello  # 200, then a cache HIT", "plugins/cache"}, []string{"401", "429", "Bearer"}},
		{"no plugins", tryHints{},
			[]string{"curl -i /api/hello  # 200\n"}, []string{"401", "429", "Roll a plugin"}},
		{"auth and a plugin of one's own", tryHints{chain: []string{"auth", "greeter"}, dev: "greeter"},
			[]string{`curl -i -H "Authorization: Bearer $WEDGE_TOKEN" /greeter  # what`, "rollout start auth@2"}, []string{"429", "HIT"}},
		{"own application", tryHints{chain: []string{"ratelimit", "cache"}, own: true},
			[]string{"curl -i /  # your application's answer"}, []string{"401", "429", "/api/hello"}},
	} {
		var b strings.Builder
		tc.h.print(&b)
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: no %q in\n%s", tc.name, w, b.String())
			}
		}
		for _, n := range tc.not {
			if strings.Contains(b.String(), n) {
				t.Errorf("%s: %q in\n%s", tc.name, n, b.String())
			}
		}
	}
}

// TestOwnAppConfig: with --upstream the edge config carries what an
// application of one's own with uploads and socket.io needs: request
// bodies stream past 1 MiB up to 1 GiB, and /socket.io/ waits 60 s (a
// long poll outlasts the origin's 10 s) through the chain without the
// cache and the demo's rate limit. Before, polls got 504 every 10 s and
// 429 at once, and a 50 MB upload 413.
func TestOwnAppConfig(t *testing.T) {
	chain := []*chainPlugin{{name: "auth", file: "auth.wasm", config: "{}"}, {name: "ratelimit", file: "rl.wasm", config: "{}"},
		{name: "cache", file: "cache.wasm", config: "{}"}}
	if l, s, a := ownApp(false, chain); l+s+a != "" {
		t.Fatalf("the demo application got %q %q %q", l, s, a)
	}
	limits, sio, app := ownApp(true, chain)
	yaml := "listen: 127.0.0.1:0\norigins:\n  app: {addr: 127.0.0.1:1, key: \"" + (wire.Key{ID: 1, Secret: make([]byte, 32)}).Text() + "\"}\n" +
		limits + "routes:\n" + sio + "  - name: app\n    path: /\n    origin: app\n" + app + chainYAML(chain)
	cfg, err := edge.ParseConfig([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	if cfg.Limits.StreamThreshold != 1<<20 || len(cfg.Routes) != 2 {
		t.Fatalf("limits %+v, %d routes\n%s", cfg.Limits, len(cfg.Routes), yaml)
	}
	s, a := cfg.Routes[0], cfg.Routes[1]
	if s.Path != "/socket.io/" || time.Duration(s.Timeout) != time.Minute || len(s.Chain) != 1 || s.Chain[0].Name != "auth" {
		t.Errorf("socket.io route: %+v", s)
	}
	if a.Path != "/" || a.MaxBodyBytes != 1<<30 || len(a.Chain) != 3 {
		t.Errorf("app route: %+v", a)
	}
}
