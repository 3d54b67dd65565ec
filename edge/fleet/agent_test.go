package fleet_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/internal/leaktest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm/wasmbuild"
	"github.com/talowa/wedge/wasm/wasmtest"
)

const guests = "../../wasm/internal/testguests/fleet/"

// fixture is one POP on a control plane: the stamp plugin at v1 from its
// config file, an origin behind it, and a signing key the POP trusts.
type fixture struct {
	t      *testing.T
	cp     *embedded.Server
	stores *controlplane.Stores
	key    ed25519.PrivateKey
	trust  manifest.TrustStore
	// control is the controller's key: setDesired signs with it, and the
	// POP trusts its public key as its control key.
	control ed25519.PrivateKey
	yaml    string // the node's config
	// cache is the node's compilation cache directory; empty means the
	// one every test shares.
	cache string
	log   *slog.Logger // the agent's; nil discards
	node  *edge.Node
	addr  string
	agent *fleet.Agent
	// stopAgent cancels the agent's Run and waits for it to return; stop
	// does that, then shuts the node down, as edge/pop does.
	stopAgent, stop func()
}

// hangGuard bounds every wait on the POP: long enough for an apply on a
// machine busy with other tests under -race (seconds each), so that
// reaching it means a hang, not a slow machine.
const hangGuard = 2 * time.Minute

