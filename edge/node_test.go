package edge_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// startOrigin runs an origin service with an in-process application that
// says who it is and what it got, and returns its address.
func startOrigin(t *testing.T, name string) string {
	t.Helper()
	return origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Content-Type"), []byte("text/plain"))
		resp.AddHeader([]byte("Set-Cookie"), []byte("a=1"))
		resp.AddHeader([]byte("Set-Cookie"), []byte("b=2"))
		resp.Body = fmt.Appendf(resp.Body, "%s: %s %s?%s pop=%s", name, req.Method, req.Path, req.Query, req.POP)
		if ua, ok := wire.Get(req.Header, "User-Agent"); ok {
			resp.Body = fmt.Appendf(resp.Body, " ua=%s", ua)
		}
		resp.Body = fmt.Appendf(resp.Body, " body=%d", len(req.Body))
	})).Addr
}

// hello is plugins/hello built to a .wasm file.
func hello(t *testing.T) string { return edgetest.ModuleFile(t, "../plugins/hello") }

// testNode is a node the tests of this package add their request helpers
// to.
type testNode struct{ *edgetest.Node }

func startNode(t testing.TB, yaml string) *testNode {
	t.Helper()
	return &testNode{edgetest.Start(t, yaml)}
}

func startNodeWith(t testing.TB, yaml string, opts edge.Options, ln net.Listener) *testNode {
	t.Helper()
	return &testNode{edgetest.StartWith(t, yaml, opts, ln)}
}

func config(originAddr, plugin string, extra string) string {
	return fmt.Sprintf(`
pop: test1
region: eu-test
admin: {token: s3cret}
limits: {max_header_bytes: 4096, max_body_bytes: 65536}
origins:
  app: {addr: %q, key: %q}
routes:
  - name: api
    host: api.example.com
    path: /api/
    origin: app
  - name: hello
    path: /
    origin: app
    chain:
      - {file: %q, config: {greeting: Hi}}
%s`, originAddr, origintest.Key.Text(), plugin, extra)
}

// get sends a request to the node and returns status, headers and body.
func (n *testNode) do(t *testing.T, method, host, target string, body []byte, hdr ...string) (int, *fasthttp.ResponseHeader, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + n.Addr + target)
	req.Header.SetMethod(method)
	req.Header.SetHost(host)
	req.UseHostHeader = true
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	h := new(fasthttp.ResponseHeader)
	resp.Header.CopyTo(h)
	return resp.StatusCode(), h, string(resp.Body())
}

func TestNodeRoutesAndChain(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "origin-1"), hello(t), ""))

	// The plugin answers by itself.
	st, h, body := n.do(t, "GET", "www.example.com", "/hello?name=Ada", nil)
	if st != 200 || body != "Hi, Ada!\n" || string(h.Peek("X-Hello")) != "Hi" {
		t.Fatalf("plugin answer: %d %q X-Hello=%q", st, body, h.Peek("X-Hello"))
	}
	// Through the chain to the origin: the response phase still runs.
	st, h, body = n.do(t, "POST", "www.example.com", "/other?q=1", []byte("abc"), "User-Agent", "test-agent")
	if want := "origin-1: POST /other?q=1 pop=test1 ua=test-agent body=3"; st != 200 || body != want {
		t.Fatalf("origin answer: %d %q, want %q", st, body, want)
	}
	if string(h.Peek("X-Hello")) != "Hi" {
		t.Errorf("response phase did not run on the origin's answer")
	}
	var cookies []string
	for k, v := range h.All() {
		if strings.EqualFold(string(k), "Set-Cookie") {
			cookies = append(cookies, string(v))
		}
	}
	if fmt.Sprint(cookies) != "[a=1 b=2]" {
		t.Errorf("Set-Cookie fields = %q", cookies)
	}
	// A route for one host, with no chain; its prefix matches only whole
	// segments, and host matching ignores case, port and the DNS root's
	// trailing dot (the same name: another route's chain must not run).
	for _, host := range []string{"API.example.com:8080", "api.example.com."} {
		if st, h, body := n.do(t, "GET", host, "/api/x", nil); st != 200 || !strings.HasPrefix(body, "origin-1: GET /api/x") || h.Peek("X-Hello") != nil {
			t.Fatalf("host route for %s: %d %q, X-Hello %q (the api route has no plugin)", host, st, body, h.Peek("X-Hello"))
		}
	}
	// Not under /api/, so the catch-all route with the plugin answers.
	if _, h, _ := n.do(t, "GET", "api.example.com", "/apix", nil); string(h.Peek("X-Hello")) != "Hi" {
		t.Errorf("/apix did not fall through to the catch-all route")
	}
	metrics := n.get(t, "/metrics", "")
	for _, want := range []string{`wedge_edge_requests_total{code="2xx",route="hello"} 3`, `wedge_edge_requests_total{code="2xx",route="api"} 2`, "wedge_plugin_hello_greetings_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s in\n%s", want, grepLines(metrics, "wedge_edge_requests"))
		}
	}
}

