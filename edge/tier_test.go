package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/edge/internal/rendezvous"
	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// tierKey signs the tier's envelopes in these tests: not the origin's.
var tierKey = wire.Key{ID: 9, Secret: bytes.Repeat([]byte{9}, 32)}

// tierHost is the host every request of these tests names, so that the
// POPs share cache keys.
const tierHost = "tier.example"

// countingOrigin answers every GET with a body naming its path, cacheable
// for a minute, and counts what it is asked; hold, when set, makes each
// request wait until it is closed.
type countingOrigin struct {
	n    atomic.Int64
	hold chan struct{}
}

func (o *countingOrigin) ServeOrigin(_ context.Context, req *wire.Request, resp *wire.Response) {
	o.n.Add(1)
	if o.hold != nil {
		<-o.hold
	}
	resp.Status = 200
	resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=60"))
	resp.Body = append(resp.Body, "object "+string(req.Path)...)
}

// tierPOP is one POP of a test region: a node and its tier listener.
type tierPOP struct {
	*testNode
	name, region string
	tier         net.Listener
}

// startRegion starts one POP per name in region eu, with org as their
// origin, and gives each the others as peers: see startPOPs.
func startRegion(t testing.TB, org *countingOrigin, routes string, names ...string) []*tierPOP {
	t.Helper()
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", routes, names...)
	connect(pops...)
	return pops
}

// getLater sends GET path to p in the background: the channel gets nil
// once p answers 200 with the origin's object, else what went wrong.
func (p *tierPOP) getLater(path string) <-chan error {
	got := make(chan error, 1)
	go func() {
		code, _, body, err := p.tierGet("GET", path)
		if err == nil && (code != 200 || body != "object "+path) {
			err = fmt.Errorf("%d %q", code, body)
		}
		got <- err
	}()
	return got
}

// startPOPs starts one POP per name in region, each with the cache
// plugin on a route with tier: region (extra routes from routes, with
// the origin at addr as app).
func startPOPs(t testing.TB, addr, region, routes string, names ...string) []*tierPOP {
	t.Helper()
	return startPOPsWith(t, "", addr, region, routes, names...)
}

// startPOPsWith is startPOPs with more of the origin's settings: opts,
// as in "latency_target: 10ms", and routes may end with top-level keys.
func startPOPsWith(t testing.TB, opts, addr, region, routes string, names ...string) []*tierPOP {
	t.Helper()
	if opts != "" {
		opts = ", " + opts
	}
	cache := plugins(t)["cache"]
	var pops []*tierPOP
	for _, name := range names {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n := startNode(t, fmt.Sprintf(`
pop: %s
region: %s
tier: {listen: %q, key: %q}
origins:
  app: {addr: %q, key: %q%s}
routes:
  - path: /
    origin: app
    tier: region
    chain:
      - {file: %q}
%s`, name, region, ln.Addr(), tierKey.Text(), addr, origintest.Key.Text(), opts, cache, routes))
		go n.ServeTier(ln)
		pops = append(pops, &tierPOP{testNode: n, name: name, region: region, tier: ln})
	}
	return pops
}

// connect gives each POP all of them as its peers, as the fleet agent
// does from the POPs' status.
func connect(pops ...*tierPOP) {
	var peers []edge.Peer
	for _, p := range pops {
		peers = append(peers, edge.Peer{POP: p.name, Region: p.region, Addr: p.tier.Addr().String()})
	}
	for _, p := range pops {
		view := append([]edge.Peer(nil), peers...)
		for i := range view {
			view[i].Self = view[i].POP == p.name
		}
		p.SetPeers(view)
	}
}

// ownedBy returns n paths under prefix whose cache key the POP named
// owner owns among names.
func ownedBy(owner, prefix string, n int, names ...string) []string {
	set := rendezvous.New(names...)
	var paths []string
	for i := 0; len(paths) < n; i++ {
		p := fmt.Sprintf("%s%d", prefix, i)
		if set.Name(set.Owner(httpcache.AppendKey(nil, "http", tierHost, p, ""))) == owner {
			paths = append(paths, p)
		}
	}
	return paths
}

// tierDo sends method to the POP for path with tierHost as host, and
// returns the response, for fasthttp.ReleaseResponse.
func (p *tierPOP) tierDo(method, path string, hdr ...string) (*fasthttp.Response, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + p.Addr + path)
	req.UseHostHeader = true
	req.Header.SetHost(tierHost)
	req.Header.SetMethod(method)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if err := fasthttp.DoTimeout(req, resp, 20*time.Second); err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	return resp, nil
}

