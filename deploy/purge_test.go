package deploy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestPurgeEverywhere runs a fleet of four POPs in three regions, each with
// the cache plugin in front of one origin and its own link to a real
// control plane (through a proxy the test can cut). It issues 20 purges by
// tag, each of which returns once every POP confirmed and leaves no POP
// serving the purged object; then cuts one POP off, purges a tag and a URL
// while it is away, and checks that once it is back it serves neither (and
// still serves what was not purged); then cuts it off again while purges go
// and age out of the stream (a stream purge stands for the retention), and
// checks that it empties its cache when it is back.
func TestPurgeEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("a fleet of four POPs with a control plane")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	_, trust := signer(t)
	org := startTaggingOrigin(t)
	cacheWasm := edgetest.ModuleFile(t, "../plugins/cache")

	var fleetPOPs []*cachePOP
	for _, p := range pops {
		fleetPOPs = append(fleetPOPs, startCachePOP(t, ctx, cp.URL(), trust, p.region, p.pop, org.addr, cacheWasm))
	}
	for i, p := range fleetPOPs {
		testutil.Eventually(t, hangGuard, "a status report from "+p.name, func() bool {
			_, err := stores.Status.Get(ctx, manifest.StatusKey(pops[i].region, p.name))
			return err == nil
		})
	}
	// POPs whose status is this fresh are expected to confirm: far more
	// than the 200 ms report interval, and less than the test runs.
	const alive = 30 * time.Second
	issue := func(p manifest.Purge, timeout time.Duration) *controlplane.PurgeResult {
		t.Helper()
		p.Who = "test"
		res, err := stores.Purge(ctx, p, alive, timeout)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// 20 purges by tag: each returns when all four POPs confirmed, and
	// each POP then fetches the object from the origin again.
	var took []time.Duration
	for i := range 20 {
		path := fmt.Sprintf("/t%d/a", i)
		cached := cacheEverywhere(t, fleetPOPs, path)
		res := issue(manifest.Purge{Tag: fmt.Sprintf("t%d", i)}, hangGuard)
		if len(res.Missing) > 0 || len(res.Confirmed) != len(fleetPOPs) {
			t.Fatalf("purge %d: confirmed by %d POPs, missing %v", i, len(res.Confirmed), res.Missing)
		}
		took = append(took, res.Confirmed[len(res.Confirmed)-1].After)
		for _, p := range fleetPOPs {
			if got := p.fetch(t, path); got == cached[path][p.name] {
				t.Fatalf("%s serves %s after the purge confirmed: %q", p.name, path, got)
			}
		}
	}
	slices.Sort(took)
	t.Logf("purge by tag, publish to the last of %d POPs confirming, over %d purges: p50 %s, p99 %s, max %s",
		len(fleetPOPs), len(took), took[len(took)/2].Round(time.Microsecond),
		took[(len(took)*99+99)/100-1].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond))

	// One POP cut off while a tag and a URL are purged.
	victim := fleetPOPs[len(fleetPOPs)-1]
	purged, kept := []string{"/cut/a", "/url/a"}, "/keep/a"
	before := cacheEverywhere(t, fleetPOPs, append(purged, kept)...)
	applied := func(p *cachePOP, result string) float64 {
		return testutil.MetricSum(t, p.node.Registry(), "wedge_fleet_purges_total", map[string]string{"result": result})
	}
	okBefore := applied(victim, "ok")
	victim.cutOff(t)
	for _, pr := range []manifest.Purge{{Tag: "cut"}, {URL: "http://" + purgeHost + "/url/a?"}} {
		// Short: the victim cannot confirm, and the others are checked
		// below without a deadline of their own.
		res := issue(pr, time.Second)
		for _, c := range res.Confirmed {
			if c.POP == victim.name {
				t.Fatalf("%s confirmed a purge while cut off", victim.name)
			}
		}
		if !slices.Contains(res.Missing, victim.name) {
			t.Fatalf("purge %+v: %s not reported missing: %+v", pr, victim.name, res)
		}
	}
	for _, p := range fleetPOPs[:len(fleetPOPs)-1] {
		testutil.Eventually(t, hangGuard, p.name+" applying both purges", func() bool {
			return p.fetch(t, purged[0]) != before[purged[0]][p.name] && p.fetch(t, purged[1]) != before[purged[1]][p.name]
		})
	}
	if got := victim.fetch(t, purged[0]); got != before[purged[0]][victim.name] {
		t.Fatalf("%s, cut off, purged %s anyway: the test does not cut it off", victim.name, purged[0])
	}
	victim.reconnect(t)
	testutil.Eventually(t, hangGuard, victim.name+" applying the purges issued while it was away", func() bool {
		return applied(victim, "ok") >= okBefore+2
	})
	for _, path := range purged {
		if got := victim.fetch(t, path); got == before[path][victim.name] {
			t.Fatalf("%s serves the purged %s after it came back: %q", victim.name, path, got)
		}
	}
	if got := victim.fetch(t, kept); got != before[kept][victim.name] {
		t.Fatalf("%s lost %s, which no purge named: %q, was %q", victim.name, kept, got, before[kept][victim.name])
	}

	// Cut off again, while purges are issued and gone from the stream
	// before it is back: it cannot know what it missed, so it empties
	// its cache.
	before = cacheEverywhere(t, fleetPOPs, kept)
	victim.cutOff(t)
	issue(manifest.Purge{Tag: "gone"}, time.Second)
	if err := stores.Purges.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	victim.reconnect(t)
	testutil.Eventually(t, hangGuard, victim.name+" emptying its cache for purges it missed", func() bool {
		return applied(victim, "gap") == 1
	})
	if got := victim.fetch(t, kept); got == before[kept][victim.name] {
		t.Fatalf("%s serves %s after purges it missed aged out: %q", victim.name, kept, got)
	}
	for _, p := range fleetPOPs[:len(fleetPOPs)-1] {
		if n := applied(p, "gap"); n != 0 {
			t.Fatalf("%s, never cut off, emptied its cache %v times", p.name, n)
		}
	}
}

