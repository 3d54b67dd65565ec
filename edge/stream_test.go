package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// pattern is the deterministic body the streaming tests send and expect:
// byte i is a function of i, so either end can make or check it on the fly.
type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x*31 + x>>13)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// sumOf is the sha256 of the first n bytes of the pattern.
func sumOf(n int64) string {
	h := sha256.New()
	io.Copy(h, &pattern{n: n})
	return hex.EncodeToString(h.Sum(nil))
}

// streamApp is the application behind the origin in the streaming tests:
//
//	GET /download?n=N[&chunked=1]  N bytes of the pattern
//	PUT /upload                    the sha256 and length of the body
//	PUT /deny                      401, the body not read
//	PUT /limit                     413 after 100 KiB of the body, as
//	                               multer and busboy answer past a limit
//	PUT /duplex                    /upload's answer, its header sent
//	                               before the body is read (full duplex)
//	GET /events?n=K                K server-sent events, each sent once the
//	                               test took the one before (next)
type streamApp struct {
	next chan struct{}
}

func (a *streamApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/download":
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.Copy(w, &pattern{n: n})
	case "/upload":
		hashUpload(w, r)
	case "/duplex":
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		hashUpload(w, r)
	case "/deny":
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "no token", http.StatusUnauthorized)
	case "/limit":
		io.CopyN(io.Discard, r.Body, 100<<10)
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	case "/events":
		k, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := range k {
			if i > 0 {
				select {
				case <-a.next:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "data: event %d\n\n", i)
			f.Flush()
		}
	default:
		http.NotFound(w, r)
	}
}

// streamStack is an edge in front of an origin service proxying to a
// streamApp, all on loopback.
type streamStack struct {
	app  *streamApp
	edge string
	yaml string // the node's config
	node *testNode
	reg  *prometheus.Registry // the origin's metrics
}

// streamed is the threshold the stacks stream request and response bodies
// from: well under an envelope's 16 MiB, so the tests stay quick.
const streamed = 1 << 20

// startStreamStack starts the stack, with routeExtra added to its route
// (bounds, a chain).
func startStreamStack(t *testing.T, routeExtra string) *streamStack {
	t.Helper()
	return startStreamStackAt(t, streamed, routeExtra)
}

// startStreamStackAt starts the stack with the edge streaming request
// bodies past threshold.
func startStreamStackAt(t *testing.T, threshold int, routeExtra string) *streamStack {
	t.Helper()
	return startStreamStackWith(t, fmt.Sprintf("stream_threshold: %d", threshold), "  - {path: /, origin: app"+routeExtra+"}\n")
}

// startStreamStackWith starts the stack with the edge's limits and routes
// (YAML; the origin is app).
func startStreamStackWith(t *testing.T, limits, routes string) *streamStack {
	t.Helper()
	return startStreamStackServer(t, limits, routes, func(*http.Server) {})
}

// startStreamStackServer is startStreamStackWith with the application's
// server set up by setup first.
func startStreamStackServer(t *testing.T, limits, routes string, setup func(*http.Server)) *streamStack {
	t.Helper()
	app := &streamApp{next: make(chan struct{})}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app}
	setup(srv)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	reg := prometheus.NewRegistry()
	m := origin.NewMetrics(reg)
	p, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1,
		StreamThreshold: streamed, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: p, Metrics: m}, nil)
	yaml := fmt.Sprintf(`
limits: {%s}
origins:
  app: {addr: %q, key: %q}
routes:
%s`, limits, o.Addr, origintest.Key.Text(), routes)
	n := startNode(t, yaml)
	return &streamStack{app: app, edge: n.Addr, yaml: yaml, node: n, reg: reg}
}

func (s *streamStack) url(path string) string { return "http://" + s.edge + path }

