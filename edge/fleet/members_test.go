package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// report is how often the members' agents report: the view's time to
// forget a silent POP is 3 of these.
const report = 100 * time.Millisecond

// member is a POP with no plugins on the control plane cp: a node and its
// agent, which stop returns once stopped (reports end with it).
type member struct {
	agent *fleet.Agent
	addr  string
	stop  func()
}

// startMember starts a member; before runs on its agent before it starts.
func startMember(t *testing.T, cp *embedded.Server, region, pop string, before ...func(*fleet.Agent)) *member {
	t.Helper()
	org := origintest.Start(t, origintest.OK)
	cfg, err := edge.ParseConfig(fmt.Appendf(nil, `
pop: %s
region: %s
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: all, path: /, origin: app}
`, pop, region, org.Addr, origintest.Key.Text()), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := cp.Connect(pop)
	if err != nil {
		t.Fatal(err)
	}
	a, err := fleet.New(n, fleet.Options{Conn: nc, Region: region, POP: pop, Trust: testTrust(t), Control: testTrust(t), Report: report})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(a)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.SetPeer(ln.Addr().String())
	go n.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	m := &member{agent: a, addr: ln.Addr().String()}
	m.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		nc.Close()
		n.Shutdown(context.Background())
	})
	t.Cleanup(m.stop)
	return m
}

// testTrust is a trust store of a key nobody holds: members run no
// plugins from the control plane.
func testTrust(t *testing.T) manifest.TrustStore {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return manifest.NewTrustStore(pub)
}

func names(view []fleet.Peer) string {
	var s []string
	for _, p := range view {
		s = append(s, p.POP)
	}
	return strings.Join(s, " ")
}

// TestPeers runs three POPs on one control plane, two in eu-test and one
// in us-test: each sees the POPs of its region (itself included) with the
// addresses they report, reports that view in its status, and tells its
// subscribers (who hear of every region) when a POP joins and leaves. A POP that stops reporting
// leaves the view exactly 3 report intervals after its last report
// reached the others.
func TestPeers(t *testing.T) {
	cp, stores := controlplanetest.Start(t, embedded.Options{})
	a := startMember(t, cp, "eu-test", "pop-a")
	var mu sync.Mutex
	var views []string
	a.agent.OnPeers(func(v []fleet.Peer) {
		mu.Lock()
		views = append(views, names(v))
		mu.Unlock()
	})
	b := startMember(t, cp, "eu-test", "pop-b")
	c := startMember(t, cp, "us-test", "pop-c")

	testutil.Eventually(t, hangGuard, "pop-a and pop-b see each other", func() bool {
		return names(a.agent.Peers()) == "pop-a pop-b" && names(b.agent.Peers()) == "pop-a pop-b"
	})
	if got := names(c.agent.Peers()); got != "pop-c" {
		t.Fatalf("pop-c, alone in us-test, sees %q", got)
	}
	for _, p := range a.agent.Peers() {
		want := map[string]string{"pop-a": a.addr, "pop-b": b.addr}[p.POP]
		if p.Addr != want || p.Region != "eu-test" || p.Self != (p.POP == "pop-a") {
			t.Fatalf("pop-a's view has %+v, want address %s, region eu-test, Self only for itself", p, want)
		}
	}
	testutil.Eventually(t, hangGuard, "pop-a reports its view", func() bool {
		e, err := stores.Status.Get(context.Background(), manifest.StatusKey("eu-test", "pop-a"))
		var st manifest.Status
		return err == nil && json.Unmarshal(e.Value(), &st) == nil &&
			slices.Equal(st.Members, []string{"pop-a", "pop-b"}) && st.Peer == a.addr
	})

	b.stop()
	var last fleet.Peer // pop-b as pop-a saw it last
	testutil.Eventually(t, hangGuard, "pop-b leaves pop-a's view", func() bool {
		for _, p := range a.agent.Peers() {
			if p.POP == "pop-b" {
				last = p
				return false
			}
		}
		return true
	})
	ttl := 3 * report
	if !strings.Contains(names(a.agent.PeersAt(last.Seen.Add(ttl))), "pop-b") {
		t.Fatalf("pop-b left before %s without a report", ttl)
	}
	if strings.Contains(names(a.agent.PeersAt(last.Seen.Add(ttl+time.Nanosecond))), "pop-b") {
		t.Fatalf("pop-b stays past %s without a report", ttl)
	}
	// The subscriber hears of the whole fleet: pop-c of us-test too (a
	// shield region's POPs are asked), which Peers leaves out.
	testutil.Eventually(t, hangGuard, "pop-a's subscriber hears pop-b leave", func() bool {
		mu.Lock()
		defer mu.Unlock()
		v := slices.Compact(slices.Clone(views))
		return len(v) > 1 && v[len(v)-1] == "pop-a pop-c" && slices.Contains(v, "pop-a pop-b pop-c")
	})
}

