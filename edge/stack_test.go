package edge_test

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// plugins is auth, ratelimit and cache built to .wasm files, by name.
func plugins(t testing.TB) map[string]string {
	files := map[string]string{}
	for _, name := range []string{"auth", "ratelimit", "cache"} {
		files[name] = edgetest.ModuleFile(t, "../plugins/"+name)
	}
	return files
}

var jwtSecret = []byte("0123456789abcdef0123456789abcdef")

// app is the application behind the stack: /fresh is cacheable for 60 s,
// /revalidate for 1 s with an ETag it honours, /fragile for 1 s with
// stale-if-error; fail makes every response a 503.
type app struct {
	hits, notModified atomic.Int64
	fail              atomic.Bool
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.hits.Add(1)
	if a.fail.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Surrogate-Key", "all "+strings.Trim(r.URL.Path, "/"))
	switch r.URL.Path {
	case "/fresh":
		w.Header().Set("Cache-Control", "public, max-age=60")
	case "/revalidate":
		w.Header().Set("Cache-Control", "public, max-age=1")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			a.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	case "/private":
		w.Header().Set("Cache-Control", "max-age=60")
	case "/fragile":
		w.Header().Set("Cache-Control", "public, max-age=1, stale-if-error=300")
	default:
		http.NotFound(w, r)
		return
	}
	fmt.Fprintf(w, "%s made at %d for %s\n", r.URL.Path, time.Now().UnixNano(), r.Header.Get("Wedge-Value-Identity-Sub"))
}