func TestNodeUnrouted(t *testing.T) {
	cfg := strings.Replace(config(startOrigin(t, "o"), hello(t), ""), "    path: /\n", "    path: /only/\n", 1)
	n := startNode(t, cfg)
	if st, _, body := n.do(t, "GET", "www.example.com", "/elsewhere", nil); st != 404 || !strings.Contains(body, "no route") {
		t.Fatalf("unrouted: %d %q", st, body)
	}
}

func TestNodeLimits(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	if st, _, _ := n.do(t, "GET", "x", "/", nil, "X-Big", strings.Repeat("a", 8000)); st != 431 {
		t.Errorf("oversized header: %d, want 431", st)
	}
	if st, _, _ := n.do(t, "POST", "x", "/", make([]byte, 100_000)); st != 413 {
		t.Errorf("oversized body: %d, want 413", st)
	}
	// And the node serves the next client.
	if st, _, _ := n.do(t, "GET", "x", "/hello", nil); st != 200 {
		t.Errorf("after refusals: %d", st)
	}
}

func TestNodeOriginDown(t *testing.T) {
	n := startNode(t, config(testutil.RefusedAddr(t), hello(t), ""))
	st, _, body := n.do(t, "GET", "x", "/nothing-answers-this", nil)
	if st != 502 || !strings.Contains(body, "origin app") {
		t.Fatalf("origin down: %d %q", st, body)
	}
}