// tierGet is tierDo returning the status, the Cache-Status field lines
// joined and the body.
func (p *tierPOP) tierGet(method, path string, hdr ...string) (int, string, string, error) {
	resp, err := p.tierDo(method, path, hdr...)
	if err != nil {
		return 0, "", "", err
	}
	defer fasthttp.ReleaseResponse(resp)
	var status []string
	for _, v := range resp.Header.PeekAll("Cache-Status") {
		status = append(status, string(v))
	}
	return resp.StatusCode(), strings.Join(status, ", "), string(resp.Body()), nil
}

func (p *tierPOP) mustGet(t *testing.T, path string) (cacheStatus string) {
	t.Helper()
	code, cs, body, err := p.tierGet("GET", path)
	if err != nil || code != 200 || body != "object "+path {
		t.Fatalf("GET %s at %s: %d %q %v", path, p.name, code, body, err)
	}
	return cs
}

// TestTierRegion: a key that B owns, asked for at A, reaches the origin
// once, through B; asked for at C next, B answers from its cache and C's
// client sees it in Cache-Status; A and C store it too.
func TestTierRegion(t *testing.T) {
	org := &countingOrigin{}
	pops := startRegion(t, org, "", "pop-a", "pop-b", "pop-c")
	a, b, c := pops[0], pops[1], pops[2]
	path := ownedBy("pop-b", "/obj/", 1, "pop-a", "pop-b", "pop-c")[0]

	if cs := a.mustGet(t, path); !strings.HasPrefix(cs, "wedge-tier; fwd=uri-miss") || !strings.Contains(cs, ", wedge; fwd=uri-miss; fwd-status=200; stored") {
		t.Errorf("first GET at A: Cache-Status %q, want B's miss and A's store", cs)
	}
	if got := org.n.Load(); got != 1 {
		t.Fatalf("origin saw %d requests, want 1", got)
	}
	if cs := c.mustGet(t, path); !strings.HasPrefix(cs, "wedge-tier; hit") || !strings.Contains(cs, ", wedge; fwd=uri-miss; fwd-status=200; stored") {
		t.Errorf("GET at C: Cache-Status %q, want B's hit and C's store", cs)
	}
	for _, p := range []*tierPOP{a, c} {
		if cs := p.mustGet(t, path); !strings.Contains(cs, ", wedge; hit") {
			t.Errorf("again at %s: Cache-Status %q, want its own hit", p.name, cs)
		}
	}
	if got := org.n.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "peer"); got != 1 {
		t.Errorf("A's tier requests answered by a peer: %v, want 1", got)
	}
	if got := metric(t, b.testNode, "wedge_tier_asks_total", "result", "ok"); got != 2 {
		t.Errorf("B's asks answered: %v, want 2", got)
	}
	// A key B owns, asked for at B: its own fetch, no ask.
	own := ownedBy("pop-b", "/own/", 1, "pop-a", "pop-b", "pop-c")[0]
	b.mustGet(t, own)
	if got := metric(t, b.testNode, "wedge_tier_requests_total", "result", "self"); got != 1 {
		t.Errorf("B's own keys fetched by itself: %v, want 1", got)
	}
}

// TestTierCollapse: concurrent asks for one key at its owner share one
// origin request.
func TestTierCollapse(t *testing.T) {
	const n = 8
	org := &countingOrigin{hold: make(chan struct{})}
	pops := startRegion(t, org, "", "pop-a", "pop-b")
	a, b := pops[0], pops[1]
	path := ownedBy("pop-b", "/collapse/", 1, "pop-a", "pop-b")[0]
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		p := a
		if i%2 == 1 {
			p = b // the owner's own clients share it too
		}
		wg.Go(func() {
			code, _, body, err := p.tierGet("GET", path)
			if err != nil || code != 200 || body != "object "+path {
				errs <- fmt.Errorf("at %s: %d %q %v", p.name, code, body, err)
			}
		})
	}
	waitMetric(t, b.testNode, func(v float64) bool { return v == n-1 }, "wedge_tier_collapsed_total")
	close(org.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := org.n.Load(); got != 1 {
		t.Errorf("origin saw %d requests for %d concurrent misses, want 1", got, n)
	}
}