// send writes req on a new connection to the edge, with a 30 s deadline
// (a hang guard) on it, closed when the test ends.
func (s *streamStack) send(t *testing.T, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", s.edge)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStreamDownload: a response larger than an envelope holds (16 MiB)
// reaches the client whole, streamed, whether the application gave its
// length or not.
func TestStreamDownload(t *testing.T) {
	s := startStreamStack(t, "")
	const size = 20 << 20
	for _, q := range []string{"", "&chunked=1"} {
		resp, err := http.Get(s.url("/download?n=" + strconv.Itoa(size) + q))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || n != size || hex.EncodeToString(h.Sum(nil)) != sumOf(size) {
			t.Fatalf("%s: status %d, %d bytes (%v), want 200 and the %d bytes sent", q, resp.StatusCode, n, err, size)
		}
	}
	// A small response still travels whole, in its envelope.
	resp, err := http.Get(s.url("/download?n=1000&chunked=1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 1000 || resp.ContentLength != 1000 {
		t.Fatalf("small chunked response: %d bytes, Content-Length %d: want it whole", len(b), resp.ContentLength)
	}
	if got := testutil.MetricSum(t, s.reg, "wedge_origin_streams_total", map[string]string{"kind": "response"}); got != 2 {
		t.Fatalf("streams_total{kind=response} = %v, want the 2 large ones", got)
	}
}

// hashUpload is the tests' applications' /upload: it answers with the
// length and sha256 of the body it received.
func hashUpload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Length", strconv.FormatInt(r.ContentLength, 10)) // -1: chunked
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
}

// put uploads size bytes of the pattern to /upload, with a length or
// chunked, and returns the status and the body of the answer: the app's
// "LENGTH SHA256" of what it received.
func (s *streamStack) put(t *testing.T, size int64, chunked bool) (int, string) {
	t.Helper()
	resp, b := s.upload(t, size, chunked)
	return resp.StatusCode, b
}

// upload is put with the whole response, its body read.
func (s *streamStack) upload(t *testing.T, size int64, chunked bool) (*http.Response, string) {
	t.Helper()
	var body io.Reader = &pattern{n: size}
	if chunked {
		body = struct{ io.Reader }{body} // no length: sent chunked
	}
	req, _ := http.NewRequest("PUT", s.url("/upload"), body)
	if !chunked {
		req.ContentLength = size
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestStreamUpload: request bodies past the threshold, with a length or
// chunked, reach the application whole, within a route maximum well above
// what an envelope holds.
func TestStreamUpload(t *testing.T) {
	s := startStreamStack(t, ", max_body_bytes: -1")
	const size = 20 << 20
	for _, chunked := range []bool{false, true} {
		if st, b := s.put(t, size, chunked); st != 200 || b != fmt.Sprintf("%d %s", size, sumOf(size)) {
			t.Fatalf("chunked %v: %d %q, want 200 and the body's sum", chunked, st, b)
		}
	}
}

// TestStreamBodiesPlugin: a plugin that reads a streamed body and sets it
// back (a redaction, an injection) learns the body's real length, or that
// it has none, and is refused the replacement: the application and the
// client get the whole body unchanged. Before, the plugin saw the prefix's
// length as the body's, and the application got the 64 KiB prefix of a
// 5 MB upload (the threshold of a chunked one), the client only the
// injected text of a 20 MiB download.
func TestStreamBodiesPlugin(t *testing.T) {
	s := startStreamStack(t, fmt.Sprintf(", max_body_bytes: -1, chain: [{file: %q}]", edgetest.ModuleFile(t, "../wasm/internal/testguests/bodies")))
	const refused = ": wedge: Request.SetBody: ErrTooLarge (past a host limit)"
	for _, tc := range []struct {
		size    int64
		chunked bool
		seen    string
	}{
		{5_000_000, false, "65536 of 5000000" + refused},
		{5_000_000, true, "65536 of 2147483647" + refused},
		{1000, false, "1000 of 1000"}, // whole: read and set back as before
	} {
		resp, b := s.upload(t, tc.size, tc.chunked)
		seen := resp.Header.Get("X-Request-Body")
		if resp.StatusCode != 200 || b != fmt.Sprintf("%d %s", tc.size, sumOf(tc.size)) || seen != tc.seen {
			t.Errorf("upload of %d, chunked %v: %d %q, the plugin saw %q: want 200, the body's sum and %q", tc.size, tc.chunked, resp.StatusCode, b, seen, tc.seen)
		}
	}
	const size = 20 << 20
	for _, tc := range []struct{ q, seen string }{
		{"", "0 of 20971520: wedge: Response.SetBody: ErrTooLarge (past a host limit)"},
		{"&chunked=1", "0 of 2147483647: wedge: Response.SetBody: ErrTooLarge (past a host limit)"},
	} {
		resp, err := http.Get(s.url("/download?n=" + strconv.Itoa(size) + tc.q))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		seen := resp.Header.Get("X-Response-Body")
		if err != nil || resp.StatusCode != 200 || n != size || hex.EncodeToString(h.Sum(nil)) != sumOf(size) || seen != tc.seen {
			t.Errorf("download%s: %d, %d bytes (%v), the plugin saw %q: want 200, the %d bytes sent and %q", tc.q, resp.StatusCode, n, err, seen, size, tc.seen)
		}
	}
}

// TestStreamUploadAnsweredEarly: the application's answer to a streamed
// upload it refused before reading it all (401 unread, 413 after 100 KiB)
// and closed the connection on reaches the client, for a body with a
// length and a chunked one, and the origin counts no upstream error.
// Before, the client sent the whole body and got 502 "upstream reset the
// connection".
func TestStreamUploadAnsweredEarly(t *testing.T) {
	s := startStreamStack(t, ", max_body_bytes: -1")
	const size = 24 << 20 // more than the sockets' buffers hold
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{{"/deny", 401, "no token\n"}, {"/limit", 413, "too large\n"}} {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = &pattern{n: size}
			if chunked {
				body = struct{ io.Reader }{body}
			}
			req, _ := http.NewRequest("PUT", s.url(tc.path), body)
			if !chunked {
				req.ContentLength = size
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s (chunked %v): %v", tc.path, chunked, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || string(b) != tc.body {
				t.Errorf("%s (chunked %v): %d %q, want the application's %d %q", tc.path, chunked, resp.StatusCode, b, tc.status, tc.body)
			}
		}
	}
	if got := testutil.MetricSum(t, s.reg, "wedge_origin_upstream_requests_total", map[string]string{"outcome": "error"}); got != 0 {
		t.Errorf("the origin counted %v upstream errors for the application's answers", got)
	}
	// A success that comes before the body's end, from an application
	// answering as it reads, still gets all of the body.
	req, _ := http.NewRequest("PUT", s.url("/duplex"), &pattern{n: size})
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %s", size, sumOf(size)); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("full duplex: %d %q, want 200 %q", resp.StatusCode, b, want)
	}
}

// TestStreamUploadLength: a streamed body the client gave a length
// reaches the application with that Content-Length (it came chunked, and
// applications that insist on a length refused it); a chunked one stays
// chunked.
func TestStreamUploadLength(t *testing.T) {
	s := startStreamStack(t, "")
	const size = 3 * streamed
	for _, chunked := range []bool{false, true} {
		want := strconv.Itoa(size)
		if chunked {
			want = "-1"
		}
		resp, b := s.upload(t, size, chunked)
		if got := resp.Header.Get("X-Content-Length"); resp.StatusCode != 200 || got != want || b != fmt.Sprintf("%d %s", size, sumOf(size)) {
			t.Errorf("chunked %v: %d, the application saw Content-Length %s (want %s), %q", chunked, resp.StatusCode, got, want, b)
		}
	}
}

// TestStreamUploadAroundPrefix: with a threshold under the prefix plugins
// see (64 KiB), bodies past the threshold but shorter than the prefix, as
// long as it and just past it, all arrive whole.
func TestStreamUploadAroundPrefix(t *testing.T) {
	s := startStreamStackAt(t, 4096, "")
	for _, size := range []int64{4097, 10000, 64 << 10, 64<<10 + 1, 200000} {
		if st, b := s.put(t, size, false); st != 200 || b != fmt.Sprintf("%d %s", size, sumOf(size)) {
			t.Fatalf("%d bytes: %d %q, want 200 and the body's sum", size, st, b)
		}
	}
}

// TestStreamSlowWholeBody: a body read whole (within the threshold) that
// arrives slower than read_timeout in all, but never stalls that long,
// is taken, as a phone's upload on a poor network; one that stalls longer
// gets 408. Before, read_timeout bounded all of a whole body's read.
func TestStreamSlowWholeBody(t *testing.T) {
	s := startStreamStackWith(t, fmt.Sprintf("stream_threshold: %d, read_timeout: 2s", streamed), "  - {path: /, origin: app}\n")
	body, _ := io.ReadAll(&pattern{n: 50000}) // whole: under the threshold
	send := func(pause time.Duration, pieces int) string {
		c, err := net.Dial("tcp4", s.edge)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
		step := len(body) / pieces
		for i := 0; i < len(body); i += step {
			if i > 0 {
				time.Sleep(pause) // the pace under test, not a wait for an event
			}
			if _, err := c.Write(body[i:min(i+step, len(body))]); err != nil {
				break // refused: the answer says why
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	// 30 pieces 80 ms apart: 2.3 s in all, each stall a 25th of read_timeout.
	if got, want := send(80*time.Millisecond, 30), fmt.Sprintf("200 %d %s", len(body), sumOf(int64(len(body)))); got != want {
		t.Fatalf("a slow body that never stalls for read_timeout: %q, want %q", got, want)
	}
	if got := send(3*time.Second, 2); !strings.HasPrefix(got, "408 ") {
		t.Fatalf("a body that stalls past read_timeout: %q, want 408", got)
	}
}

// TestRouteMaximumWhole: without streaming, a route's max_body_bytes
// under the node's still bounds the bodies read whole, chunked ones too.
func TestRouteMaximumWhole(t *testing.T) {
	s := startStreamStackAt(t, 0, ", max_body_bytes: 1000")
	for _, tc := range []struct {
		size    int64
		chunked bool
		want    int
	}{{1000, false, 200}, {1001, false, 413}, {1000, true, 200}, {1001, true, 413}} {
		if st, _ := s.put(t, tc.size, tc.chunked); st != tc.want {
			t.Fatalf("%d bytes, chunked %v: %d, want %d", tc.size, tc.chunked, st, tc.want)
		}
	}
}

// TestStreamRouteMaximum: a request body over the route's maximum is
// refused with 413 (by its length, or once a chunked one passes it), and
// a streamed response over the route's maximum is cut off mid-stream.
func TestStreamRouteMaximum(t *testing.T) {
	s := startStreamStack(t, ", max_body_bytes: 3000000, max_response_bytes: 5000000")
	// Only the header is sent: the 413 must not wait for the body.
	c, err := net.Dial("tcp4", s.edge)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 4<<20)
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hang guard, not a wait
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("declared body over the maximum: %v %v, want 413 before the body", resp, err)
	}
	// A chunked one: refused once it passes the maximum (the client may
	// see its upload cut instead), and its connection, with the rest of the
	// body unread, is closed rather than pooled for the next request.
	req, _ := http.NewRequest("PUT", s.url("/upload"), struct{ io.Reader }{&pattern{n: 4 << 20}})
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !resp.Close {
			t.Fatalf("chunked body over the maximum: %d %q (close %v), want 413 and the connection closed", resp.StatusCode, b, resp.Close)
		}
	}
	// Within the maximum, fine.
	req, _ = http.NewRequest("PUT", s.url("/upload"), &pattern{n: 2 << 20})
	req.ContentLength = 2 << 20
	if resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("body within the maximum: %v %v", resp, err)
	}

	resp, err = http.Get(s.url("/download?n=" + strconv.Itoa(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n > 5000000 {
		t.Fatalf("response over the maximum: %d bytes, err %v; want it cut off by 5000000", n, err)
	}
}

// TestStreamRouteMaximumChunked: a chunked body that passes the route's
// maximum as it streams to the origin is the client's fault, 413, not the
// origin's (it was 502), and the connection closes: the rest of the body
// is unread.
func TestStreamRouteMaximumChunked(t *testing.T) {
	s := startStreamStack(t, ", max_body_bytes: 3000000")
	c, err := net.Dial("tcp4", s.edge)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The body is written on its own goroutine: the edge stops reading it
	// at the maximum, and the write then blocks until the connection goes.
	go func() {
		w := bufio.NewWriter(c)
		fmt.Fprintf(w, "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 64 { // 4 MiB
			fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		w.WriteString("0\r\n\r\n")
		w.Flush()
	}()
	c.SetReadDeadline(time.Now().Add(time.Minute)) // a hang guard, not a wait
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("chunked body over the maximum: %d (close %v), want 413 and the connection closed", resp.StatusCode, resp.Close)
	}
}

// TestStreamEvents: server-sent events reach the client one by one: the
// application sends each only once the client has the one before, so
// buffering at any hop would stall the stream.
func TestStreamEvents(t *testing.T) {
	s := startStreamStack(t, "")
	const k = 5
	resp, err := http.Get(s.url("/events?n=" + strconv.Itoa(k)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	got := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "data: ") {
				got <- line
			}
		}
		close(got)
	}()
	for i := range k {
		select {
		case line := <-got:
			if want := fmt.Sprintf("data: event %d", i); line != want {
				t.Fatalf("got %q, want %q", line, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("event %d did not arrive: held back at some hop", i)
		}
		if i < k-1 {
			s.app.next <- struct{}{}
		}
	}
	testutil.Eventually(t, 10*time.Second, "the stream to end", func() bool {
		_, open := <-got
		return !open
	})
}

// TestStreamHTTP10: a body of unknown length reaches an HTTP/1.0 client
// unchunked, ended by the connection's close (RFC 9112 §6.1), events as
// they come; fasthttp chunked it, and the client read the framing as
// body bytes.
func TestStreamHTTP10(t *testing.T) {
	s := startStreamStack(t, "")
	const n = 3 * streamed // past the threshold: streamed
	c := s.send(t, "GET /download?n="+strconv.Itoa(n)+"&chunked=1 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	raw, err := io.ReadAll(c) // to the close: that is where the body ends
	if err != nil {
		t.Fatalf("reading to the close: %v", err)
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no header section in %q", raw[:min(len(raw), 200)])
	}
	h := strings.ToLower(string(head))
	if !strings.HasPrefix(h, "http/1.1 200 ") || strings.Contains(h, "transfer-encoding") || strings.Contains(h, "content-length") ||
		!strings.Contains(h, "\r\nconnection: close") || strings.Contains(h, "keep-alive") || !strings.Contains(h, "\r\ndate: ") {
		t.Fatalf("header section\n%s\nwant 200, Connection: close, a Date, no Transfer-Encoding and no Content-Length", head)
	}
	want, _ := io.ReadAll(&pattern{n: n})
	if !bytes.Equal(body, want) {
		t.Fatalf("body: %d bytes, want the %d the application sent, unframed", len(body), n)
	}

	// Events go out as they come, not at the end.
	br := bufio.NewReader(s.send(t, "GET /events?n=2 HTTP/1.0\r\nHost: x\r\n\r\n"))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("header section: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	if line, err := br.ReadString('\n'); err != nil || line != "data: event 0\n" {
		t.Fatalf("the first event before the second is sent: %q %v", line, err)
	}
	s.app.next <- struct{}{}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "\ndata: event 1\n\n" {
		t.Fatalf("the rest to the close: %q %v", rest, err)
	}
}

// TestStreamUploadStaleConnection: a chunked upload that finds its pooled
// upstream connection closed by the application meanwhile (an idle
// timeout, a restart) goes out on a new one. The stale connection was
// found only by the write of the body's first piece, which was then lost:
// 502, and the application never saw the request.
func TestStreamUploadStaleConnection(t *testing.T) {
	closed := make(chan struct{}, 16)
	s := startStreamStackServer(t, fmt.Sprintf("stream_threshold: %d", streamed), "  - {path: /, origin: app}\n", func(srv *http.Server) {
		srv.IdleTimeout = 50 * time.Millisecond
		srv.ConnState = func(_ net.Conn, cs http.ConnState) {
			if cs == http.StateClosed {
				closed <- struct{}{}
			}
		}
	})
	if st, _ := s.put(t, 1000, false); st != 200 {
		t.Fatalf("a small upload first, to pool a connection: %d", st)
	}
	select {
	case <-closed: // the application closed it, idle
	case <-time.After(time.Minute): // a hang guard
		t.Fatal("the application never closed its idle connection")
	}
	const size = 3 * streamed
	want := fmt.Sprintf("%d %s", size, sumOf(size))
	if st, body := s.put(t, size, true); st != 200 || body != want {
		t.Fatalf("a chunked upload on the stale connection: %d %q, want 200 %q", st, body, want)
	}
}

// TestStreamReloadKeepsLimits: limits take effect at a restart, so a
// reload that sets stream_threshold and a route maximum meant for
// streaming leaves bodies read whole within the running max_body_bytes.
// The routes took the new bounds alone: a 20 MiB body was read whole into
// memory, then refused by the envelope's bound with a 502.
func TestStreamReloadKeepsLimits(t *testing.T) {
	s := startStreamStackWith(t, "max_body_bytes: 1048576", "  - {path: /, origin: app}\n")
	yaml := strings.Replace(s.yaml, "max_body_bytes: 1048576", fmt.Sprintf("max_body_bytes: 1048576, stream_threshold: %d", streamed), 1)
	yaml = strings.Replace(yaml, "{path: /, origin: app}", "{path: /, origin: app, max_body_bytes: 268435456}", 1)
	cfg, err := edge.ParseConfig([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.node.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	// With Expect: the 413 comes before the body, which the client then
	// never sends (it would be cut off sending it otherwise).
	req, _ := http.NewRequest("PUT", s.url("/upload"), &pattern{n: 20 << 20})
	req.ContentLength = 20 << 20
	req.Header.Set("Expect", "100-continue")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("20 MiB after the reload: %d, want 413 (the running max_body_bytes)", resp.StatusCode)
	}
}

// TestStreamHTTP10Shutdown: Shutdown waits for an HTTP/1.0 response that
// ends with its connection, and says so when its context runs out first:
// cut by the process's exit, it would look complete to the client.
func TestStreamHTTP10Shutdown(t *testing.T) {
	s := startStreamStack(t, "")
	br := bufio.NewReader(s.send(t, "GET /events?n=2 HTTP/1.0\r\nHost: x\r\n\r\n"))
	for line := ""; line != "data: event 0\n"; {
		var err error
		if line, err = br.ReadString('\n'); err != nil {
			t.Fatalf("to the first event: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.node.Shutdown(ctx) }()
	// Once the listener is closed, Shutdown is under way: whichever of
	// its steps the end of its context meets, it says what it left.
	testutil.Eventually(t, 10*time.Second, "the listener to close", func() bool {
		nc, err := net.Dial("tcp4", s.edge)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "1 HTTP/1.0 responses still being written") {
		t.Fatalf("Shutdown: %v, want it to name the response still being written", err)
	}
	s.app.next <- struct{}{}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "\ndata: event 1\n\n" {
		t.Fatalf("the rest to the close: %q %v", rest, err)
	}
	// The stream over, a Shutdown has nothing to wait for.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.node.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestStreamWriteRefusedCounted: a streamed answer refused for the node's
// write bound is counted as the 503 the client gets, not the origin's 200:
// the error-rate SLO reads the counter.
func TestStreamWriteRefusedCounted(t *testing.T) {
	s := startStreamStackWith(t, fmt.Sprintf("stream_threshold: %d, max_write_bytes: 32768", streamed), "  - {path: /, origin: app}\n")
	resp, err := http.Get(s.url("/download?n=" + strconv.Itoa(3*streamed)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reg := s.node.Registry()
	if five, two := testutil.MetricSum(t, reg, "wedge_edge_requests_total", map[string]string{"code": "5xx"}),
		testutil.MetricSum(t, reg, "wedge_edge_requests_total", map[string]string{"code": "2xx"}); resp.StatusCode != 503 || five != 1 || two != 0 {
		t.Fatalf("client got %d; requests_total 5xx %v, 2xx %v: want the 503 counted", resp.StatusCode, five, two)
	}
}

// TestStreamCache: a streamed response is stored once its body has gone by
// whole, within the cache's per-object bound (the next request is a hit);
// one whose length is past it is not, and Cache-Status says why.
func TestStreamCache(t *testing.T) {
	s := startStreamStack(t, fmt.Sprintf(", chain: [{file: %q}]", plugins(t)["cache"]))
	get := func(n int) (string, int64) {
		t.Helper()
		resp, err := http.Get(s.url("/download?n=" + strconv.Itoa(n)))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		got, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || got != int64(n) || hex.EncodeToString(h.Sum(nil)) != sumOf(int64(n)) {
			t.Fatalf("%d bytes: status %d, got %d (%v)", n, resp.StatusCode, got, err)
		}
		return resp.Header.Get("Cache-Status"), resp.ContentLength
	}
	const small = 4 << 20 // streamed, and within the bound
	if cs, cl := get(small); !strings.Contains(cs, "stored") || cl != small {
		t.Fatalf("first: Cache-Status %q, Content-Length %d; want stored and the length", cs, cl)
	}
	if cs, _ := get(small); !strings.Contains(cs, "hit") {
		t.Fatalf("second: Cache-Status %q, want a hit", cs)
	}
	const big = 20 << 20
	if cs, _ := get(big); !strings.Contains(cs, "detail=too-large") {
		t.Fatalf("past the bound: Cache-Status %q, want detail=too-large", cs)
	}
	// Past it without a length beforehand: Cache-Status went out saying
	// stored, so the drop is counted where an operator can see it.
	resp, err := http.Get(s.url("/download?chunked=1&n=" + strconv.Itoa(big)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != big || !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
		t.Fatalf("%d bytes of unknown length: %d bytes, %v, Cache-Status %q", big, got, err, resp.Header.Get("Cache-Status"))
	}
	testutil.Eventually(t, 10*time.Second, "the dropped store counted", func() bool {
		return testutil.MetricSum(t, s.node.Registry(), "wedge_edge_stream_stores_dropped_total", nil) == 1
	})
}

// rawStatus sends req on a connection of its own, closes the connection's
// sending side, and returns the status of the answer.
func rawStatus(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestStreamChunkedCutOff: a chunked request body the client stops
// sending before its last chunk is refused (400), never forwarded to the
// origin as a complete shorter body; the same body with its last chunk
// goes through.
func TestStreamChunkedCutOff(t *testing.T) {
	s := startStreamStack(t, "")
	const head = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
	if st := rawStatus(t, s.edge, head); st != http.StatusBadRequest {
		t.Fatalf("cut off: status %d, want 400", st)
	}
	if st := rawStatus(t, s.edge, head+"0\r\n\r\n"); st != http.StatusOK {
		t.Fatalf("whole: status %d, want 200", st)
	}
}

// TestStreamLengthCutOff: a streamed body with a Content-Length that the
// client stops sending half-way never reaches the application as a whole
// one: fasthttp's request stream ended it with a clean EOF, and the
// application stored a cut upload as complete (200 with its length).
func TestStreamLengthCutOff(t *testing.T) {
	s := startStreamStack(t, "")
	const declared, sent = 3 * streamed, 2 * streamed // past the threshold: streamed
	part, _ := io.ReadAll(&pattern{n: sent})
	st := rawStatus(t, s.edge, fmt.Sprintf("PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", declared, part))
	if st == http.StatusOK || st/100 != 4 {
		t.Fatalf("cut off at %d of %d bytes: status %d, want a 4xx (the application must not answer a whole body)", sent, declared, st)
	}
	if st, got := s.put(t, declared, false); st != http.StatusOK || !strings.HasPrefix(got, strconv.Itoa(declared)+" ") {
		t.Fatalf("whole: %d %q", st, got)
	}
}

// TestRouteMaximumNormalized: a route's max_body_bytes bounds a chunked
// body read whole when the request names the route's path in another form
// (escaped, or absolute-form), as serve routes it.
func TestRouteMaximumNormalized(t *testing.T) {
	s := startStreamStackWith(t, "stream_threshold: 0", `
  - {path: /, origin: app}
  - {path: /upload, origin: app, max_body_bytes: 1000}
`)
	body := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 1001, strings.Repeat("a", 1001))
	for _, target := range []string{"/upload", "/%75pload", "http://" + s.edge + "/upload"} {
		req := "PUT " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		if st := rawStatus(t, s.edge, req); st != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: status %d, want 413", target, st)
		}
	}
}

// TestStreamCacheWrites: the body a streamed response gathers for the
// cache counts against max_write_bytes: past it the entry is dropped (the
// next request is not a hit), and the bytes go back once it is.
func TestStreamCacheWrites(t *testing.T) {
	s := startStreamStackWith(t, fmt.Sprintf("stream_threshold: %d, max_write_bytes: %d", streamed, 2<<20),
		fmt.Sprintf("  - {path: /, origin: app, chain: [{file: %q}]}\n", plugins(t)["cache"]))
	const size = 4 << 20 // streamed, within the cache's bound, past max_write_bytes
	for i := range 2 {
		resp, err := http.Get(s.url("/download?n=" + strconv.Itoa(size)))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		got, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || got != size || hex.EncodeToString(h.Sum(nil)) != sumOf(size) {
			t.Fatalf("request %d: status %d, got %d (%v)", i, resp.StatusCode, got, err)
		}
		if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "hit") {
			t.Fatalf("request %d: Cache-Status %q: stored past max_write_bytes", i, cs)
		}
	}
	testutil.Eventually(t, 20*time.Second, "write_bytes back to 0", func() bool {
		return metric(t, s.node, "wedge_edge_write_bytes") == 0
	})
}