func newFixture(t *testing.T, cpOpts embedded.Options) *fixture {
	t.Helper()
	f := &fixture{t: t}
	f.cp, f.stores = controlplanetest.Start(t, cpOpts)
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.key, f.trust = key, manifest.NewTrustStore(pub)
	if _, f.control, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v1 := filepath.Join(dir, "v1.wasm")
	if err := os.WriteFile(v1, wasmtest.Build(t, guests+"v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	org := origintest.Start(t, origintest.OK)
	f.yaml = fmt.Sprintf(`
pop: pop1
region: eu-test
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: all, path: /, origin: app, chain: [{name: stamp, file: %q, version: v1}]}
`, org.Addr, origintest.Key.Text(), v1)
	return f
}

// startPOP starts the node and its agent, restoring from dir first.
func (f *fixture) startPOP(opts fleet.Options) {
	t := f.t
	t.Helper()
	cfg, err := edge.ParseConfig([]byte(f.yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cache := f.cache
	if cache == "" {
		cache = wasmbuild.CompilationCacheDir()
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{CompilationCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	opts.Region, opts.POP, opts.Trust, opts.Report, opts.Logger = "eu-test", "pop1", f.trust, 100*time.Millisecond, f.log
	opts.Control = manifest.NewTrustStore(f.control.Public().(ed25519.PublicKey))
	a, err := fleet.New(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	f.node, f.addr, f.agent = n, ln.Addr().String(), a
	f.stopAgent = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	f.stop = sync.OnceFunc(func() {
		f.stopAgent()
		n.Shutdown(context.Background())
	})
	t.Cleanup(f.stop)
}

// publish stores a module and returns its artifact, signed by key.
func (f *fixture) publish(key ed25519.PrivateKey, version string, bin []byte) manifest.Artifact {
	f.t.Helper()
	a, err := manifest.Sign(key, "stamp", version, bin, "test")
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.stores.Modules.PutBytes(context.Background(), a.Digest, bin); err != nil {
		f.t.Fatal(err)
	}
	return *a
}

// startConnectedPOP starts the POP on a connection of its own to the
// control plane, closed once the POP has stopped.
func (f *fixture) startConnectedPOP() { f.startConnectedPOPWith(fleet.Options{}) }

// startConnectedPOPWith is startConnectedPOP with opts.
func (f *fixture) startConnectedPOPWith(opts fleet.Options) {
	f.t.Helper()
	nc, err := f.cp.Connect("pop1")
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(nc.Close)
	opts.Conn = nc
	f.startPOP(opts)
}

// setDesired writes the region's desired state, signed by the
// controller, and returns its revision.
func (f *fixture) setDesired(rel manifest.Release) uint64 {
	f.t.Helper()
	return f.putSigned(manifest.RegionKey("eu-test"), manifest.Desired{Plugins: map[string]manifest.Release{"stamp": rel}})
}

// putSigned writes d under key signed by the controller's key, issued
// now, and returns its revision.
func (f *fixture) putSigned(key string, d manifest.Desired) uint64 {
	f.t.Helper()
	b, err := manifest.SignDesired(f.control, key, time.Now(), &d)
	if err != nil {
		f.t.Fatal(err)
	}
	rev, err := f.stores.Desired.Put(context.Background(), key, b)
	if err != nil {
		f.t.Fatal(err)
	}
	return rev
}

// status polls the POP's report until ok accepts it.
func (f *fixture) status(what string, ok func(manifest.Status) bool) manifest.Status {
	f.t.Helper()
	var st manifest.Status
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		if e, err := f.stores.Status.Get(context.Background(), manifest.StatusKey("eu-test", "pop1")); err == nil {
			st = manifest.Status{}
			if json.Unmarshal(e.Value(), &st) == nil && ok(st) {
				return st
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("no status with %s; last: %+v", what, st)
	return st
}

// stamp returns which version answered a request, failing on any error.
func (f *fixture) stamp(pin string) string {
	f.t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + f.addr + "/x")
	if pin != "" {
		req.Header.Set(manifest.PinHeader, pin)
		req.Header.Set(manifest.PinTokenHeader, "s3cret")
	}
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		f.t.Fatal(err)
	}
	if resp.StatusCode() != 200 {
		f.t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	return string(resp.Header.Peek("X-Stamp"))
}

// waitStamp polls until requests are answered by version.
func (f *fixture) waitStamp(version string) {
	f.t.Helper()
	deadline := time.Now().Add(hangGuard)
	got := ""
	for time.Now().Before(deadline) {
		if got = f.stamp(""); got == version {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("requests answered by %q, want %q", got, version)
}

// TestCanaryAndHealth applies a canary, pins requests to each side,
// reads the health the POP reports per version, and promotes the canary.
func TestCanaryAndHealth(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	f.startConnectedPOP()
	if got := f.stamp(""); got != "v1" {
		t.Fatalf("before any desired state: %q, want the config file's v1", got)
	}
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rev := f.setDesired(manifest.Release{Canary: &manifest.Canary{Artifact: v2, Share: 50}})
	st := f.status("the canary applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	if r := st.Running["stamp"]; r.Version != "v1" || r.Canary != "v2" || r.Share != 50 || st.Source != "control" {
		t.Fatalf("running %+v from %q, want v1 with canary v2 at 50%% from control", r, st.Source)
	}
	// The pin header chooses a side; without it a client stays on one.
	for range 5 {
		if got := f.stamp("cache@9, stamp@v2"); got != "v2" {
			t.Fatalf("pinned to v2, answered by %q", got)
		}
		if got := f.stamp("stamp@v1"); got != "v1" {
			t.Fatalf("pinned to v1, answered by %q", got)
		}
	}
	side := f.stamp("")
	for range 20 {
		if got := f.stamp("stamp@v7"); got != side {
			t.Fatalf("one client on both sides of the split: %q and %q", side, got)
		}
	}
	st = f.status("health for both versions", func(s manifest.Status) bool {
		var seen int
		for _, h := range s.Health {
			if h.Plugin == "stamp" && h.Requests >= 5 && h.Errors == 0 && len(h.Buckets) == len(manifest.LatencyBounds)+1 {
				seen++
			}
		}
		return seen == 2
	})
	for _, h := range st.Health {
		if want := map[string]string{"v1": manifest.Digest(wasmtest.Build(t, guests+"v1")), "v2": v2.Digest}[h.Version]; h.Digest != want {
			t.Fatalf("health of %s names digest %s, want %s", h.Version, h.Digest, want)
		}
	}

	rev = f.setDesired(manifest.Release{Artifact: v2})
	f.status("v2 promoted", func(s manifest.Status) bool {
		return s.Revision >= rev && s.Applied && s.Running["stamp"] == manifest.Running{Version: "v2", Digest: v2.Digest, Config: manifest.ConfigHash(nil)} // the config file's: none
	})
	f.waitStamp("v2")
	for range 10 {
		if got := f.stamp(""); got != "v2" {
			t.Fatalf("after promotion a request ran %q", got)
		}
	}

	// A POP's own key wins over its region's, plugin by plugin; an empty
	// one (signed: a delete is not) puts the POP back on the region's state.
	v1b := f.publish(f.key, "v1b", wasmtest.Build(t, guests+"v1"))
	rev = f.putSigned(manifest.POPKey("pop1"), manifest.Desired{Plugins: map[string]manifest.Release{"stamp": {Artifact: v1b}}})
	f.status("the POP override", func(s manifest.Status) bool { return s.Revision >= rev && s.Running["stamp"].Version == "v1b" })
	f.waitStamp("v1")
	rev = f.putSigned(manifest.POPKey("pop1"), manifest.Desired{})
	f.status("the override removed", func(s manifest.Status) bool {
		return s.Revision >= rev && s.Applied && s.Running["stamp"].Version == "v2"
	})
	f.waitStamp("v2")
}

// TestRefusals writes desired states naming modules an edge must not run,
// and checks each is refused with its reason while the POP keeps serving
// what it ran.
func TestRefusals(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	f.startConnectedPOP()
	ctx := context.Background()
	v2bin := wasmtest.Build(t, guests+"v2")
	good := f.publish(f.key, "v2", v2bin)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)

	unsigned := good
	unsigned.Sig = nil
	relabelled := good
	relabelled.Version = "v3"
	badSig := good
	badSig.Sig = bytes.Clone(good.Sig)
	badSig.Sig[10] ^= 1
	// Tampered: the store holds other bytes under the signed digest.
	trapBin := wasmtest.Build(t, guests+"trap")
	tampered, err := manifest.Sign(f.key, "stamp", "t1", trapBin, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.stores.Modules.PutBytes(ctx, tampered.Digest, wasmtest.Build(t, guests+"fail500")); err != nil {
		t.Fatal(err)
	}
	revoked := f.publish(f.key, "r1", wasmtest.Build(t, guests+"fail500"))
	f.revoke(revoked.Digest, "answers 500s")
	missing, err := manifest.Sign(f.key, "stamp", "m1", []byte("\x00asm\x01\x00\x00\x00never stored"), "test")
	if err != nil {
		t.Fatal(err)
	}
	// Signed, but for another plugin: it must not fill stamp's slot.
	other, err := manifest.Sign(f.key, "other", "v2", v2bin, "test")
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		art  manifest.Artifact
		want string
	}{
		{"unsigned", unsigned, "not signed"},
		{"relabelled", relabelled, "signature does not match"},
		{"bad signature", badSig, "signature does not match"},
		{"wrong key", f.publish(stranger, "v2", v2bin), "not in the trust store"},
		{"tampered", *tampered, "do not match the digest"},
		{"revoked", revoked, "revoked"},
		{"missing", *missing, "not found"},
		{"another plugin's", *other, "in the slot of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rev := f.setDesired(manifest.Release{Artifact: c.art})
			// A module refused (a NACK of the revision), or the record.
			refused := func(s manifest.Status) bool { return len(s.Refused) > 0 && s.Refused[0].Revision >= rev }
			st := f.status("a refusal", func(s manifest.Status) bool { return s.Revision >= rev || refused(s) })
			if msg := st.Error + fmt.Sprint(st.Refused); (st.Applied && !refused(st)) || !strings.Contains(msg, c.want) {
				t.Fatalf("applied=%v error %q refused %+v, want a refusal saying %q", st.Applied, st.Error, st.Refused, c.want)
			}
			if r := st.Running["stamp"]; r.Version != "v1" {
				t.Fatalf("after a refusal the POP runs %+v, want v1", r)
			}
			if got := f.stamp(""); got != "v1" {
				t.Fatalf("after a refusal a request ran %q", got)
			}
		})
	}
	// Bytes that are not a desired state at all.
	rev, err := f.stores.Desired.Put(ctx, manifest.RegionKey("eu-test"), []byte(`{"plugins":{"stamp":{"canary":{"share":"all"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if st := f.status("a refusal", func(s manifest.Status) bool { return len(s.Refused) > 0 && s.Refused[0].Revision >= rev }); st.Refused[0].Reason != "invalid" ||
		!strings.Contains(st.Refused[0].Error, "desired state") || f.stamp("") != "v1" {
		t.Fatalf("malformed desired state: refused %+v", st.Refused)
	}

	// And a good one still applies after all that.
	rev = f.setDesired(manifest.Release{Artifact: good})
	f.status("v2 applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	f.waitStamp("v2")
	if nack, ok := f.applies("nack"), f.applies("ok"); nack != 9 || ok != 1 {
		t.Fatalf("wedge_fleet_applies_total: nack %v ok %v, want 9 and 1", nack, ok)
	}
}

// applies reads wedge_fleet_applies_total{result} off the node's registry.
func (f *fixture) applies(result string) float64 {
	mfs, err := f.node.Registry().Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wedge_fleet_applies_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestCutOffAndRestart cuts the POP's link to the control plane: it keeps
// serving, converges once the link returns, and a POP restarted while cut
// off comes up on its last-known-good state from disk.
func TestCutOffAndRestart(t *testing.T) {
	f := newFixture(t, embedded.Options{Listen: "127.0.0.1:0"})
	link := newLink(t, strings.TrimPrefix(f.cp.URL(), "nats://"))
	state := t.TempDir()
	popOpts := fleet.Options{URL: "nats://" + link.addr, Dir: state}
	f.startPOP(popOpts)
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rev := f.setDesired(manifest.Release{Artifact: v2})
	f.status("v2 applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	f.waitStamp("v2")

	link.cut()
	// Cut off, the POP serves on; the control plane moves on without it.
	v1 := f.publish(f.key, "v1b", wasmtest.Build(t, guests+"v1"))
	rev = f.setDesired(manifest.Release{Artifact: v1})
	for range 20 {
		if got := f.stamp(""); got != "v2" {
			t.Fatalf("cut off, a request ran %q", got)
		}
	}

	// Restarted while cut off: the state on disk, not the config file.
	f.stop()
	f.startPOP(popOpts)
	if got := f.stamp(""); got != "v2" {
		t.Fatalf("restarted while cut off, the POP serves %q, want v2 from disk", got)
	}
	if st := f.agent.Status(); st.Source != "disk" {
		t.Fatalf("restarted POP reports source %q, want disk", st.Source)
	}

	start := time.Now()
	link.restore()
	f.status("convergence after the link returned", func(s manifest.Status) bool {
		return s.Revision >= rev && s.Applied && s.Running["stamp"].Version == "v1b"
	})
	f.waitStamp("v1")
	t.Logf("converged %s after the link returned", time.Since(start).Round(time.Millisecond))
}

// link is a TCP relay that can be cut: the POP's link to the control plane.
// With swallow set it drops the POP's requests to delete the consumers it
// created before, as a cluster leaves unanswered those for consumers that
// lived on a server lost.
type link struct {
	addr    string
	target  string
	mu      sync.Mutex
	down    bool
	conns   []net.Conn
	swallow atomic.Bool
	created sync.Map // consumer names the POP created while swallow was off
}

// relay copies the POP's protocol lines to the server, but for the
// consumer deletions it swallows.
func (l *link) relay(dst io.Writer, src io.Reader) {
	br := bufio.NewReader(src)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		f := strings.Fields(string(line))
		if len(f) >= 3 && (f[0] == "PUB" || f[0] == "HPUB") {
			n, _ := strconv.Atoi(f[len(f)-1])
			payload := make([]byte, n+2)
			if _, err := io.ReadFull(br, payload); err != nil {
				return
			}
			// $JS.API.CONSUMER.CREATE.<stream>.<name>[.<filter>] and
			// $JS.API.CONSUMER.DELETE.<stream>.<name>.
			if p := strings.Split(f[1], "."); len(p) >= 6 && p[0] == "$JS" && p[2] == "CONSUMER" {
				_, old := l.created.Load(p[5])
				switch {
				case p[3] == "CREATE" && !l.swallow.Load():
					l.created.Store(p[5], true)
				case p[3] == "DELETE" && old && l.swallow.Load():
					continue
				}
			}
			line = append(line, payload...)
		}
		if _, err := dst.Write(line); err != nil {
			return
		}
	}
}

func newLink(t *testing.T, target string) *link {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{addr: ln.Addr().String(), target: target}
	t.Cleanup(func() { ln.Close(); l.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			if l.down {
				l.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp4", target)
			if err != nil {
				l.mu.Unlock()
				c.Close()
				continue
			}
			l.conns = append(l.conns, c, u)
			l.mu.Unlock()
			go func() { l.relay(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return l
}

func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *link) restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

// TestReconnectFollowsAtOnce: a POP whose link comes back follows the
// desired state at once, though the consumer deletions its old watches
// ask for go unanswered, as they do when those consumers lived on a
// server lost: each waits out nats.go's 5 s timeout, and waiting for
// three of them in a row kept a POP from following a rollback for 15 s.
// The bound below is that one timeout: a change applied within it was
// not waiting for any of them.
func TestReconnectFollowsAtOnce(t *testing.T) {
	f := newFixture(t, embedded.Options{Listen: "127.0.0.1:0"})
	link := newLink(t, strings.TrimPrefix(f.cp.URL(), "nats://"))
	f.startPOP(fleet.Options{URL: "nats://" + link.addr})
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rev := f.setDesired(manifest.Release{Artifact: v2})
	f.status("v2 applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })

	link.swallow.Store(true)
	link.cut()
	link.restore()
	// Back: the agent reports through its new watches' follow only.
	back := time.Now()
	f.status("a report after the link returned", func(s manifest.Status) bool { return s.Time.After(back) })
	rev = f.setDesired(manifest.Release{Artifact: v2, Config: json.RawMessage(`{"after":"reconnect"}`)})
	f.status("the change applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	if took := time.Since(back); took >= 5*time.Second {
		t.Fatalf("the POP followed %s after its link returned: it waited for its old watches' consumer deletions", took.Round(time.Millisecond))
	}
}

// TestRevokeRunning revokes the version a POP runs: a revocation not signed
// by a trusted key is refused; a signed one makes the POP stop it (the
// slot falls back to the config file's version) and say so, and a delete
// of the record does not bring it back (a writer of the bucket alone did
// both before). The version is also pushed to the artifacts bucket, so the
// agent prefetches it while the revocation lands (a race the race detector
// would see).
func TestRevokeRunning(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	var log testutil.SyncBuffer
	f.log = slog.New(slog.NewTextHandler(&log, nil))
	f.startConnectedPOP()
	ctx := context.Background()
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rev := f.setDesired(manifest.Release{Artifact: v2})
	f.status("v2 applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	f.waitStamp("v2")

	rec, _ := json.Marshal(v2)
	if _, err := f.stores.Artifacts.Put(ctx, manifest.ArtifactKey("stamp", "v2"), rec); err != nil {
		t.Fatal(err)
	}
	// Unsigned, or signed by a key the POP does not trust: ignored.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	for i, rv := range []*manifest.Revocation{{Digest: v2.Digest, Reason: "unsigned"}, mustSignRevocation(t, stranger, v2.Digest)} {
		rec, _ := json.Marshal(rv)
		if _, err := f.stores.Revoked.Put(ctx, v2.Digest, rec); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, hangGuard, "the revocation refused", func() bool { return strings.Count(log.String(), "revocation refused") == i+1 })
	}
	if st := f.status("a report after the refusals", func(manifest.Status) bool { return true }); st.Running["stamp"].Version != "v2" {
		t.Fatalf("a revocation without a trusted signature stopped v2: %+v", st.Running["stamp"])
	}

	f.revoke(v2.Digest, "leaks tokens")
	st := f.status("v2 stopped", func(s manifest.Status) bool { return s.Running["stamp"].Version == "v1" })
	if !st.Applied || !strings.Contains(st.Error, "stamp@v2 revoked (leaks tokens)") {
		t.Fatalf("after the revocation: applied=%v error %q, want the stop explained", st.Applied, st.Error)
	}
	f.waitStamp("v1")

	// The same desired state written again is still not run.
	rev = f.setDesired(manifest.Release{Artifact: v2})
	st = f.status("the same state again", func(s manifest.Status) bool { return s.Revision >= rev })
	if st.Running["stamp"].Version != "v1" || !strings.Contains(st.Error, "revoked") {
		t.Fatalf("a revoked version came back: %+v %q", st.Running["stamp"], st.Error)
	}

	// A delete does not withdraw it: v2 stays stopped.
	if err := f.stores.Revoked.Delete(ctx, v2.Digest); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, "the delete seen", func() bool { return strings.Contains(log.String(), "it stays in force") })
	rev = f.setDesired(manifest.Release{Artifact: v2})
	st = f.status("the state after the delete", func(s manifest.Status) bool { return s.Revision >= rev })
	if st.Running["stamp"].Version != "v1" || !strings.Contains(st.Error, "revoked") {
		t.Fatalf("a deleted revocation brought v2 back: %+v %q", st.Running["stamp"], st.Error)
	}
	f.waitStamp("v1")
}

// revoke writes a revocation of digest signed by the fixture's key.
func (f *fixture) revoke(digest, reason string) {
	f.t.Helper()
	rv, err := manifest.SignRevocation(f.key, digest, reason, "test")
	if err != nil {
		f.t.Fatal(err)
	}
	rec, _ := json.Marshal(rv)
	if _, err := f.stores.Revoked.Put(context.Background(), digest, rec); err != nil {
		f.t.Fatal(err)
	}
}

func mustSignRevocation(t *testing.T, key ed25519.PrivateKey, digest string) *manifest.Revocation {
	t.Helper()
	rv, err := manifest.SignRevocation(key, digest, "a stranger's", "test")
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

// TestStopDuringPrefetch stops the agent while it precompiles a pushed
// version, then shuts the node down, as edge/pop does. Run must not return
// before the compile is done: shutting the node down closes its runtime,
// and wazero's engine closed under a compile was a data race (and then a
// crash in the compiler).
func TestStopDuringPrefetch(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	// An empty compilation cache: the prefetch compiles for real (seconds,
	// not the milliseconds of loading compiled code), so the poll below
	// sees it under way rather than hoping to.
	f.cache = t.TempDir()
	f.startConnectedPOP()
	// The first report comes once the watches are set up.
	f.status("a first report", func(manifest.Status) bool { return true })
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rec, _ := json.Marshal(v2)
	if _, err := f.stores.Artifacts.Put(context.Background(), manifest.ArtifactKey("stamp", "v2"), rec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangGuard)
	for len(leaktest.Stacks("edge.(*Node).Precompile")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pushed version was never precompiled")
		}
		time.Sleep(time.Millisecond)
	}
	f.stopAgent()
	if len(leaktest.Stacks("fleet.(*Agent)")) > 0 {
		t.Fatal("the agent's Run returned while its goroutines still run (a prefetch compiling)")
	}
	f.stop()
}

// TestPrefetchLogs: the prefetch's log lines name the version as the
// runtime's do, plugin=NAME@VERSION.
func TestPrefetchLogs(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	var log testutil.SyncBuffer
	f.log = slog.New(slog.NewTextHandler(&log, nil))
	f.startConnectedPOP()
	// The first report comes once the watches are set up.
	f.status("a first report", func(manifest.Status) bool { return true })
	missing := manifest.Artifact{Name: "stamp", Version: "x", Digest: manifest.Digest([]byte("never stored"))}
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	for _, art := range []manifest.Artifact{missing, v2} {
		rec, _ := json.Marshal(art)
		if _, err := f.stores.Artifacts.Put(context.Background(), manifest.ArtifactKey("stamp", art.Version), rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{`msg="pushed version not prefetched" plugin=stamp@x err=`, `msg="pushed version prefetched" plugin=stamp@v2 took=`} {
		testutil.Eventually(t, hangGuard, want, func() bool { return strings.Contains(log.String(), want) })
	}
}

// TestLinkClosedIsNotLost: a link the POP closes as it stops logs no
// "link lost" warning (every `up` ended with one, err=<nil>); one that
// drops does.
func TestLinkClosedIsNotLost(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	var log testutil.SyncBuffer
	f.log = slog.New(slog.NewTextHandler(&log, nil))
	f.startConnectedPOP()
	nc, err := f.cp.Connect("closed")
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	f.agent.LinkLost(nc, nil)
	if strings.Contains(log.String(), "link lost") {
		t.Fatalf("a link closed on purpose logged:\n%s", log.String())
	}
	open, err := f.cp.Connect("open")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	f.agent.LinkLost(open, io.EOF)
	if !strings.Contains(log.String(), `msg="control plane link lost; serving the current state" err=EOF`) {
		t.Fatalf("a link that dropped: log\n%s", log.String())
	}
}

// TestMetricsFromZero: the NACK and refusal series exist at 0 from the
// start, so the first NACK is an increase the alert sees; they appeared at
// 1 with it, and WedgeDesiredStateRefused never fired for a POP's first.
func TestMetricsFromZero(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	f.startConnectedPOP()
	for name, labels := range map[string]map[string]string{
		"wedge_fleet_applies_total":         {"result": "nack"},
		"wedge_fleet_desired_refused_total": {"reason": "unsigned"},
	} {
		found := false
		mfs, err := f.node.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				match := mf.GetName() == name
				for _, l := range m.GetLabel() {
					match = match && labels[l.GetName()] == l.GetValue()
				}
				found = found || match && m.GetCounter().GetValue() == 0
			}
		}
		if !found {
			t.Errorf("%s%v is not exported at 0 before any refusal", name, labels)
		}
	}
}

// TestModuleChecksTheRecordFirst holds the agent to refusing a record no
// bytes could make good before it touches the disk: a prefetch takes any
// record the artifacts bucket holds, and the digest names the local file,
// so an unsigned record with a path for a digest must not reach a read.
// Before, the read came first, and both records below got "not on disk".
func TestModuleChecksTheRecordFirst(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	f.startConnectedPOP()
	ctx := context.Background()
	good := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	traversal := manifest.Artifact{Name: "stamp", Version: "x", Digest: "../../../x"}
	if _, err := f.agent.Module(ctx, &traversal); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("a path for a digest: %v, want the digest refused", err)
	}
	unsigned := good
	unsigned.Sig = nil
	unsigned.Digest = manifest.Digest([]byte("never stored"))
	if _, err := f.agent.Module(ctx, &unsigned); !errors.Is(err, manifest.ErrUnsigned) {
		t.Fatalf("an unsigned record: %v, want ErrUnsigned", err)
	}
}

// TestModuleOnDiskDamaged: a module whose file on disk fails its digest is
// named damaged, not "not on disk", which sent an operator looking for a
// file that was there.
func TestModuleOnDiskDamaged(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	state := t.TempDir()
	f.startConnectedPOPWith(fleet.Options{Dir: state})
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rev := f.setDesired(manifest.Release{Artifact: v2})
	f.status("v2 applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	path := filepath.Join(state, "modules", v2.Digest+".wasm")
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bin[len(bin)/2] ^= 1
	if err := os.WriteFile(path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.agent.Module(context.Background(), &v2); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("a module flipped on disk: %v, want it named damaged", err)
	}
	os.Remove(path)
	if _, err := f.agent.Module(context.Background(), &v2); err == nil || !strings.Contains(err.Error(), "not on disk") {
		t.Fatalf("a module gone from disk: %v, want not on disk", err)
	}
}