// TestTierDeadOwner: with B's tier listener gone, requests at A for keys
// B owns all succeed from the origin; B's breaker at A opens, so only the
// first asks cost a refused connect.
func TestTierDeadOwner(t *testing.T) {
	org := &countingOrigin{}
	pops := startRegion(t, org, "", "pop-a", "pop-b")
	a, b := pops[0], pops[1]
	b.tier.Close()
	paths := ownedBy("pop-b", "/dead/", 20, "pop-a", "pop-b")
	for _, p := range paths {
		a.mustGet(t, p)
	}
	if got := org.n.Load(); got != int64(len(paths)) {
		t.Errorf("origin saw %d requests, want %d", got, len(paths))
	}
	if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "fallback"); got != float64(len(paths)) {
		t.Errorf("fallbacks at A: %v, want %d", got, len(paths))
	}
	// A peer is no origin: its failures are the tier's fallbacks, not
	// origin series (and alerts) named after it.
	if got := testutil.Series(t, a.Registry(), "wedge_edge_origin_requests_total", map[string]string{"origin": "tier:pop-b"}); len(got) != 0 {
		t.Errorf("A reports B as an origin: %v", got)
	}
}

// TestTierHungOwner: an owner that accepts asks and never answers costs
// A's clients nothing but the ask's share of their budget: every request
// is answered by the origin, and the breaker for B opens after a few
// asks, so later requests do not reach B at all.
func TestTierHungOwner(t *testing.T) {
	org := &countingOrigin{}
	// A budget of 1 s: asks of half a second each.
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", fmt.Sprintf(`
  - path: /hung/
    origin: app
    tier: region
    timeout: 1s
    chain:
      - {file: %q}`, plugins(t)["cache"]), "pop-a")
	a := pops[0]
	hung, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		held  sync.WaitGroup
	)
	defer func() {
		hung.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		held.Wait()
	}()
	held.Go(func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			held.Go(func() { io.Copy(io.Discard, c) }) // reads the ask, never answers
		}
	})
	a.SetPeers([]edge.Peer{{POP: "pop-a", Region: "eu", Self: true}, {POP: "pop-b", Region: "eu", Addr: hung.Addr().String()}})
	paths := ownedBy("pop-b", "/hung/", 8, "pop-a", "pop-b")
	for _, p := range paths {
		a.mustGet(t, p)
	}
	if got := org.n.Load(); got != int64(len(paths)) {
		t.Errorf("origin saw %d requests, want %d", got, len(paths))
	}
	// Three timed-out asks open the breaker (its minimum of requests);
	// the fourth may be its first probe only after OpenFor, seconds away.
	mu.Lock()
	asked := len(conns)
	mu.Unlock()
	if asked > 3 {
		t.Errorf("B was asked on %d connections for %d requests, want the breaker open after 3", asked, len(paths))
	}
}

// TestTierRefusesFrames: the tier listener opens nothing it cannot
// authenticate, and fetches nothing for it.
func TestTierRefusesFrames(t *testing.T) {
	org := &countingOrigin{}
	b := startRegion(t, org, "", "pop-b")[0]
	url := "http://" + b.tier.Addr().String()
	post := func(path, method string, body []byte) int {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url + path)
		req.Header.SetMethod(method)
		req.SetBody(body)
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode()
	}
	req := &wire.Request{Method: []byte("GET"), Scheme: []byte("http"), Host: []byte(tierHost), Path: []byte("/x")}
	req.AddValue([]byte("wedge-tier-route"), []byte("/"))
	req.AddValue([]byte("wedge-tier-step"), []byte("0:cache"))
	req.AddValue([]byte("wedge-tier-hop"), []byte("region"))
	req.AddValue([]byte("wedge-tier-purge"), []byte("0"))
	seal := func(k wire.Key) []byte {
		codec := origintest.NewCodec(t, wire.Config{Keys: []wire.Key{k}})
		frame, _, err := codec.AppendRequest(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}
	good := seal(tierKey)
	unsigned := append([]byte(nil), good...)
	unsigned[len(unsigned)-1] ^= 1 // the MAC no longer matches
	for _, c := range []struct {
		what, path, method string
		body               []byte
		want               int
	}{
		{"garbage", wire.Path, "POST", []byte("not a frame at all"), 400},
		{"origin key", wire.Path, "POST", seal(origintest.Key), 401},
		{"bad MAC", wire.Path, "POST", unsigned, 401},
		{"empty", wire.Path, "POST", nil, 400},
		{"GET", wire.Path, "GET", nil, 405},
		{"other path", "/", "POST", good, 404},
	} {
		if got := post(c.path, c.method, c.body); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
	// A body an ask never has: refused from its length, before any of it
	// is read. The listener took bodies up to the largest envelope, which
	// fasthttp allocates whole from the length announced: 100 connections
	// each announcing 16 MB and sending a byte held 1.5 GB.
	c, err := net.Dial("tcp4", b.tier.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang guard
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n\r\nx", wire.Path)
	var big fasthttp.Response
	if err := big.Read(bufio.NewReader(c)); err != nil || big.StatusCode() != 413 {
		t.Errorf("an ask announcing 16 MB: %d %v, want 413 at once", big.StatusCode(), err)
	}
	if got := org.n.Load(); got != 0 {
		t.Errorf("origin saw %d requests, want none", got)
	}
	if got := metric(t, b.testNode, "wedge_tier_asks_total", "result", "refused"); got != 4 {
		t.Errorf("refused frames: %v, want 4", got)
	}
	// The good frame is answered: an envelope under the tier key.
	codec := origintest.NewCodec(t, wire.Config{Keys: []wire.Key{tierKey}})
	cl, err := originclient.New(originclient.Config{Addr: b.tier.Addr().String(), Codec: codec, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var resp wire.Response
	if err := cl.Do(time.Now().Add(10*time.Second), req, &resp); err != nil || resp.Status != 200 || string(resp.Body) != "object /x" {
		t.Fatalf("a good ask: %v %d %q %q", err, resp.Status, resp.Body, resp.Error)
	}
}

// TestTierPurgeOrder: an ask from a POP that applied purges its owner has
// not yet is not answered by the owner (which could hand back a purged
// object): the asker gets it from the origin. An owner ahead answers.
func TestTierPurgeOrder(t *testing.T) {
	org := &countingOrigin{}
	pops := startRegion(t, org, "", "pop-a", "pop-b")
	a, b := pops[0], pops[1]
	paths := ownedBy("pop-b", "/purge/", 2, "pop-a", "pop-b")
	a.SetPurged(5)
	a.mustGet(t, paths[0])
	if got := metric(t, b.testNode, "wedge_tier_asks_total", "result", "behind"); got != 1 {
		t.Errorf("asks B was behind on: %v, want 1", got)
	}
	if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "fallback"); got != 1 {
		t.Errorf("fallbacks at A: %v, want 1", got)
	}
	b.SetPurged(7)
	a.mustGet(t, paths[1])
	if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "peer"); got != 1 {
		t.Errorf("asks B answered: %v, want 1", got)
	}
}

// TestTierNotTiered: a route without tier, a POST and a no-store request
// go to the origin without asking the owner.
func TestTierNotTiered(t *testing.T) {
	org := &countingOrigin{}
	pops := startRegion(t, org, `  - path: /plain/
    origin: app
    chain:
      - {file: `+plugins(t)["cache"]+`}
`, "pop-a", "pop-b")
	a, b := pops[0], pops[1]
	plain := ownedBy("pop-b", "/plain/", 1, "pop-a", "pop-b")[0]
	a.mustGet(t, plain)
	path := ownedBy("pop-b", "/obj/", 2, "pop-a", "pop-b")
	if code, _, _, err := a.tierGet("POST", path[0]); err != nil || code != 200 {
		t.Errorf("POST: %d %v", code, err)
	}
	if code, _, _, err := a.tierGet("GET", path[1], "Cache-Control", "no-store"); err != nil || code != 200 {
		t.Errorf("no-store GET: %d %v", code, err)
	}
	if got := org.n.Load(); got != 3 {
		t.Errorf("origin saw %d requests, want 3", got)
	}
	if got := metric(t, a.testNode, "wedge_tier_requests_total"); got != 0 {
		t.Errorf("tiered requests at A: %v, want none", got)
	}
	if got := metric(t, b.testNode, "wedge_tier_asks_total"); got != 0 {
		t.Errorf("asks at B: %v, want none", got)
	}
}

// TestTierShield: on a route with a shield region, the owner of a key
// in the POP's region asks the owner in the shield region, which alone
// fetches from the origin; a second region's owner then gets a shield hit.
func TestTierShield(t *testing.T) {
	org := &countingOrigin{}
	addr := origintest.Start(t, org).Addr
	shielded := `  - path: /shielded/
    origin: app
    tier: region
    shield: us
    chain:
      - {file: ` + plugins(t)["cache"] + `}
`
	eu := startPOPs(t, addr, "eu", shielded, "pop-a", "pop-b")
	ap := startPOPs(t, addr, "ap", shielded, "pop-p")
	us := startPOPs(t, addr, "us", shielded, "pop-s")
	connect(append(append(eu, ap...), us...)...)
	path := ownedBy("pop-b", "/shielded/", 1, "pop-a", "pop-b")[0]
	cs := eu[0].mustGet(t, path)
	if !strings.HasPrefix(cs, "wedge-shield; fwd=uri-miss") || !strings.Contains(cs, ", wedge-tier; fwd=uri-miss") {
		t.Errorf("GET at A: Cache-Status %q, want the shield's miss, then B's", cs)
	}
	if cs := ap[0].mustGet(t, path); !strings.HasPrefix(cs, "wedge-shield; hit") {
		t.Errorf("GET in another region: Cache-Status %q, want the shield's hit", cs)
	}
	if got := org.n.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	// In the shield region, the owner fetches from the origin.
	if cs := us[0].mustGet(t, "/shielded/own"); !strings.HasPrefix(cs, "wedge; fwd=uri-miss") {
		t.Errorf("GET in the shield region: Cache-Status %q, want its own miss", cs)
	}
}

var _ origin.Handler = (*countingOrigin)(nil)

// TestTierKeyReload: tier.key takes effect at a restart, so a reload
// that gives an origin the tier's running key (and the tier a new one, or
// not) is refused: the node would sign origin requests with the key its
// tier listener opens asks under. The node keeps its running config.
func TestTierKeyReload(t *testing.T) {
	org := &countingOrigin{}
	p := startPOPs(t, origintest.Start(t, org).Addr, "eu", "", "pop-b")[0]
	doc := fmt.Sprintf(`
pop: pop-b
region: eu
tier: {listen: %q, key: %q}
origins:
  app: {addr: %q, key: %q}
routes: [{path: /, origin: app}]
`, p.tier.Addr(), wire.Key{ID: 11, Secret: bytes.Repeat([]byte{11}, 32)}.Text(), "127.0.0.1:1", tierKey.Text())
	cfg, err := edge.ParseConfig([]byte(doc), t.TempDir())
	if err != nil {
		t.Fatalf("the config alone is fine: %v", err)
	}
	if err := p.Reload(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), `origin "app"'s key`) {
		t.Fatalf("reload giving an origin the running tier key: %v, want refused", err)
	}
	p.mustGet(t, "/still-the-old-origin")
	if org.n.Load() != 1 {
		t.Fatalf("the running origin saw %d requests, want 1", org.n.Load())
	}
}