func TestNodeReloadUnderLoad(t *testing.T) {
	first, second := startOrigin(t, "first"), startOrigin(t, "second")
	n := startNode(t, config(first, hello(t), ""))
	var failed atomic.Int64
	var sawSecond atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				st, _, body := n.do(t, "GET", "x", "/r", nil)
				switch {
				case st != 200:
					failed.Add(1)
				case strings.HasPrefix(body, "second:"):
					sawSecond.Store(true)
				}
			}
		})
	}
	for i := range 2 {
		target := second
		if i%2 == 1 {
			target = first
		}
		cfg, err := edge.ParseConfig([]byte(config(target, hello(t), "")), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Reload(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := edge.ParseConfig([]byte(config(second, hello(t), "")), t.TempDir())
	if err := n.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !sawSecond.Load() && time.Now().Before(deadline) {
		n.do(t, "GET", "x", "/r", nil)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d requests failed across reloads", failed.Load())
	}
	if st, _, body := n.do(t, "GET", "x", "/r", nil); st != 200 || !strings.HasPrefix(body, "second:") {
		t.Errorf("after reloads: %d %q", st, body)
	}
	// A config that does not load leaves the node as it was.
	bad, _ := edge.ParseConfig([]byte(strings.Replace(config(first, hello(t), ""), "greeting: Hi", "greeting: 7", 1)), t.TempDir())
	if err := n.Reload(context.Background(), bad); err == nil {
		t.Fatal("a plugin config the plugin refuses reloaded fine")
	}
	if _, _, body := n.do(t, "GET", "x", "/r", nil); !strings.HasPrefix(body, "second:") {
		t.Errorf("a failed reload changed the node: %q", body)
	}
}

func TestNodeAdmin(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	if got := n.get(t, "/health", ""); got != "ok\n" {
		t.Errorf("/health = %q", got)
	}
	if got := n.get(t, "/ready", ""); got != "ready\n" {
		t.Errorf("/ready = %q", got)
	}
	for _, token := range []string{"", "wrong"} {
		resp := n.post(t, "/purge?tag=x", token)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("purge with token %q: %d", token, resp.StatusCode)
		}
	}
	if resp := n.post(t, "/purge?tag=x", "s3cret"); resp.StatusCode != 200 {
		t.Errorf("purge with the token: %d", resp.StatusCode)
	}
	if resp := n.post(t, "/reload", "s3cret"); resp.StatusCode != 501 {
		t.Errorf("reload without a file: %d", resp.StatusCode)
	}
	// The scheme in any case and more than one space (RFC 9110 §11.1, RFC
	// 6750 §2.1); and every profile the pprof index links to.
	call := func(method, path, authz string) int {
		req, _ := http.NewRequest(method, n.Admin.URL+path, nil)
		req.Header.Set("Authorization", authz)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, authz := range []string{"bearer s3cret", "BEARER  s3cret"} {
		if st := call("POST", "/purge?tag=x", authz); st != 200 {
			t.Errorf("purge with %q: %d", authz, st)
		}
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof/trace?seconds=0", "/debug/pprof/heap"} {
		if st := call("GET", p, "Bearer s3cret"); st != 200 {
			t.Errorf("GET %s: %d", p, st)
		}
		if st := call("GET", p, ""); st != 401 {
			t.Errorf("GET %s without the token: %d", p, st)
		}
	}
}

func (n *testNode) get(t *testing.T, path, token string) string {
	t.Helper()
	resp, err := http.Get(n.Admin.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (n *testNode) post(t *testing.T, path, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", n.Admin.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNodeMaxConns: past max_conns a new connection gets a clear 503 and is
// closed, and the connections within the limit keep being served.
func TestNodeMaxConns(t *testing.T) {
	cfg := strings.Replace(config(startOrigin(t, "o"), hello(t), ""), "limits: {", "limits: {max_conns: 2, ", 1)
	n := startNode(t, cfg)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		buf := make([]byte, 256)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if m, _ := c.Read(buf); !strings.HasPrefix(string(buf[:m]), "HTTP/1.1 200") {
			t.Fatalf("within the limit: %q", buf[:m])
		}
		held = append(held, c)
	}
	extra, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprintf(extra, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(extra)
	if !strings.HasPrefix(string(got), "HTTP/1.1 503") {
		t.Fatalf("past the limit: %q", got)
	}
	fmt.Fprintf(held[0], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 256)
	if m, _ := held[0].Read(buf); !strings.HasPrefix(string(buf[:m]), "HTTP/1.1 200") {
		t.Fatalf("a held connection after the refusal: %q", buf[:m])
	}
}

// TestPluginAnswersKeepTheirBodies: a body a plugin answers with goes to
// fasthttp in a pooled buffer that returns to the pool only once written.
// The first answer is held unwritten (as for a client that does not read)
// while the next request, on the same goroutine, gets the exchange the
// first one used back from its pool and answers with another body.
func TestPluginAnswersKeepTheirBodies(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	h := n.Handler()
	held, r1 := handlerCtx(t, []byte("GET /hello?name=first HTTP/1.1\r\nHost: www.example.com\r\n\r\n"))
	r1.CopyTo(&held.Request)
	h(held)
	for i := range 20 {
		ctx, r := handlerCtx(t, []byte(fmt.Sprintf("GET /hello?name=later%03d HTTP/1.1\r\nHost: www.example.com\r\n\r\n", i)))
		r.CopyTo(&ctx.Request)
		h(ctx)
		if want := fmt.Sprintf("Hi, later%03d!\n", i); string(ctx.Response.Body()) != want {
			t.Fatalf("body %q, want %q", ctx.Response.Body(), want)
		}
		ctx.Response.Reset()
	}
	if got := string(held.Response.Body()); got != "Hi, first!\n" {
		t.Fatalf("the held answer's body became %q", got)
	}
}