func startStack(t *testing.T) (*testNode, *app) {
	t.Helper()
	a := &app{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	originAddr := origintest.Start(t, proxy).Addr

	p := plugins(t)
	k := base64.RawURLEncoding.EncodeToString(jwtSecret)
	n := startNode(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}
      - {file: %q, config: {policies: [{name: per_user, key: "value:identity-sub", limit: 5, period: 1m, burst: 5}]}}
      - {file: %q}
`, originAddr, origintest.Key.Text(), p["auth"], k, p["ratelimit"], p["cache"]))
	return n, a
}

func TestStackAuthAndRateLimit(t *testing.T) {
	n, _ := startStack(t)
	if st, h, _ := n.do(t, "GET", "x", "/fresh", nil); st != 401 || !strings.HasPrefix(string(h.Peek("WWW-Authenticate")), "Bearer ") {
		t.Fatalf("no token: %d %q", st, h.Peek("WWW-Authenticate"))
	}
	if st, h, _ := n.do(t, "GET", "x", "/fresh", nil, "Authorization", "Bearer x.y.z"); st != 401 || !strings.Contains(string(h.Peek("WWW-Authenticate")), `error="invalid_token"`) {
		t.Fatalf("bad token: %d %q", st, h.Peek("WWW-Authenticate"))
	}
	alice := "Bearer " + jwstest.UserToken(jwtSecret, "alice")
	st, _, body := n.do(t, "GET", "x", "/fresh", nil, "Authorization", alice)
	if st != 200 || !strings.HasSuffix(body, "for alice\n") {
		t.Fatalf("with a token: %d %q (the origin must see the identity)", st, body)
	}
	// Five per minute for alice: four more pass, the sixth is refused.
	for i := range 4 {
		if st, _, _ := n.do(t, "GET", "x", "/fresh", nil, "Authorization", alice); st != 200 {
			t.Fatalf("request %d: %d", i+2, st)
		}
	}
	st, h, _ := n.do(t, "GET", "x", "/fresh", nil, "Authorization", alice)
	retry, err := strconv.Atoi(string(h.Peek("Retry-After")))
	if st != 429 || err != nil || retry < 1 || retry > 60 {
		t.Fatalf("sixth: %d Retry-After %q", st, h.Peek("Retry-After"))
	}
	if !strings.HasPrefix(string(h.Peek("RateLimit-Policy")), `"per_user";q=5;w=60`) || !strings.Contains(string(h.Peek("RateLimit")), "r=0") {
		t.Errorf("429 fields: RateLimit-Policy %q RateLimit %q", h.Peek("RateLimit-Policy"), h.Peek("RateLimit"))
	}
	// Bob has his own budget.
	if st, _, _ := n.do(t, "GET", "x", "/fresh", nil, "Authorization", "Bearer "+jwstest.UserToken(jwtSecret, "bob")); st != 200 {
		t.Fatalf("bob: %d", st)
	}
}

func TestStackCache(t *testing.T) {
	n, a := startStack(t)
	// Each user may make 5 requests a minute; spread them over users.
	user := 0
	get := func(path string) (int, string, string, string) {
		user++
		st, h, body := n.do(t, "GET", "x", path, nil, "Authorization", "Bearer "+jwstest.UserToken(jwtSecret, fmt.Sprint("u", user)))
		return st, body, string(h.Peek("Cache-Status")), string(h.Peek("Age"))
	}

	// A miss, then a hit with Age.
	st, first, cs, _ := get("/fresh")
	if st != 200 || !strings.Contains(cs, "fwd=uri-miss") || !strings.Contains(cs, "stored") {
		t.Fatalf("first: %d %q", st, cs)
	}
	st, again, cs, age := get("/fresh")
	if st != 200 || again != first || !strings.Contains(cs, "hit") || age == "" {
		t.Fatalf("repeat: %d Cache-Status %q Age %q, same body %t", st, cs, age, again == first)
	}
	if hits := a.hits.Load(); hits != 1 {
		t.Errorf("the application saw %d requests for one cached URL", hits)
	}

	// Revalidation: once /revalidate is stale, the cache asks with
	// If-None-Match, gets 304 and serves its stored body.
	_, stored, _, _ := get("/revalidate")
	deadline := time.Now().Add(10 * time.Second)
	for a.notModified.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no conditional request reached the application in 10 s")
		}
		st, body, cs, _ := get("/revalidate")
		if st != 200 || body != stored {
			t.Fatalf("during revalidation: %d %q (Cache-Status %q), want the stored body", st, body, cs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// stale-if-error: with the application down, a stale /fragile is
	// served instead of its 503.
	_, fragile, _, _ := get("/fragile")
	a.fail.Store(true)
	deadline = time.Now().Add(10 * time.Second)
	for {
		st, body, cs, _ := get("/fragile")
		if strings.Contains(cs, "stale-if-error") {
			if st != 200 || body != fragile {
				t.Fatalf("stale-if-error served %d %q", st, body)
			}
			break
		}
		if st != 200 || time.Now().After(deadline) {
			t.Fatalf("no stale-if-error in 10 s: %d %q", st, cs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.fail.Store(false)

	// Purge by tag through the admin API: the next /fresh is a miss.
	if resp := n.post(t, "/purge?tag=fresh", "s3cret"); resp.StatusCode != 200 {
		t.Fatalf("purge: %d", resp.StatusCode)
	}
	if _, body, cs, _ := get("/fresh"); body == first || !strings.Contains(cs, "miss") {
		t.Fatalf("after purging its tag /fresh is still cached: %q", cs)
	}
	// And by URL: the scheme and host the client used, then the path.
	get("/fresh")
	if _, _, cs, _ := get("/fresh"); !strings.Contains(cs, "hit") {
		t.Fatalf("/fresh not cached again: %q", cs)
	}
	if resp := n.post(t, "/purge?url="+url.QueryEscape("http://x/fresh"), "s3cret"); resp.StatusCode != 200 {
		t.Fatalf("purge by URL: %d", resp.StatusCode)
	}
	if _, _, cs, _ := get("/fresh"); !strings.Contains(cs, "miss") {
		t.Fatalf("after purging its URL /fresh is still cached: %q", cs)
	}
}

// TestStackRateLimitFieldsOnHits: the rate limiter puts its RateLimit
// fields on the response in its request phase and has no response phase.
// They reach the client whether the origin answered or the cache plugin
// behind it served a hit, each time the requesting client's own count, and
// the cache never stores them (ABI section 4): a stored copy would come
// back on a later hit next to that client's fields.
func TestStackRateLimitFieldsOnHits(t *testing.T) {
	n, a := startStack(t)
	get := func(user string) (string, []string, []string) {
		t.Helper()
		st, h, _ := n.do(t, "GET", "x", "/fresh", nil, "Authorization", "Bearer "+jwstest.UserToken(jwtSecret, user))
		if st != 200 {
			t.Fatalf("%s: status %d", user, st)
		}
		var policy, limit []string
		for _, v := range h.PeekAll("RateLimit-Policy") {
			policy = append(policy, string(v))
		}
		for _, v := range h.PeekAll("RateLimit") {
			limit = append(limit, string(v))
		}
		return string(h.Peek("Cache-Status")), policy, limit
	}
	for i, c := range []struct {
		user, cache, limit string
	}{
		{"alice", "stored", `"per_user";r=4;t=12`}, // the miss
		{"alice", "hit", `"per_user";r=3;t=24`},
		{"bob", "hit", `"per_user";r=4;t=12`},
		{"bob", "hit", `"per_user";r=3;t=24`},
		{"carol", "hit", `"per_user";r=4;t=12`},
	} {
		cs, policy, limit := get(c.user)
		if !strings.Contains(cs, c.cache) {
			t.Fatalf("request %d (%s): Cache-Status %q, want %s", i+1, c.user, cs, c.cache)
		}
		if len(policy) != 1 || policy[0] != `"per_user";q=5;w=60` || len(limit) != 1 || limit[0] != c.limit {
			t.Errorf("request %d (%s, %s): RateLimit-Policy %q RateLimit %q, want exactly %q", i+1, c.user, c.cache, policy, limit, c.limit)
		}
	}
	if hits := a.hits.Load(); hits != 1 {
		t.Errorf("the application saw %d requests for one cached URL", hits)
	}
}