// TestTierConfig: the config refuses a tier listener without a key or
// with an origin's (asks and requests must not verify as each other), a
// route tier other than region or off, and a shield without a tier.
func TestTierConfig(t *testing.T) {
	base := `
origins:
  app: {addr: 127.0.0.1:1, key: "` + origintest.Key.Text() + `"}
`
	for _, c := range []struct{ yaml, want string }{
		{"tier: {listen: 127.0.0.1:0}\nroutes: [{origin: app}]", "tier: a listener needs a key"},
		{"tier: {listen: 127.0.0.1:0, key: nonsense}\nroutes: [{origin: app}]", "tier:"},
		{"routes: [{origin: app, tier: global}]", `tier "global"`},
		{"routes: [{origin: app, shield: us}]", "needs tier: region"},
		{"routes: [{origin: app, tier: off, shield: us}]", "needs tier: region"},
		{"tier: {listen: 127.0.0.1:0, key: \"" + wire.Key{ID: 3, Secret: origintest.Key.Secret}.Text() + "\"}\nroutes: [{origin: app}]",
			`tier: key is origin "app"'s key`},
		// HMAC pads a short secret with zeros: one more 00 is the same key.
		{"tier: {listen: 127.0.0.1:0, key: \"" + wire.Key{ID: 3, Secret: append(slices.Clone(origintest.Key.Secret), 0)}.Text() + "\"}\nroutes: [{origin: app}]",
			`tier: key is origin "app"'s key`},
	} {
		if _, err := edge.ParseConfig([]byte(base+c.yaml), t.TempDir()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.yaml, err, c.want)
		}
	}
	for _, ok := range []string{
		"routes: [{origin: app, tier: region, shield: us}]",
		"routes: [{origin: app, tier: off}]",
		"tier: {listen: 127.0.0.1:0, key: \"" + tierKey.Text() + "\"}\nroutes: [{origin: app, tier: region}]",
	} {
		if _, err := edge.ParseConfig([]byte(base+ok), t.TempDir()); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestTierShieldNoLoop: a shield's ask is never asked onward, even when
// the shield region's route names the asking region as its own shield
// (as during a rollout of a config that swaps them): the shield fetches
// from the origin, and the region's owner is asked once.
func TestTierShieldNoLoop(t *testing.T) {
	org := &countingOrigin{}
	addr := origintest.Start(t, org).Addr
	shielded := func(region string) string {
		return `  - path: /loop/
    origin: app
    tier: region
    shield: ` + region + `
    chain:
      - {file: ` + plugins(t)["cache"] + `}
`
	}
	eu := startPOPs(t, addr, "eu", shielded("us"), "pop-a", "pop-b")
	us := startPOPs(t, addr, "us", shielded("eu"), "pop-s")
	connect(append(eu, us...)...)
	path := ownedBy("pop-b", "/loop/", 1, "pop-a", "pop-b")[0]
	if cs := eu[0].mustGet(t, path); !strings.HasPrefix(cs, "wedge-shield; fwd=uri-miss") {
		t.Errorf("GET at A: Cache-Status %q, want the shield's miss", cs)
	}
	if got := org.n.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	if got := metric(t, eu[1].testNode, "wedge_tier_asks_total"); got != 1 {
		t.Errorf("B was asked %v times, want once (by A)", got)
	}
	if got := metric(t, us[0].testNode, "wedge_tier_asks_total", "result", "ok"); got != 1 {
		t.Errorf("the shield answered %v asks, want 1", got)
	}
}

// TestTierPurgeDuringAsk: a purge of the key the asker applies while its
// ask is on the way may be newer than the answer: the asker drops the
// answer and fetches from the origin. A purge of something else does not
// cost the answer.
func TestTierPurgeDuringAsk(t *testing.T) {
	for _, c := range []struct {
		what            string
		purgeKey        bool
		fallbacks, sent float64
	}{{"another tag purged", false, 0, 1}, {"the key purged", true, 1, 2}} {
		t.Run(c.what, func(t *testing.T) {
			org := &countingOrigin{hold: make(chan struct{})}
			pops := startRegion(t, org, "", "pop-a", "pop-b")
			a := pops[0]
			path := ownedBy("pop-b", "/purged/", 1, "pop-a", "pop-b")[0]
			got := a.getLater(path)
			testutil.Eventually(t, 20*time.Second, "B's fetch reaches the origin", func() bool { return org.n.Load() == 1 })
			// A applies purges while B fetches, as the fleet agent does: to
			// its cache, then its position.
			a.PurgeTag("other")
			if c.purgeKey {
				if _, err := a.PurgeURL("http://" + tierHost + path); err != nil {
					t.Fatal(err)
				}
			}
			a.SetPurged(1)
			close(org.hold)
			if err := <-got; err != nil {
				t.Fatalf("GET at A: %v", err)
			}
			if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "fallback"); got != c.fallbacks {
				t.Errorf("fallbacks at A: %v, want %v", got, c.fallbacks)
			}
			if got := float64(org.n.Load()); got != c.sent {
				t.Errorf("origin saw %v requests, want %v", got, c.sent)
			}
		})
	}
}

