package edge_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// startCacheStack runs app behind an origin service and a node whose only
// plugin is the cache (built from plugins/cache), with the admin API's
// token s3cret (purges).
func startCacheStack(t *testing.T, app http.Handler) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: app}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	return startNode(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {file: %q}
`, origintest.Start(t, proxy).Addr, origintest.Key.Text(), plugins(t)["cache"]))
}

// swrApp answers /swr with v1, stale at once with a minute of
// stale-while-revalidate; every later request is a revalidation, which
// says it started and then waits for release before it answers v2, fresh
// for a minute.
type swrApp struct {
	hits    atomic.Int64
	started chan struct{}
	release chan struct{}
}

func (a *swrApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.hits.Add(1) == 1 {
		w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=60")
		fmt.Fprint(w, "v1")
		return
	}
	a.started <- struct{}{}
	select {
	case <-a.release:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Cache-Control", "max-age=60")
	fmt.Fprint(w, "v2")
}

// get200 is a GET for path that must answer 200; it reports failures
// instead of failing the test, for goroutines.
func (n *testNode) get200(path string) (body, cacheStatus string, err error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + n.Addr + path)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		return "", "", err
	}
	if resp.StatusCode() != 200 {
		return "", "", fmt.Errorf("status %d", resp.StatusCode())
	}
	return string(resp.Body()), string(resp.Header.Peek("Cache-Status")), nil
}

// TestEdgeStaleWhileRevalidate: in the stale-while-revalidate window the
// first request gets the stale response at once while the application is
// still working on the revalidation it caused; concurrent stale requests
// meanwhile cause no other; once it is done the entry is fresh with the new
// content (RFC 5861 §3).
func TestEdgeStaleWhileRevalidate(t *testing.T) {
	a := &swrApp{started: make(chan struct{}, 16), release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(a.release) }) }
	t.Cleanup(release) // never leave the application waiting
	n := startCacheStack(t, a)

	if body, cs, err := n.get200("/swr"); err != nil || body != "v1" || !strings.Contains(cs, "stored") {
		t.Fatalf("miss: %q %q %v", body, cs, err)
	}
	// The application holds the revalidation until release: the client has
	// its answer before that, or never.
	body, cs, err := n.get200("/swr")
	if err != nil || body != "v1" || !strings.Contains(cs, "hit") || !strings.HasSuffix(cs, "detail=stale-while-revalidate") {
		t.Fatalf("stale request: %q %q %v", body, cs, err)
	}
	select {
	case <-a.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no revalidation reached the application")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if body, cs, err := n.get200("/swr"); err != nil || body != "v1" || !strings.HasSuffix(cs, "detail=stale-while-revalidate") {
				errs <- fmt.Errorf("concurrent stale request: %q %q %v", body, cs, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h := a.hits.Load(); h != 2 {
		t.Fatalf("the application got %d requests while one revalidation was in flight, want 2", h)
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, cs, err := n.get200("/swr")
		if err != nil {
			t.Fatal(err)
		}
		if body == "v2" {
			if !strings.HasPrefix(cs, "wedge; hit; ttl=") || strings.Contains(cs, "detail") {
				t.Fatalf("refreshed entry: Cache-Status %q, want a fresh hit", cs)
			}
			break
		}
		if body != "v1" || time.Now().After(deadline) {
			t.Fatalf("no refresh in 10 s: %q %q", body, cs)
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a wait for the event
	}
	if h := a.hits.Load(); h != 2 {
		t.Fatalf("the application got %d requests, want the miss and one revalidation", h)
	}
}

// rangeBody is what /range serves: 1000 distinct-enough bytes.
var rangeBody = func() []byte {
	b := make([]byte, 1000)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// TestEdgeRange: a stored 200 answers single byte ranges with a 206 cut
// from it (RFC 9110 §14.2), as a client reads it off the wire.
func TestEdgeRange(t *testing.T) {
	var hits atomic.Int64
	n := startCacheStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Method == "POST" {
			fmt.Fprintf(w, "posted with Range %q", r.Header.Get("Range"))
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"r1"`)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(rangeBody)
	}))
	if resp, body := n.raw(t, "GET /range HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != string(rangeBody) {
		t.Fatalf("miss: %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, tc := range []struct {
		name, fields string
		status       int
		body         []byte
		contentRange string
	}{
		{"first 100", "Range: bytes=0-99\r\n", 206, rangeBody[:100], "bytes 0-99/1000"},
		{"last 10", "Range: bytes=-10\r\n", 206, rangeBody[990:], "bytes 990-999/1000"},
		{"from 100", "Range: bytes=100-\r\n", 206, rangeBody[100:], "bytes 100-999/1000"},
		{"past the end", "Range: bytes=1000-\r\n", 416, nil, "bytes */1000"},
		{"two ranges", "Range: bytes=0-1,5-6\r\n", 200, rangeBody, ""},
		{"If-Range matches", "Range: bytes=0-9\r\nIf-Range: \"r1\"\r\n", 206, rangeBody[:10], "bytes 0-9/1000"},
		{"If-Range does not", "Range: bytes=0-9\r\nIf-Range: \"r0\"\r\n", 200, rangeBody, ""},
	} {
		resp, body := n.raw(t, "GET /range HTTP/1.1\r\nHost: x\r\n"+tc.fields+"\r\n")
		cr := resp.Header.Get("Content-Range")
		if resp.StatusCode != tc.status || body != string(tc.body) || cr != tc.contentRange || resp.ContentLength != int64(len(tc.body)) {
			t.Errorf("%s: %d, Content-Range %q, Content-Length %d, body %d bytes; want %d %q %d", tc.name,
				resp.StatusCode, cr, resp.ContentLength, len(body), tc.status, tc.contentRange, len(tc.body))
		}
		if ct := resp.Header.Get("Content-Type"); tc.status != 416 && ct != "text/plain" {
			t.Errorf("%s: Content-Type %q", tc.name, ct)
		}
	}
	// HEAD has no ranges: the whole representation's header.
	if resp, _ := n.raw(t, "HEAD /range HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n"); resp.StatusCode != 200 || resp.Header.Get("Content-Range") != "" {
		t.Errorf("HEAD with Range: %d, Content-Range %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	if h := hits.Load(); h != 1 {
		t.Fatalf("the application got %d requests; ranges of a stored response must not reach it", h)
	}
	// Other methods are not the cache's to answer: the origin gets Range.
	if resp, body := n.raw(t, "POST /range HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\nContent-Length: 0\r\n\r\n"); resp.StatusCode != 200 || body != `posted with Range "bytes=0-99"` {
		t.Fatalf("POST with Range: %d %q", resp.StatusCode, body)
	}
	// The cached body is whole after every part cut from it.
	if resp, body := n.raw(t, "GET /range HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || !bytes.Equal([]byte(body), rangeBody) {
		t.Fatalf("after ranges: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestEdgePreconditionAnswersNotStored: a 416 for one client's Range past
// the end and a 412 for its failed If-Match answer that request, not the
// URL: with the freshness an origin gives every response (nginx's
// add_header ... always), they were stored and served to every plain GET.
func TestEdgePreconditionAnswersNotStored(t *testing.T) {
	const body = "console.log('app');"
	var hits atomic.Int64
	n := startCacheStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=31536000")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
			w.WriteHeader(416)
			return
		}
		if im := r.Header.Get("If-Match"); im != "" && im != `"v1"` {
			w.WriteHeader(412)
			return
		}
		fmt.Fprint(w, body)
	}))
	for _, tc := range []struct {
		path, fields string
		status       int
	}{
		{"/range.js", "Range: bytes=999999-\r\n", 416},
		{"/match.js", "If-Match: \"nope\"\r\n", 412},
	} {
		resp, _ := n.raw(t, "GET "+tc.path+" HTTP/1.1\r\nHost: x\r\n"+tc.fields+"\r\n")
		if resp.StatusCode != tc.status {
			t.Fatalf("%s with %q: %d, want the origin's %d", tc.path, tc.fields, resp.StatusCode, tc.status)
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=status") {
			t.Errorf("%s with %q: Cache-Status %q, want it not stored for its status", tc.path, tc.fields, cs)
		}
		for i := range 2 { // the first from the origin, stored; the second from the cache
			resp, got := n.raw(t, "GET "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || got != body {
				t.Errorf("%s after a %d, plain GET %d: %d %q, want the 200", tc.path, tc.status, i, resp.StatusCode, got)
			}
		}
	}
	if h := hits.Load(); h != 4 {
		t.Errorf("the application got %d requests, want 4: two refused, two 200s stored", h)
	}
}

// TestEdgePurgeDuringRevalidation: an unconditional GET whose stale entry
// is purged while the cache's own revalidation of it (If-None-Match it
// added) is at the origin gets the entry freshened by the 304, not the
// origin's bare 304 to a conditional the client never sent; and the purge
// keeps it out of the cache: the next GET fetches it afresh.
func TestEdgePurgeDuringRevalidation(t *testing.T) {
	var hits atomic.Int64
	started, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // never leave the application waiting
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=0") // stored, stale at once
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			started <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			w.WriteHeader(304)
			return
		}
		fmt.Fprint(w, "v1 body")
	})
	n := startCacheStack(t, app)
	const get = "GET /doc HTTP/1.1\r\nHost: x\r\n\r\n"
	if resp, body := n.raw(t, get); resp.StatusCode != 200 || body != "v1 body" {
		t.Fatalf("miss: %d %q", resp.StatusCode, body)
	}

	type answer struct {
		status   int
		body, cs string
		err      error
	}
	done := make(chan answer, 1)
	go func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://x/doc")
		hc := &fasthttp.HostClient{Addr: n.Addr}
		err := hc.DoTimeout(req, resp, 10*time.Second)
		done <- answer{resp.StatusCode(), string(resp.Body()), string(resp.Header.Peek("Cache-Status")), err}
	}()
	select {
	case <-started: // the cache's revalidation is at the application
	case <-time.After(10 * time.Second):
		t.Fatal("the stale entry was not revalidated")
	}
	if resp := n.post(t, "/purge?url="+url.QueryEscape("http://x/doc"), "s3cret"); resp.StatusCode != 200 {
		t.Fatalf("purge: %d", resp.StatusCode)
	}
	once.Do(func() { close(release) })
	a := <-done
	if a.err != nil || a.status != 200 || a.body != "v1 body" {
		t.Errorf("unconditional GET revalidated across a purge: %d %q, Cache-Status %q, %v; want the freshened 200", a.status, a.body, a.cs, a.err)
	}
	if resp, body := n.raw(t, get); resp.StatusCode != 200 || body != "v1 body" || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=uri-miss") {
		t.Errorf("after the purge: %d %q, Cache-Status %q; want a miss", resp.StatusCode, body, resp.Header.Get("Cache-Status"))
	}
	if h := hits.Load(); h != 3 {
		t.Errorf("the application got %d requests, want 3", h)
	}
}

// TestEdgeRevalidationKeepsContentType: a 304 without Content-Type (as
// applications send it) leaves a stored image an image; when the origin
// service listed fasthttp's default text/plain on the 304, the cache
// updated the entry with it and served the image as text from then on.
func TestEdgeRevalidationKeepsContentType(t *testing.T) {
	var conditional atomic.Int64
	n := startCacheStack(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0") // stored, stale at once: every hit revalidates
		w.Header().Set("ETag", `"e1"`)
		if r.Header.Get("If-None-Match") == `"e1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG"))
	}))
	for i := range 3 {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + n.Addr + "/img")
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if ct := string(resp.Header.ContentType()); resp.StatusCode() != 200 || ct != "image/png" || string(resp.Body()) != "\x89PNG" {
			t.Fatalf("request %d: %d, Content-Type %q, body %q (Cache-Status %q), want the image", i,
				resp.StatusCode(), ct, resp.Body(), resp.Header.Peek("Cache-Status"))
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	if c := conditional.Load(); c != 2 {
		t.Fatalf("the application saw %d conditional requests, want 2 (the test needs the stored entry revalidated)", c)
	}
}