// TestPeersReports checks what the view makes of reports written into the
// status bucket: one under another POP's key or region's (a POP's
// credential writes only its own region's key, so a report claiming
// another region there is no member of it), from another region or not
// JSON is no member, and a deleted one leaves at once, not only once 3
// report intervals have passed.
func TestPeersReports(t *testing.T) {
	cp, stores := controlplanetest.Start(t, embedded.Options{})
	a := startMember(t, cp, "eu-test", "pop-a")
	ctx := context.Background()
	put := func(key string, v []byte) {
		t.Helper()
		if _, err := stores.Status.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	status := func(st manifest.Status) []byte {
		b, _ := json.Marshal(st)
		return b
	}
	put(manifest.StatusKey("eu-test", "pop-y"), status(manifest.Status{POP: "pop-z", Region: "eu-test"}))
	put(manifest.StatusKey("us-test", "pop-w"), status(manifest.Status{POP: "pop-w", Region: "us-test"}))
	put(manifest.StatusKey("us-test", "pop-u"), status(manifest.Status{POP: "pop-u", Region: "eu-test"}))
	put(manifest.StatusKey("eu-test", "pop-v"), []byte("{not json"))
	put(manifest.StatusKey("eu-test", "pop-x"), status(manifest.Status{POP: "pop-x", Region: "eu-test", Peer: "127.0.0.1:1"}))
	var x fleet.Peer
	testutil.Eventually(t, hangGuard, "pop-x joins", func() bool {
		for _, p := range a.agent.Peers() {
			if p.POP == "pop-x" {
				x = p
				return true
			}
		}
		return false
	})
	// The reports before pop-x's were seen by then too.
	if got := names(a.agent.PeersAt(x.Seen)); got != "pop-a pop-x" || x.Addr != "127.0.0.1:1" {
		t.Fatalf("view %q, pop-x at %q; want pop-a pop-x, at 127.0.0.1:1", got, x.Addr)
	}
	if err := stores.Status.Delete(ctx, manifest.StatusKey("eu-test", "pop-x")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, hangGuard, "pop-x leaves once deleted", func() bool {
		return names(a.agent.PeersAt(x.Seen)) == "pop-a"
	})
}

// TestPeersWatchAgain ends pop-a's status watch under it, then fails the
// next one: pop-a watches again while its link is up, and pop-b, which
// keeps reporting, stays in its view rather than leaving it for good.
func TestPeersWatchAgain(t *testing.T) {
	cp, _ := controlplanetest.Start(t, embedded.Options{})
	var calls atomic.Int32
	watchers := make(chan jetstream.KeyWatcher, 8)
	a := startMember(t, cp, "eu-test", "pop-a", func(a *fleet.Agent) {
		a.SetStatusWatch(func(ctx context.Context, kv jetstream.KeyValue) (jetstream.KeyWatcher, error) {
			if calls.Add(1) == 2 {
				return nil, errors.New("refused by the test")
			}
			w, err := kv.Watch(ctx, manifest.StatusKey("*", "*"))
			if err == nil {
				select {
				case watchers <- w:
				default:
				}
			}
			return w, err
		})
	})
	startMember(t, cp, "eu-test", "pop-b")
	testutil.Eventually(t, hangGuard, "pop-a sees pop-b", func() bool { return names(a.agent.Peers()) == "pop-a pop-b" })

	(<-watchers).Stop() // its updates end
	testutil.Eventually(t, hangGuard, "pop-a watches again, past a failed watch", func() bool { return calls.Load() >= 3 })
	again := time.Now()
	testutil.Eventually(t, hangGuard, "pop-b's reports reach pop-a again", func() bool {
		for _, p := range a.agent.Peers() {
			if p.POP == "pop-b" && p.Seen.After(again) {
				return true
			}
		}
		return false
	})
}

// TestPeersReplayClockSkew runs pop-a with a clock 10 s ahead of the
// control plane's: pop-x, which reported once just before pop-a started,
// is in pop-a's view from the replayed report, aged by the server's clock
// and not compared with pop-a's.
func TestPeersReplayClockSkew(t *testing.T) {
	cp, stores := controlplanetest.Start(t, embedded.Options{})
	st, _ := json.Marshal(manifest.Status{POP: "pop-x", Region: "eu-test", Peer: "127.0.0.1:1"})
	if _, err := stores.Status.Put(context.Background(), manifest.StatusKey("eu-test", "pop-x"), st); err != nil {
		t.Fatal(err)
	}
	a := startMember(t, cp, "eu-test", "pop-a", func(a *fleet.Agent) {
		a.SetClock(func() time.Time { return time.Now().Add(10 * time.Second) })
	})
	testutil.Eventually(t, hangGuard, "pop-x, replayed, joins pop-a's view", func() bool {
		return names(a.agent.Peers()) == "pop-a pop-x"
	})
}