// TestTierRouteByName: a step after the cache rewrites the path, so that
// the request the asker sends on matches another route, which has no
// tier: the owner runs the asker's route, named in the ask, and answers
// (a miss, then a hit from its entry), rather than refusing the ask and
// sending the asker to the origin.
func TestTierRouteByName(t *testing.T) {
	org := &countingOrigin{}
	names := []string{"pop-a", "pop-b"}
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", fmt.Sprintf(`
  - name: pub
    path: /pub/
    origin: app
    tier: region
    chain:
      - {file: %q}
      - {file: %q, config: {from: /pub/, to: /internal/}}
  - name: internal
    path: /internal/
    origin: app
    chain:
      - {file: %q}`, plugins(t)["cache"], edgetest.ModuleFile(t, "../wasm/internal/testguests/rewrite"), plugins(t)["cache"]), names...)
	connect(pops...)
	a, b := pops[0], pops[1]
	// The key the asker tiers by is the request's as it leaves the chain.
	internal := ownedBy("pop-b", "/internal/", 1, names...)[0]
	path := "/pub/" + strings.TrimPrefix(internal, "/internal/")
	for i, want := range []string{"wedge-tier; fwd=uri-miss", "wedge-tier; hit"} {
		code, cs, body, err := a.tierGet("GET", path)
		if err != nil || code != 200 || body != "object "+internal || !strings.HasPrefix(cs, want) {
			t.Fatalf("GET %d at A: %d %q, Cache-Status %q, %v; want B's answer (%s)", i, code, body, cs, err, want)
		}
	}
	if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "peer"); got != 2 {
		t.Errorf("A's tier requests answered by B: %v, want 2", got)
	}
	if got := metric(t, b.testNode, "wedge_tier_asks_total", "result", "refused"); got != 0 {
		t.Errorf("asks B refused: %v, want none", got)
	}
	if got := org.n.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

// TestTierSlowOrigin: an origin slower than the ask (2 s here) is
// fetched twice for the first miss, by the owner and by the asker's
// fallback, but the owner's fetch goes on past the ask, within the
// request's budget, and fills the owner's cache: the region's next miss
// is the owner's hit.
func TestTierSlowOrigin(t *testing.T) {
	org := &countingOrigin{hold: make(chan struct{})}
	names := []string{"pop-a", "pop-b", "pop-c"}
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", fmt.Sprintf(`
  - path: /slow/
    origin: app
    tier: region
    timeout: 30s
    chain:
      - {file: %q}`, plugins(t)["cache"]), names...)
	connect(pops...)
	a, b, c := pops[0], pops[1], pops[2]
	path := ownedBy("pop-b", "/slow/", 1, names...)[0]
	got := a.getLater(path)
	// B's fetch, then A's fallback once its ask gave up, both held.
	waitMetric(t, a.testNode, func(v float64) bool { return v == 1 }, "wedge_tier_requests_total", "result", "fallback")
	testutil.Eventually(t, 20*time.Second, "A's fallback reaches the origin", func() bool { return org.n.Load() == 2 })
	close(org.hold)
	if err := <-got; err != nil {
		t.Fatalf("GET at A: %v", err)
	}
	waitMetric(t, b.testNode, func(v float64) bool { return v == 1 }, "wedge_tier_asks_total")
	if got := metric(t, b.testNode, "wedge_tier_asks_total", "result", "ok"); got != 1 {
		t.Fatalf("B's fetch for A's ask failed (asks answered: %v)", got)
	}
	if cs := c.mustGet(t, path); !strings.HasPrefix(cs, "wedge-tier; hit") {
		t.Errorf("GET at C: Cache-Status %q, want B's hit", cs)
	}
	if got := org.n.Load(); got != 2 {
		t.Errorf("origin saw %d requests, want 2", got)
	}
}

// TestTierSetPeersAfterShutdown: a membership that arrives after the node
// shut down makes no client on the closed tier codec.
func TestTierSetPeersAfterShutdown(t *testing.T) {
	a := startPOPs(t, origintest.Start(t, &countingOrigin{}).Addr, "eu", "", "pop-a")[0]
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.SetPeers([]edge.Peer{{POP: "pop-a", Region: "eu", Self: true}, {POP: "pop-b", Region: "eu", Addr: "127.0.0.1:1"}})
	if n := a.TierClients(); n != 0 {
		t.Errorf("%d tier clients after Shutdown, want none", n)
	}
}

// TestTierOriginLimit: a tiered route's fetches are under the origin's
// limit like any exchange. Each POP's limit comes down to one from a
// fetch slower than the 1 ms target; then, with the origin holding what
// each POP fetches for itself, the next key B owns is refused at B (503
// with Retry-After, the origin not asked), and A's ask for it gets B's
// 503 rather than a fallback to the origin; once A's own place is taken,
// a fallback after a failed ask is refused by A's limit too.
func TestTierOriginLimit(t *testing.T) {
	var seen atomic.Int64
	hold := make(chan struct{})
	org := origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		seen.Add(1)
		if bytes.HasPrefix(req.Path, []byte("/held/")) {
			<-hold
		} else {
			time.Sleep(5 * time.Millisecond) // the origin's latency, past the 1 ms target: not a wait for an event
		}
		resp.Status = 200
		resp.Body = append(resp.Body, "object "+string(req.Path)...)
	})
	addr := origintest.Start(t, org).Addr
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the origin stops, should the test end early
	names := []string{"pop-a", "pop-b"}
	pops := startPOPsWith(t, "latency_target: 1ms", addr, "eu", `
overload: {min_limit: 1, queue_delay: 1h, target_delay: 1h}`, names...)
	connect(pops...)
	a, b := pops[0], pops[1]
	for _, p := range pops {
		p.mustGet(t, ownedBy(p.name, "/slow/", 1, names...)[0])
		waitMetric(t, p.testNode, func(v float64) bool { return v == 1 }, "wedge_edge_origin_concurrency_limit", "origin", "app")
	}
	held := func(p *tierPOP, path string, want int64) <-chan error {
		t.Helper()
		got := p.getLater(path)
		testutil.Eventually(t, 20*time.Second, p.name+"'s fetch reaches the origin", func() bool { return seen.Load() == want })
		return got
	}
	refused := func(p *tierPOP, path string) {
		t.Helper()
		resp, err := p.tierDo("GET", path)
		if err != nil {
			t.Fatalf("GET %s at %s: %v", path, p.name, err)
		}
		defer fasthttp.ReleaseResponse(resp)
		if body := resp.Body(); resp.StatusCode() != 503 || string(resp.Header.Peek("Retry-After")) != "1" ||
			!bytes.Contains(body, []byte("origin at its concurrency limit")) {
			t.Fatalf("GET %s at %s: %d, Retry-After %q, %q; want 503 for the origin's limit, Retry-After 1",
				path, p.name, resp.StatusCode(), resp.Header.Peek("Retry-After"), body)
		}
	}
	atB := ownedBy("pop-b", "/held/b", 3, names...)
	heldB := held(b, atB[0], 3)
	refused(b, atB[1])
	refused(a, atB[1])
	if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "fallback"); got != 0 {
		t.Errorf("A fell back to the origin %v times after B refused for the origin's limit, want 0", got)
	}
	heldA := held(a, ownedBy("pop-a", "/held/a", 1, names...)[0], 4)
	// B gone from A's view: A's ask for B's key fails, and its fallback
	// meets A's own limit.
	gone, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	a.SetPeers([]edge.Peer{{POP: "pop-a", Region: "eu", Addr: a.tier.Addr().String(), Self: true},
		{POP: "pop-b", Region: "eu", Addr: gone.Addr().String()}})
	refused(a, atB[2])
	if got := metric(t, a.testNode, "wedge_tier_requests_total", "result", "fallback"); got != 1 {
		t.Errorf("A fell back %v times after a failed ask, want 1", got)
	}
	if got := seen.Load(); got != 4 {
		t.Errorf("the origin saw %d requests, want the 4 admitted", got)
	}
	for _, c := range []struct {
		p    *tierPOP
		want float64
	}{{a, 1}, {b, 2}} {
		if got := metric(t, c.p.testNode, "wedge_edge_shed_total", "reason", "origin"); got != c.want {
			t.Errorf("%s shed %v for the origin, want %v", c.p.name, got, c.want)
		}
	}
	release()
	for _, got := range []<-chan error{heldB, heldA} {
		if err := <-got; err != nil {
			t.Errorf("a held request: %v", err)
		}
	}
}

// purgeRaceOrigin answers every GET with its version now in the body, "v1",
// cacheable for a minute and tagged t. A request takes the version as
// it arrives, then waits until hold is closed: a fetch in progress.
type purgeRaceOrigin struct {
	version atomic.Int64
	n       atomic.Int64
	hold    chan struct{}
}

func (o *purgeRaceOrigin) ServeOrigin(_ context.Context, _ *wire.Request, resp *wire.Response) {
	v := o.version.Load()
	o.n.Add(1)
	<-o.hold
	resp.Status = 200
	resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=60"))
	resp.AddHeader([]byte("Surrogate-Key"), []byte("t"))
	resp.Body = fmt.Appendf(resp.Body, "v%d", v)
}

// getBody sends GET path to p and returns the body of its 200.
func (p *tierPOP) getBody(t *testing.T, path string) string {
	t.Helper()
	code, cs, body, err := p.tierGet("GET", path)
	if err != nil || code != 200 {
		t.Fatalf("GET %s at %s: %d %q %v", path, p.name, code, body, err)
	}
	return body + " (" + cs + ")"
}

// TestTierPurgeDuringOwnersFetch: a purge that every POP applies while
// the key's owner fetches it does not let the owner store what it
// fetched: the region gets the version after the purge, through the
// owner as from it. The owner stored v1 after the purge and handed it to
// the region as a hit until its fetch took the purge position as it
// began.
func TestTierPurgeDuringOwnersFetch(t *testing.T) {
	org := &purgeRaceOrigin{hold: make(chan struct{})}
	org.version.Store(1)
	names := []string{"pop-a", "pop-b", "pop-c"}
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", "", names...)
	connect(pops...)
	a, b, c := pops[0], pops[1], pops[2]
	path := ownedBy("pop-b", "/race/", 1, names...)[0]
	got := make(chan string, 1)
	go func() {
		_, _, body, _ := a.tierGet("GET", path)
		got <- body
	}()
	testutil.Eventually(t, 20*time.Second, "B's fetch reaches the origin", func() bool { return org.n.Load() == 1 })
	org.version.Store(2)
	for _, p := range pops { // as the fleet agent applies one
		p.PurgeTag("t")
		p.SetPurged(1)
	}
	close(org.hold)
	if body := <-got; body != "v2" {
		t.Errorf("GET at A: %q, want v2 (A applied the purge during its ask: the answer is dropped)", body)
	}
	if body := c.getBody(t, path); !strings.HasPrefix(body, "v2 ") {
		t.Errorf("GET at C after the purge: %s, want v2", body)
	}
	if body := b.getBody(t, path); !strings.HasPrefix(body, "v2 ") {
		t.Errorf("GET at B after the purge: %s, want v2", body)
	}
}
