package edge_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// tlsStack is an edge node serving TLS in front of an origin service that
// proxies to an application: the full chain, with what each hop saw.
type tlsStack struct {
	n        *testNode
	addr     string // the TLS listener's
	certFile string
	roots    *x509.CertPool

	// The application holds requests for /hold/* (and the second event of
	// /events) until a value arrives on release (closed when the test
	// ends); held counts them.
	held    atomic.Int64
	release chan struct{}

	mu  sync.Mutex
	app []string // what the application saw: "METHOD PATH|X-Seen|Forwarded|body length"
}

// startTLSStack starts the chain with the node's limits ("" for a 4 KiB
// header and 64 KiB body limit) and tlsExtra appended to its tls section
// (e.g. "  http3: {enabled: true}\n").
func startTLSStack(t *testing.T, limits, tlsExtra string) *tlsStack {
	t.Helper()
	if limits == "" {
		limits = "max_header_bytes: 4096, max_body_bytes: 65536"
	}
	s := &tlsStack{release: make(chan struct{}, 1024)}
	appLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			// Two events, the second once the test has the first.
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
			<-s.release
			io.WriteString(w, "data: 2\n\n")
			return
		}
		if strings.HasPrefix(r.URL.Path, "/hold/") {
			s.held.Add(1)
			<-s.release
			return
		}
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.app = append(s.app, fmt.Sprintf("%s %s|%s|%s|%d", r.Method, r.URL.Path, r.Header.Get("X-Seen"), r.Header.Get("Forwarded"), len(b)))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "app: %s %s body=%d", r.Method, r.URL.Path, len(b))
	})}
	go app.Serve(appLn)
	t.Cleanup(func() { app.Close() })
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + appLn.Addr().String()}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	o := origintest.Start(t, proxy)
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, "edge.test", 1)
	s.certFile = certFile
	s.roots = x509.NewCertPool()
	s.roots.AddCert(cert)
	s.n = startNode(t, fmt.Sprintf(`
limits: {%s}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {file: %q}
      - {file: %q, config: {greeting: Hi}}
tls:
  certs:
    - {cert: %s, key: %s}
%s`, limits, o.Addr, origintest.Key.Text(), edgetest.ModuleFile(t, "../wasm/internal/testguests/seen"), hello(t), certFile, keyFile, tlsExtra))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go s.n.ServeTLS(ln)
	t.Cleanup(func() { close(s.release) }) // before the node shuts down
	return s
}

// seenAs reports whether what the application saw is prefix, a client
// port, then suffix.
func seenAs(app, prefix, suffix string) bool {
	port, ok := strings.CutPrefix(app, prefix)
	if !ok {
		return false
	}
	port, ok = strings.CutSuffix(port, suffix)
	return ok && port != "" && strings.Trim(port, "0123456789") == ""
}

func (s *tlsStack) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: "edge.test", RootCAs: s.roots}
}

// seen returns what the application saw, and forgets it.
func (s *tlsStack) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.app
	s.app = nil
	return app
}