// purgeHost is the Host of the test's requests, so that every POP keys an
// object alike and a purge by URL names it.
const purgeHost = "purge.test"

// cachePOP is a POP with the cache plugin, whose control-plane link goes
// through a proxy the test can cut.
type cachePOP struct {
	name string
	addr string
	node *edge.Node
	link *linkProxy
	hc   *fasthttp.HostClient
}

func startCachePOP(t *testing.T, ctx context.Context, natsURL, trust, region, name, originAddr, cacheWasm string) *cachePOP {
	t.Helper()
	link := startLinkProxy(t, natsURL)
	cfg, err := edge.ParseConfig(fmt.Appendf(nil, `
listen: 127.0.0.1:0
pop: %s
region: %s
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: all, path: /, origin: app, chain: [{name: cache, file: %q}]}
fleet: {nats: %q, trust: [%q], control_keys: [%q], state_dir: state}
`, name, region, originAddr, origintest.Key.Text(), cacheWasm, link.url(), trust, controlPub(t)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := servePOP(t, ctx, name, cfg, 200*time.Millisecond)
	addr := p.Addr().String()
	return &cachePOP{name: name, addr: addr, node: p.Node(), link: link, hc: &fasthttp.HostClient{Addr: addr}}
}

// fetch GETs path and returns the body: the origin's count of fetches of
// path when it answered, so a cached answer repeats an old one.
func (p *cachePOP) fetch(t *testing.T, path string) string {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + purgeHost + path)
	if err := p.hc.DoTimeout(req, resp, hangGuard); err != nil {
		t.Fatalf("%s: GET %s: %v", p.name, path, err)
	}
	if resp.StatusCode() != 200 {
		t.Fatalf("%s: GET %s: %d %s", p.name, path, resp.StatusCode(), resp.Body())
	}
	return string(resp.Body())
}

func (p *cachePOP) connected(t *testing.T) bool {
	return testutil.MetricSum(t, p.node.Registry(), "wedge_fleet_connected", nil) == 1
}

func (p *cachePOP) cutOff(t *testing.T) {
	t.Helper()
	p.link.cut(true)
	testutil.Eventually(t, hangGuard, p.name+" losing its link", func() bool { return !p.connected(t) })
}

func (p *cachePOP) reconnect(t *testing.T) {
	t.Helper()
	p.link.cut(false)
	testutil.Eventually(t, hangGuard, p.name+" reconnecting", func() bool { return p.connected(t) })
}

// cacheEverywhere has every POP cache each path, checks that the next GET
// is answered from the cache, and returns the cached bodies by path and
// POP.
func cacheEverywhere(t *testing.T, fleet []*cachePOP, paths ...string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, path := range paths {
		out[path] = map[string]string{}
		for _, p := range fleet {
			first := p.fetch(t, path)
			if again := p.fetch(t, path); again != first {
				t.Fatalf("%s does not cache %s: %q, then %q", p.name, path, first, again)
			}
			out[path][p.name] = first
		}
	}
	return out
}

// taggingOrigin answers every GET with a response cacheable for an hour,
// tagged with the path's first segment, whose body counts the fetches of
// its path.
type taggingOrigin struct {
	addr    string
	mu      sync.Mutex
	fetches map[string]int
}

func startTaggingOrigin(t *testing.T) *taggingOrigin {
	o := &taggingOrigin{fetches: map[string]int{}}
	o.addr = origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		path := string(req.Path)
		o.mu.Lock()
		o.fetches[path]++
		n := o.fetches[path]
		o.mu.Unlock()
		tag, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=3600"))
		resp.AddHeader([]byte("Surrogate-Key"), []byte(tag))
		resp.Body = fmt.Appendf(nil, "%s #%d", path, n)
	})).Addr
	return o
}

// linkProxy forwards a POP's control-plane connections to NATS until it is
// cut: then it closes them and refuses new ones, as a network partition
// between the POP and the control plane would.
type linkProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func startLinkProxy(t *testing.T, natsURL string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &linkProxy{ln: ln, target: strings.TrimPrefix(natsURL, "nats://"), conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { l.forward(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		l.cut(true)
		wg.Wait()
	})
	return l
}

func (l *linkProxy) url() string { return "nats://" + l.ln.Addr().String() }

func (l *linkProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp4", l.target)
	if err != nil {
		c.Close()
		return
	}
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	l.conns[c], l.conns[up] = true, true
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	l.mu.Lock()
	delete(l.conns, c)
	delete(l.conns, up)
	l.mu.Unlock()
}

// cut closes every forwarded connection and refuses new ones (down), or
// lets them through again.
func (l *linkProxy) cut(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for c := range l.conns {
			c.Close()
		}
	}
}
