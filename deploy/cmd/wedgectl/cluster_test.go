package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/internal/testutil"
)

// TestControlCluster runs the control plane as an operator would on three
// machines: three `wedgectl control --embedded --cluster` processes (here
// goroutines) given the same list of routes, and a region's `wedgectl
// control leaf` linked to them. Every bucket and stream is then kept in
// three copies, and the CLI reaches the control plane by the members' list
// of URLs and through the leaf. The members share one auth directory, as
// copies of it on three machines would be: every link is authenticated
// and encrypted.
func TestControlCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	authDir := t.TempDir()
	if _, err := auth.Init(authDir, nil); err != nil {
		t.Fatal(err)
	}
	sec := controlplane.Security{Creds: auth.CredsFile(authDir, auth.Controller), CA: filepath.Join(authDir, auth.CAFile)}
	addrs := freeAddrs(t, 9)
	client, route, leafIn := addrs[0:3], addrs[3:6], addrs[6:9]
	routes := make([]string, 3)
	hub := make([]string, 3)
	urls := make([]string, 3)
	for i := range 3 {
		routes[i], hub[i], urls[i] = "nats-route://"+route[i], "nats-leaf://"+leafIn[i], "tls://"+client[i]
	}
	runCmd := func(what string, args ...string) *testutil.SyncBuffer {
		out := &testutil.SyncBuffer{}
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- run(cctx, args, out) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("%s: %v\n%s", what, err, out.String())
			}
		})
		return out
	}
	// The lists as a person types them, with spaces after the commas.
	trust := trustFile(t)
	var members []*testutil.SyncBuffer
	for i := range 3 {
		name := fmt.Sprintf("cp-%d", i+1)
		members = append(members, runCmd(name, "control", "--embedded", filepath.Join(t.TempDir(), name), "--name", name,
			"--listen", client[i], "--cluster", strings.Join(routes, ", "), "--cluster-listen", route[i], "--leaf-listen", leafIn[i], "--auth", authDir, "--trust", trust,
			"--http", "127.0.0.1:0"))
	}
	for i, out := range members {
		testutil.Eventually(t, hangGuard, fmt.Sprintf("cp-%d running its controller", i+1), func() bool {
			return strings.Contains(out.String(), "rollout controller running")
		})
	}
	// The leaf's machine gets a leaf bundle, not the auth directory.
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := run(ctx, []string{"control", "leaf-bundle", bundle, "--auth", authDir}, &testutil.SyncBuffer{}); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"control", "leaf", "--hub", hub[0], "--auth", authDir}, &testutil.SyncBuffer{}); err == nil {
		t.Fatal("control leaf ran with the control plane's auth directory")
	}
	// The leaf's port is its own pick: one picked free here was taken by
	// another test's server in the half minute the members took to start.
	leaf := runCmd("leaf", "control", "leaf", "--hub", strings.Join(hub, ", "), "--listen", "127.0.0.1:0", "--name", "leaf-eu", "--auth", bundle,
		"--http", "127.0.0.1:0")
	leafURL := regexp.MustCompile(`leaf node on (tls://127\.0\.0\.1:\d+),`)
	var leafAt string
	testutil.Eventually(t, hangGuard, "the leaf node running", func() bool {
		m := leafURL.FindStringSubmatch(leaf.String())
		if m != nil {
			leafAt = m[1]
		}
		return m != nil
	})
	// Each server's /metrics says when the certificate it presents
	// expires: a member's and the leaf's own.
	for _, c := range []struct {
		out       *testutil.SyncBuffer
		page, pem string
	}{{members[0], `status page on (http://\S+)/`, filepath.Join(authDir, "server.pem")}, {leaf, `metrics on (http://\S+)/metrics`, filepath.Join(bundle, "leaf.pem")}} {
		m := regexp.MustCompile(c.page).FindStringSubmatch(c.out.String())
		if m == nil {
			t.Fatalf("no %q in %q", c.page, c.out.String())
		}
		resp, err := http.Get(m[1] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("wedge_control_cert_expiry_timestamp_seconds{file=%q,serial=", c.pem); !strings.Contains(string(b), want) {
			t.Errorf("%s/metrics: no %s\n%s", m[1], want, b)
		}
	}

	list := strings.Join(urls, ",")
	if _, err := nats.Connect(list); err == nil {
		t.Fatal("connected to the cluster with no credential")
	}
	nc, err := nats.Connect(list, sec.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name := range s.JS.StreamNames(ctx).Name() {
		info, err := s.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := info.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s: %d replicas, want 3", name, r)
		}
		n++
	}
	if n < 7 {
		t.Errorf("%d streams, want every bucket's and the audit and purge streams", n)
	}

	// The CLI, by the list of URLs and through the leaf.
	for _, url := range []string{list, leafAt} {
		testutil.Eventually(t, hangGuard, "plugin list --nats "+url, func() bool {
			// Each try bounded: a request the leaf has no route for yet
			// may go unanswered.
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return run(tctx, []string{"plugin", "list", "--nats", url, "--creds", sec.Creds, "--ca", sec.CA}, &testutil.SyncBuffer{}) == nil
		})
	}
}