// fetch sends one request with c and returns the response with its body
// read.
func fetch(t *testing.T, c *http.Client, method, url string, body []byte, hdr ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestHTTP2FullChain sends HTTP/2 requests with Go's client through a
// node's TLS listener, its plugin chain, a real origin service and the
// application behind it: the plugin answers, the origin path, the limits
// HTTP/1.1 has, and HTTP/1.1 still offered on the same listener.
func TestHTTP2FullChain(t *testing.T) {
	s := startTLSStack(t, "", "")
	h2 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	base := "https://" + s.addr

	// A plugin's answer.
	resp, body := fetch(t, h2, "GET", base+"/hello?name=h2", nil)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || body != "Hi, h2!\n" {
		t.Fatalf("plugin answer: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if resp.Header.Get("Date") == "" || resp.Header.Get("Alt-Svc") != "" {
		t.Fatalf("plugin answer: Date %q, Alt-Svc %q (no HTTP/3 configured)", resp.Header.Get("Date"), resp.Header.Get("Alt-Svc"))
	}
	// The origin path, with a body: plugins saw HTTP/2.0 over https from
	// the client's address, and so did the application.
	resp, body = fetch(t, h2, "POST", base+"/up", []byte("0123456789"))
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || body != "app: POST /up body=10" {
		t.Fatalf("origin answer: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if ct, hi := resp.Header.Get("Content-Type"), resp.Header.Get("X-Hello"); ct != "text/plain" || hi != "Hi" {
		t.Fatalf("Content-Type %q, want the application's; X-Hello %q, want the response phase's", ct, hi)
	}
	if app := s.seen(); len(app) != 1 || !seenAs(app[0], "POST /up|HTTP/2.0 https 127.0.0.1:", `|for=127.0.0.1;proto=https;host="`+s.addr+`"|10`) {
		t.Fatalf("the application saw %q", app)
	}
	// The limits of HTTP/1.1: max_body_bytes (64 KiB in config) and
	// max_header_bytes (4 KiB); neither reaches the origin.
	if resp, _ := fetch(t, h2, "POST", base+"/up", bytes.Repeat([]byte("x"), 65537)); resp.StatusCode != 413 {
		t.Fatalf("a body over max_body_bytes: %d, want 413", resp.StatusCode)
	}
	// Go's client will not send a header list over the limit the node
	// advertises (SETTINGS_MAX_HEADER_LIST_SIZE): a raw one does.
	a := newAttacker(t, s, false)
	big := strings.Repeat("b", 1000)
	a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headers("/up", "x-1", big, "x-2", big, "x-3", big, "x-4", big, "x-5", big),
		EndStream: true, EndHeaders: true})
	a.flush()
	if st := a.status(1); st != "431" {
		t.Fatalf("a header over max_header_bytes: %s, want 431", st)
	}
	// The path rules of HTTP/1.1: one that normalizes otherwise is refused.
	if resp, _ := fetch(t, h2, "GET", base+"/public/%2e%2e/admin", nil); resp.StatusCode != 400 {
		t.Fatalf("a path not in normal form: %d, want 400", resp.StatusCode)
	}
	if app := s.seen(); len(app) != 0 {
		t.Fatalf("refused requests reached the application: %q", app)
	}

	// HTTP/1.1 on the same listener, for clients that do not offer h2.
	h1 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig()}}
	defer h1.CloseIdleConnections()
	resp, body = fetch(t, h1, "GET", base+"/hello?name=h1", nil)
	if resp.ProtoMajor != 1 || body != "Hi, h1!\n" {
		t.Fatalf("HTTP/1.1: %s %q", resp.Proto, body)
	}
	for proto, want := range map[string]float64{"h2": 4, "http/1.1": 1} {
		if got := testutil.MetricSum(t, s.n.Registry(), "wedge_edge_protocol_requests_total", map[string]string{"protocol": proto}); got != want {
			t.Errorf("protocol_requests_total{protocol=%q} = %v, want %v", proto, got, want)
		}
	}
}

// TestHTTP2Curl is curl --http2 through the full chain.
func TestHTTP2Curl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl")
	}
	s := startTLSStack(t, "", "")
	host, port, _ := net.SplitHostPort(s.addr)
	out, err := exec.Command(curl, "-sS", "--http2", "--cacert", s.certFile, "--resolve", "edge.test:"+port+":"+host,
		"-w", " %{http_version}", "--data", "hello", "https://edge.test:"+port+"/via-curl").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if got := string(out); got != "app: POST /via-curl body=5 2" {
		t.Fatalf("curl --http2: %q, want the application's answer over HTTP/2", got)
	}
	if app := s.seen(); len(app) != 1 || !seenAs(app[0], "POST /via-curl|HTTP/2.0 https 127.0.0.1:", `|for=127.0.0.1;proto=https;host="edge.test:`+port+`"|5`) {
		t.Fatalf("the application saw %q", app)
	}
}

// TestHTTP2Streams streams bodies both ways over HTTP/2 with
// stream_threshold set: uploads past it, of known and unknown length, reach
// the application whole; one past the route's maximum is refused; and an
// event stream reaches the client event by event.
func TestHTTP2Streams(t *testing.T) {
	s := startTLSStack(t, "max_body_bytes: 262144, stream_threshold: 16384", "")
	h2 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	base := "https://" + s.addr
	body := bytes.Repeat([]byte("0123456789"), 20000)
	for _, unknown := range []bool{false, true} {
		var rd io.Reader = bytes.NewReader(body)
		if unknown {
			rd = io.MultiReader(rd) // no length: the request has none either
		}
		req, _ := http.NewRequest("POST", base+"/up", rd)
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(got) != "app: POST /up body=200000" {
			t.Fatalf("upload (unknown length %v): %s %d %q", unknown, resp.Proto, resp.StatusCode, got)
		}
	}
	if resp, _ := fetch(t, h2, "POST", base+"/up", bytes.Repeat([]byte("x"), 300000)); resp.StatusCode != 413 {
		t.Fatalf("a body over the route's maximum: %d, want 413", resp.StatusCode)
	}

	resp, err := h2.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	event := func() string {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		br.ReadString('\n') // the empty line that ends the event
		return line
	}
	if e := event(); e != "data: 1\n" {
		t.Fatalf("first event %q", e)
	}
	s.release <- struct{}{} // only now does the application send the second
	if e := event(); e != "data: 2\n" {
		t.Fatalf("second event %q", e)
	}
}