// TestUpHA runs `wedgectl up --ha`: its control plane is three servers,
// whose list of URLs it prints and hands the edge, with every stream in
// three copies, and the edge serves through the whole chain.
func TestUpHA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three plugins")
	}
	u := startUp(t, "--ha", "--listen", "127.0.0.1:0", "--nats", "127.0.0.1:0", "--status", "")
	m := u.await(t, "up printing its address, control plane and token",
		regexp.MustCompile(`edge http://(\S+) .*\n(?s:.*)control plane: (\S+)(?s:.*)WEDGE_CREDS=(\S+) WEDGE_CA=(\S+)(?s:.*)WEDGE_TOKEN=(\S+)`))
	addr, list, token := m[1], m[2], m[5]
	sec := controlplane.Security{Creds: m[3], CA: m[4]}
	if n := len(strings.Split(list, ",")); n != 3 {
		t.Fatalf("up --ha printed the control plane %q, want three URLs", list)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	nc, err := nats.Connect(list, sec.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Audit.Info(ctx); err != nil || info.Config.Replicas != 3 {
		t.Fatalf("the audit stream of up --ha: %v, %+v", err, info)
	}
	// The edge joined the control plane by the list, and reports.
	testutil.Eventually(t, hangGuard, "the edge's status report", func() bool {
		_, err := s.Status.Get(ctx, manifest.StatusKey("local", "local-1"))
		return err == nil
	})
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + "/api/hello")
	req.Header.Set("Authorization", "Bearer "+token)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("through the edge: %v %d", err, resp.StatusCode())
	}
}

// TestClusterListenLoopback: a member listens for routes on loopback
// unless told otherwise.
func TestClusterListenLoopback(t *testing.T) {
	fs := flag.NewFlagSet("control", flag.ContinueOnError)
	m := addMemberFlags(fs)
	if err := fs.Parse([]string{"--cluster", "nats-route://cp-1:6222,nats-route://cp-2:6222,nats-route://cp-3:6222"}); err != nil {
		t.Fatal(err)
	}
	o, err := m.options(t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(o.Cluster.Listen)
	if o.Auth == nil {
		t.Error("a member runs without auth")
	}
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		t.Errorf("routes listen on %q by default, want a loopback address", o.Cluster.Listen)
	}
}

func TestControlClusterFlagsRefused(t *testing.T) {
	ctx := context.Background()
	trust := trustFile(t)
	for _, args := range [][]string{
		{"control", "leaf"},
		{"control", "leaf", "--hub", "nats-leaf://127.0.0.1:7422", "extra"},
		{"control", "leaf", "--hub", "nats-leaf://127.0.0.1:bad", "--auth", t.TempDir()},
		{"control", "leaf", "--hub", "nats-leaf://127.0.0.1:7422", "--auth", t.TempDir()}, // not an auth directory
		{"control", "leaf", "--hub", "nats-leaf://127.0.0.1:7422"},                        // no --auth
		{"control", "--embedded", t.TempDir(), "--listen", "127.0.0.1:0", "--cluster", "nats-route://127.0.0.1:bad,127.0.0.1:2,127.0.0.1:3", "--cluster-listen", "127.0.0.1:0", "--trust", trust},
		{"control", "--embedded", t.TempDir(), "--listen", "127.0.0.1:0", "--cluster", "127.0.0.1:1,127.0.0.1:2", "--cluster-listen", "127.0.0.1:0", "--trust", trust},
		{"up", "--ha", "--nats", "127.0.0.1:65535"},
		{"control", "--cluster", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--trust", trust},
	} {
		if err := run(ctx, args, &testutil.SyncBuffer{}); err == nil {
			t.Errorf("wedgectl %s: no error", strings.Join(args, " "))
		}
	}
}

// TestControlWantsTrust: the controller counts only the revocations a key
// the POPs trust signed, so it does not run without those keys.
func TestControlWantsTrust(t *testing.T) {
	err := run(context.Background(), []string{"control", "--embedded", t.TempDir(), "--listen", "127.0.0.1:0"}, &testutil.SyncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "--trust FILES") {
		t.Errorf("control without --trust: %v", err)
	}
}

// trustFile is the public key file of a new artifact key, for --trust.
func trustFile(t *testing.T) string {
	t.Helper()
	_, pub, err := registry.GenerateKey(t.TempDir(), "up")
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// freeAddrs returns n loopback addresses no one listens on just now.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close() // held until all are picked: n different ports
		out[i] = ln.Addr().String()
	}
	return out
}
