package edge_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// wsApp is the application behind the tunnels: a WebSocket echo on
// coder/websocket. A text message "close N" makes it close with code N,
// "send N" makes it send a binary message of N bytes. A plain GET is
// answered 200, cacheable; so is, in its 101, a handshake.
type wsApp struct {
	addr              string // where it listens, for a direct connection
	handshakes, plain atomic.Int64
	cookie            atomic.Value              // the last handshake's Cookie, a string
	closed            chan websocket.StatusCode // what each connection ended with
	// GET /hold says it arrived on held, then waits for hold to close: a
	// long poll; a handshake on /hold/ws does the same before it switches.
	held, hold chan struct{}
}

func (a *wsApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	if r.URL.Path == "/hold" || r.URL.Path == "/hold/ws" {
		a.held <- struct{}{}
		<-a.hold
		if r.URL.Path == "/hold" {
			fmt.Fprintln(w, "released")
			return
		}
	}
	if r.Header.Get("Upgrade") == "" {
		a.plain.Add(1)
		fmt.Fprintln(w, "plain")
		return
	}
	a.handshakes.Add(1)
	a.cookie.Store(r.Header.Get("Cookie"))
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled,
		OriginPatterns: []string{"*"}}) // which pages may connect is the edge's to check
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	ctx := context.Background()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			a.closed <- websocket.CloseStatus(err)
			return
		}
		var n int
		switch {
		case typ == websocket.MessageText && bytes.HasPrefix(msg, []byte("close ")):
			fmt.Sscan(string(msg[6:]), &n)
			c.Close(websocket.StatusCode(n), "the app closes")
			a.closed <- websocket.StatusCode(n)
			return
		case typ == websocket.MessageText && bytes.HasPrefix(msg, []byte("send ")):
			fmt.Sscan(string(msg[5:]), &n)
			err = c.Write(ctx, websocket.MessageBinary, make([]byte, n))
		default:
			err = c.Write(ctx, typ, msg)
		}
		if err != nil {
			a.closed <- websocket.CloseStatus(err)
			return
		}
	}
}

// startWS starts the app, an origin service proxying to it and an edge
// node in front with the limits and chain given (YAML, "" for none).
func startWS(t testing.TB, limits, chain string) (*testNode, *wsApp) {
	n, a, _ := startWSConfig(t, limits, chain, "")
	return n, a
}

// startWSConfig is startWS that also returns the node's config, with
// extra (top-level YAML) added to it.
func startWSConfig(t testing.TB, limits, chain, extra string) (*testNode, *wsApp, string) {
	t.Helper()
	a := &wsApp{closed: make(chan websocket.StatusCode, 16), held: make(chan struct{}, 1), hold: make(chan struct{})}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	hs := &http.Server{Handler: a}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	o := origintest.Start(t, proxy)
	yaml := wsConfig(o.Addr, limits, chain) + extra
	return startNode(t, yaml), a, yaml
}

func wsConfig(originAddr, limits, chain string) string {
	if chain != "" {
		chain = "\n    chain: " + chain
	}
	return fmt.Sprintf(`
limits: {websocket: {%s}}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app%s
`, limits, originAddr, origintest.Key.Text(), chain)
}

// dial opens a WebSocket to the node, failing the test if it cannot.
func dial(t testing.TB, n *testNode, hdr ...string) *websocket.Conn {
	t.Helper()
	c, resp, err := dialWS(n, hdr...)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func dialWS(n *testNode, hdr ...string) (*websocket.Conn, *http.Response, error) {
	return dialURL("ws://"+n.Addr+"/ws", hdr...)
}

func dialURL(url string, hdr ...string) (*websocket.Conn, *http.Response, error) {
	return dialWith(nil, url, hdr...)
}

// dialWith dials url with the HTTP client hc (nil: the default one).
func dialWith(hc *http.Client, url string, hdr ...string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc,
		CompressionMode: websocket.CompressionDisabled})
	if err == nil {
		c.SetReadLimit(64 << 20)
	}
	return c, resp, err
}

// echo sends msg and reads the answer, which must be msg again.
func echo(t testing.TB, c *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Write(ctx, typ, msg); err != nil {
		t.Fatal(err)
	}
	gt, got, err := c.Read(ctx)
	if err != nil || gt != typ || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes: type %v, %d bytes, %v", len(msg), gt, len(got), err)
	}
}

// closedWith reads from c until it fails and returns the close code.
func closedWith(t testing.TB, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func appClosed(t testing.TB, a *wsApp) websocket.StatusCode {
	t.Helper()
	select {
	case code := <-a.closed:
		return code
	case <-time.After(time.Minute):
		t.Fatal("the app's connection never ended")
		return 0
	}
}

func tunnelMetric(t testing.TB, n *testNode, name string, labels map[string]string) float64 {
	return testutil.MetricSum(t, n.Registry(), name, labels)
}

func TestTunnelEcho(t *testing.T) {
	n, a := startWS(t, "max_message_bytes: 16777216", "")
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("hello"))
	echo(t, c, websocket.MessageBinary, []byte{0, 1, 2, 0xff})
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	echo(t, c, websocket.MessageBinary, big)

	// A message in fragments: coder/websocket writes a frame per Write.
	ctx := context.Background()
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"frag", "ment", "ed"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != "fragmented" {
		t.Fatalf("fragmented message: %q %v", got, err)
	}

	// Ping, answered by the app, the pong read by a Read in progress.
	pinged := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		pinged <- c.Ping(pctx)
	}()
	// Echoes keep a Read running until the pong has come.
	for i := 0; ; i++ {
		echo(t, c, websocket.MessageText, []byte("while pinging"))
		select {
		case err := <-pinged:
			if err != nil {
				t.Fatalf("ping: %v", err)
			}
		default:
			if i < 10000 {
				continue
			}
			t.Fatal("no pong after 10,000 echoes")
		}
		break
	}

	// Close codes cross both ways.
	if err := c.Close(4001, "the client closes"); err != nil {
		t.Fatalf("close: %v", err)
	}
	if code := appClosed(t, a); code != 4001 {
		t.Fatalf("the app saw close %d, want 4001", code)
	}
	c2 := dial(t, n)
	if err := c2.Write(ctx, websocket.MessageText, []byte("close 4002")); err != nil {
		t.Fatal(err)
	}
	if code := closedWith(t, c2); code != 4002 {
		t.Fatalf("the client saw close %d, want 4002", code)
	}
	<-a.closed

	testutil.Eventually(t, time.Minute, "both tunnels counted closed", func() bool {
		return tunnelMetric(t, n, "wedge_edge_tunnels_open", nil) == 0 &&
			tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "client"}) == 1 &&
			tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "upstream"}) == 1
	})
	for _, dir := range []string{"to_origin", "to_client"} {
		if b := tunnelMetric(t, n, "wedge_edge_tunnel_bytes_total", map[string]string{"direction": dir}); b < float64(len(big)) {
			t.Errorf("%s: %v bytes counted, fewer than the 10 MiB message", dir, b)
		}
	}
	if a.handshakes.Load() != 2 {
		t.Errorf("the app saw %d handshakes, want 2", a.handshakes.Load())
	}
}

func TestTunnelMessageLimit(t *testing.T) {
	n, a := startWS(t, "max_message_bytes: 1048576", "")
	ctx := context.Background()
	tooBig := func(name string, send func(c *websocket.Conn)) {
		t.Helper()
		c := dial(t, n)
		echo(t, c, websocket.MessageBinary, make([]byte, 1<<20)) // at the limit
		go send(c)
		if code := closedWith(t, c); code != websocket.StatusMessageTooBig {
			t.Fatalf("%s: the client saw close %d, want 1009", name, code)
		}
		appClosed(t, a) // its side was closed
	}
	tooBig("one frame", func(c *websocket.Conn) { c.Write(ctx, websocket.MessageBinary, make([]byte, 1<<20+1)) })
	tooBig("fragments", func(c *websocket.Conn) {
		w, err := c.Writer(ctx, websocket.MessageBinary)
		if err != nil {
			return
		}
		w.Write(make([]byte, 600<<10))
		w.Write(make([]byte, 600<<10))
		w.Close()
	})
	tooBig("from the app", func(c *websocket.Conn) { c.Write(ctx, websocket.MessageText, []byte("send 1048577")) })
	testutil.Eventually(t, time.Minute, "three closes for too_big", func() bool {
		return tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "too_big"}) == 3
	})
}

func TestTunnelMaxTunnels(t *testing.T) {
	n, _ := startWS(t, "max_tunnels: 1", "")
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("first"))
	_, resp, err := dialWS(n)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a tunnel past max_tunnels: %v %+v, want 503 with Retry-After", err, resp)
	}
	if m := tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "limit"}); m != 1 {
		t.Fatalf("closes for limit: %v", m)
	}
	c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, time.Minute, "a slot free again", func() bool {
		c, _, err := dialWS(n)
		if err == nil {
			c.CloseNow()
		}
		return err == nil
	})
}

// TestTunnelMaxTunnelsPerClient: one client's tunnels stop at
// max_tunnels_per_client, short of max_tunnels, and another client still
// gets one; a tunnel that ends, whichever side ends it, gives its client's
// slot back. One address could hold every slot of the node, and every
// other client's handshake was refused.
func TestTunnelMaxTunnelsPerClient(t *testing.T) {
	n, _ := startWS(t, "max_tunnels: 10, max_tunnels_per_client: 2", "")
	first := []*websocket.Conn{dial(t, n), dial(t, n)}
	for _, c := range first {
		echo(t, c, websocket.MessageText, []byte("open"))
	}
	refused := func(what string) {
		t.Helper()
		c, resp, err := dialWS(n)
		if err == nil {
			c.CloseNow()
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: %v %+v, want 503 with Retry-After", what, err, resp)
		}
	}
	refused("a third tunnel from one client")
	if m := tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "client_limit"}); m != 1 {
		t.Fatalf("closes for client_limit: %v, want 1", m)
	}
	if m := tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "limit"}); m != 0 {
		t.Fatalf("closes for limit: %v, want 0 (the node had room)", m)
	}

	// Another address is another client.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, _, err := dialWith(&http.Client{Transport: &http.Transport{DialContext: d.DialContext}}, "ws://"+n.Addr+"/ws")
	if err != nil {
		t.Fatalf("another client's tunnel: %v", err)
	}
	t.Cleanup(func() { other.CloseNow() })
	echo(t, other, websocket.MessageText, []byte("other"))

	// A slot comes back as the count goes down, not before.
	again := func(what string) {
		t.Helper()
		testutil.Eventually(t, time.Minute, what, func() bool {
			c, _, err := dialWS(n)
			if err == nil {
				t.Cleanup(func() { c.CloseNow() })
			}
			return err == nil
		})
		refused("past the bound again after " + what)
	}
	first[0].Close(websocket.StatusNormalClosure, "")
	again("a slot back once the client closed")
	if err := first[1].Write(context.Background(), websocket.MessageText, []byte("close 1000")); err != nil {
		t.Fatal(err)
	}
	if code := closedWith(t, first[1]); code != websocket.StatusNormalClosure {
		t.Fatalf("the client saw close %d, want the app's 1000", code)
	}
	again("a slot back once the app closed")
}

func TestTunnelIdle(t *testing.T) {
	n, a := startWS(t, "idle_timeout: 200ms", "")
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("then nothing"))
	if code := closedWith(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("the client saw close %d, want 1001", code)
	}
	if code := appClosed(t, a); code != websocket.StatusGoingAway {
		t.Fatalf("the app saw close %d, want 1001", code)
	}
	testutil.Eventually(t, time.Minute, "a close for idle", func() bool {
		return tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "idle"}) == 1
	})
}

// TestTunnelAuthAndCache runs the handshake through auth and cache: it is
// refused without a token, and the 101, cacheable as the app labels it,
// is never stored: the next plain GET of the same URL is a miss; and a
// stored response never answers a handshake.
func TestTunnelAuthAndCache(t *testing.T) {
	p := plugins(t)
	k := base64.RawURLEncoding.EncodeToString(jwtSecret)
	n, a := startWS(t, "", fmt.Sprintf(`[{file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}, {file: %q}]`,
		p["auth"], k, p["cache"]))
	_, resp, err := dialWS(n)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %v %+v, want 401", err, resp)
	}
	token := []string{"Authorization", "Bearer " + jwstest.UserToken(jwtSecret, "alice")}
	for range 2 {
		c := dial(t, n, token...)
		echo(t, c, websocket.MessageText, []byte("authenticated"))
		c.Close(websocket.StatusNormalClosure, "")
		appClosed(t, a)
	}
	if a.handshakes.Load() != 2 {
		t.Fatalf("the app saw %d handshakes, want 2", a.handshakes.Load())
	}
	st, h, body := n.do(t, "GET", "x", "/ws", nil, token...)
	if st != 200 || body != "plain\n" || strings.Contains(string(h.Peek("Cache-Status")), "hit") || a.plain.Load() != 1 {
		t.Fatalf("plain GET after the tunnels: %d %q %q, app saw %d: the 101 was stored", st, body, h.Peek("Cache-Status"), a.plain.Load())
	}
	// A 200 stored under the handshake's own URL (its host is the node's
	// address) must not answer a handshake either.
	for i := range 2 {
		st, h, _ := n.do(t, "GET", n.Addr, "/ws", nil, token...)
		if st != 200 || i == 1 && !strings.Contains(string(h.Peek("Cache-Status")), "hit") {
			t.Fatalf("plain GET %d of the handshake's URL: %d %q, want it stored", i, st, h.Peek("Cache-Status"))
		}
	}
	c := dial(t, n, token...)
	echo(t, c, websocket.MessageText, []byte("not from the cache"))
	c.Close(websocket.StatusNormalClosure, "")
	appClosed(t, a)
	if a.handshakes.Load() != 3 {
		t.Fatalf("the app saw %d handshakes, want 3", a.handshakes.Load())
	}
}

// TestTunnelCookieAuth is a browser's WebSocket (Flutter web, socket.io
// in a page), which can set no Authorization: its token comes in a
// cookie, accepted from the app's own page only, and the app gets the
// other cookies without it.
func TestTunnelCookieAuth(t *testing.T) {
	p := plugins(t)
	k := base64.RawURLEncoding.EncodeToString(jwtSecret)
	n, a := startWS(t, "", fmt.Sprintf(`[{file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]},
  token_cookie: session, cookie_origins: ["https://app.example"]}}]`, p["auth"], k))
	cookie := "theme=dark; session=" + jwstest.UserToken(jwtSecret, "alice")
	_, resp, err := dialWS(n, "Cookie", cookie, "Origin", "https://evil.example")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden || a.handshakes.Load() != 0 {
		t.Fatalf("another site's page: %v %+v, the app saw %d handshakes; want 403 from the edge", err, resp, a.handshakes.Load())
	}
	c := dial(t, n, "Cookie", cookie, "Origin", "https://app.example")
	echo(t, c, websocket.MessageText, []byte("from the app's page"))
	c.Close(websocket.StatusNormalClosure, "")
	appClosed(t, a)
	if got := a.cookie.Load(); a.handshakes.Load() != 1 || got != "theme=dark" {
		t.Fatalf("the app saw %d handshakes, the last with Cookie %q, want 1 with theme=dark alone", a.handshakes.Load(), got)
	}
}

// TestTunnelCookieAuthLookAlikes: a second token cookie under a name an
// application's parser reads as the cookie's ("session =", Django's and
// Python's SimpleCookie's reading) is the token cookie too: the first is
// checked (a forged one first is refused at the edge) and none reaches the
// app, which could have trusted either. One after a comma is the token
// cookie, and is cut out with the rest passed as sent.
func TestTunnelCookieAuthLookAlikes(t *testing.T) {
	p := plugins(t)
	k := base64.RawURLEncoding.EncodeToString(jwtSecret)
	n, a := startWS(t, "", fmt.Sprintf(`[{file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]},
  token_cookie: session, cookie_origins: ["https://app.example"]}}]`, p["auth"], k))
	alice := jwstest.UserToken(jwtSecret, "alice")
	forged := jwstest.UserToken([]byte("ffffffffffffffffffffffffffffffff"), "admin")
	_, resp, err := dialWS(n, "Cookie", "session ="+forged+"; session="+alice, "Origin", "https://app.example")
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized || a.handshakes.Load() != 0 {
		t.Fatalf("a forged look-alike first: %v %+v, the app saw %d handshakes; want 401 from the edge", err, resp, a.handshakes.Load())
	}
	for i, cookie := range []string{"session=" + alice + "; session =" + forged, "theme=dark, session=" + alice + "; flag"} {
		c := dial(t, n, "Cookie", cookie, "Origin", "https://app.example")
		echo(t, c, websocket.MessageText, []byte("from the app's page"))
		c.Close(websocket.StatusNormalClosure, "")
		appClosed(t, a)
		want := []string{"", "theme=dark; flag"}[i]
		if got := a.cookie.Load(); a.handshakes.Load() != int64(i+1) || got != want {
			t.Fatalf("Cookie %q: the app saw %d handshakes, the last with Cookie %q, want %d with %q", cookie, a.handshakes.Load(), got, i+1, want)
		}
	}
}

func TestTunnelDrainOnShutdown(t *testing.T) {
	n, a := startWS(t, "drain_timeout: 30s", "")
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("before the drain"))
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(context.Background()) }()
	if code := closedWith(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("the client saw close %d, want 1001", code)
	}
	if code := appClosed(t, a); code != websocket.StatusGoingAway {
		t.Fatalf("the app saw close %d, want 1001", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Shutdown hangs on a drained tunnel")
	}
	if m := tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "drain"}); m != 1 {
		t.Fatalf("closes for drain: %v", m)
	}
}

// TestTunnelDrainBeforeRequests: Shutdown closes tunnels with 1001 at
// once, while a request it waits for (a long poll) is still held; they
// got their close frames only once it had ended, up to the drain timeout.
func TestTunnelDrainBeforeRequests(t *testing.T) {
	n, a := startWS(t, "drain_timeout: 30s", "")
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("before the drain"))
	polled := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + n.Addr + "/hold")
		if err != nil {
			polled <- 0
			return
		}
		resp.Body.Close()
		polled <- resp.StatusCode
	}()
	<-a.held
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(context.Background()) }()
	if code := closedWith(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("the client saw close %d, want 1001", code)
	}
	select {
	case st := <-polled:
		t.Fatalf("the held request ended (%d) before the tunnel's close was seen", st)
	default:
	}
	close(a.hold)
	if st := <-polled; st != 200 {
		t.Fatalf("the held request: %d, want it to finish with 200", st)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestTunnelShutdownBound: a client that never answers the close frame
// holds Shutdown for drain_timeout at most.
func TestTunnelShutdownBound(t *testing.T) {
	n, _ := startWS(t, "drain_timeout: 100ms", "")
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("then deaf"))
	// The client reads nothing more, so it never answers the close.
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(context.Background()) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Shutdown hangs on a tunnel whose client does not close")
	}
}

// TestTunnelDrainOnReload: a reload drains the tunnels whose handshake
// would now take another route, and keeps the others: one that changes
// nothing for a tunnel's route does not close it.
func TestTunnelDrainOnReload(t *testing.T) {
	n, a, yaml := startWSConfig(t, "", "", "")
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("old config"))
	reload(t, n, yaml)
	echo(t, c, websocket.MessageText, []byte("the same config again"))
	reload(t, n, rerouted(yaml))
	if code := closedWith(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("a tunnel whose route the reload changed saw close %d, want 1001", code)
	}
	appClosed(t, a)
	echo(t, dial(t, n), websocket.MessageText, []byte("new config"))
	testutil.Eventually(t, time.Minute, "one close for drain", func() bool {
		return tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "drain"}) == 1
	})
}

// TestTunnelHandshakeDuringReload: a handshake in progress while a
// reload changes its route opens its tunnel after the drain ran; it is
// closed at once, as the drain would have.
func TestTunnelHandshakeDuringReload(t *testing.T) {
	n, a, yaml := startWSConfig(t, "", "", "")
	type dialed struct {
		c   *websocket.Conn
		err error
	}
	got := make(chan dialed, 1)
	go func() {
		c, _, err := dialURL("ws://" + n.Addr + "/hold/ws")
		got <- dialed{c, err}
	}()
	<-a.held
	reload(t, n, yaml+"  - {name: held, path: /hold/, origin: app}\n")
	close(a.hold)
	d := <-got
	if d.err != nil {
		t.Fatal(d.err)
	}
	defer d.c.CloseNow()
	if code := closedWith(t, d.c); code != websocket.StatusGoingAway {
		t.Fatalf("a tunnel opened under the config before the reload saw close %d, want 1001", code)
	}
	appClosed(t, a)
}

// reload reloads n with the config yaml.
func reload(t testing.TB, n *testNode, yaml string) {
	t.Helper()
	cfg, err := edge.ParseConfig([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

// rerouted is a config of startWSConfig's with a route of its own for
// /ws, which its tunnels' handshakes would now take.
func rerouted(yaml string) string {
	return yaml + "  - {name: ws, path: /ws, origin: app}\n"
}

// TestTunnelReleaseDrainsItsRoutesOnly: a fleet release (a rollout wave,
// a canary step) drains the tunnels whose route's chain it changes, not
// those of the POP's other routes, nor those that ran a version a canary
// step keeps.
func TestTunnelReleaseDrainsItsRoutesOnly(t *testing.T) {
	chain := fmt.Sprintf("[{name: cache, file: %q}]", plugins(t)["cache"])
	other := fmt.Sprintf("  - {name: hello, path: /hello/, origin: app, chain: [{file: %q, config: {greeting: Hi}}]}\n", hello(t))
	n, a, _ := startWSConfig(t, "", chain, other)
	c := dial(t, n)
	echo(t, c, websocket.MessageText, []byte("before"))
	ctx := context.Background()
	hi := &edge.Release{Config: []byte(`{"greeting":"Yo"}`)}
	if err := n.SetReleases(ctx, map[string]*edge.Release{"hello": hi}); err != nil {
		t.Fatal(err)
	}
	echo(t, c, websocket.MessageText, []byte("after a release on another route"))
	// A canary step of the tunnel's own plugin: its stable side, the
	// version the handshake ran, stays.
	if err := n.SetReleases(ctx, map[string]*edge.Release{"hello": hi,
		"cache": {Canary: &edge.Release{Version: "canary"}, Share: 50}}); err != nil {
		t.Fatal(err)
	}
	echo(t, c, websocket.MessageText, []byte("after a canary step"))
	if err := n.SetReleases(ctx, map[string]*edge.Release{"hello": hi, "cache": {Version: "v2"}}); err != nil {
		t.Fatal(err)
	}
	if code := closedWith(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("a tunnel whose plugin version the release changed saw close %d, want 1001", code)
	}
	appClosed(t, a)
	testutil.Eventually(t, time.Minute, "one close for drain", func() bool {
		return tunnelMetric(t, n, "wedge_edge_tunnel_closes_total", map[string]string{"reason": "drain"}) == 1
	})
}

// TestTunnelRefused: an origin whose application runs in process
// refuses tunnels with 501, and a handshake the app refuses is served as
// the app's answer.
func TestTunnelRefused(t *testing.T) {
	o := origintest.Start(t, origintest.OK)
	n := startNode(t, wsConfig(o.Addr, "", ""))
	if _, resp, err := dialWS(n); err == nil || resp == nil || resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("in-process origin: %v %+v, want 501", err, resp)
	}
	// The same origin with a key the edge does not hold: its 401 becomes a 502.
	other := origintest.NewCodec(t, wire.Config{Keys: []wire.Key{{ID: 9, Secret: bytes.Repeat([]byte{9}, 32)}}})
	o2 := origintest.StartConfig(t, origin.ServerConfig{Handler: origintest.OK, Codec: other}, nil)
	n2 := startNode(t, wsConfig(o2.Addr, "", ""))
	if _, resp, err := dialWS(n2); err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("origin refusing the frame: %v %+v, want 502", err, resp)
	}
	if m := tunnelMetric(t, n2, "wedge_edge_tunnels_open", nil); m != 0 {
		t.Fatalf("%v tunnels open after refusals", m)
	}
}

// TestTunnelFieldNamesAnyCase: a handshake whose field names are in lower
// case is one all the same; serve looks for it only when fromHTTP saw an
// Upgrade field, in any case.
func TestTunnelFieldNamesAnyCase(t *testing.T) {
	n, a := startWS(t, "", "")
	c, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nhost: ws\r\nconnection: upgrade\r\nupgrade: WebSocket\r\n"+
		"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	line := make([]byte, len("HTTP/1.1 101"))
	if _, err := io.ReadFull(c, line); err != nil || string(line) != "HTTP/1.1 101" {
		t.Fatalf("answer %q, %v; want a 101", line, err)
	}
	if a.handshakes.Load() != 1 {
		t.Fatalf("the app saw %d handshakes", a.handshakes.Load())
	}
}

// TestTunnelTLS: a tunnel through the node's TLS listener (wss://).
func TestTunnelTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, "ws.example", 1)
	n, _, _ := startWSConfig(t, "", "", fmt.Sprintf("tls:\n  certs: [{cert: %s, key: %s}]\n", certFile, keyFile))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.ServeTLS(ln)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "ws.example", RootCAs: pool}}}
	c, _, err := dialWith(hc, "wss://"+ln.Addr().String()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	echo(t, c, websocket.MessageBinary, bytes.Repeat([]byte("tls"), 100_000))
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close over TLS: %v", err)
	}
}

// TestTunnelDrainAtFrameBoundary: a drain that comes while a message is on
// its way to the client sends its close frame after that message's frame,
// never inside it.
func TestTunnelDrainAtFrameBoundary(t *testing.T) {
	n, a, yaml := startWSConfig(t, "drain_timeout: 1m", "", "")
	c := dial(t, n)
	ctx := context.Background()
	const size = 10 << 20
	// The client reads nothing while the app sends: the edge is held in
	// the middle of the frame, writing to a full socket.
	if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf("send %d", size))); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, "the message on its way", func() bool {
		return tunnelMetric(t, n, "wedge_edge_tunnel_bytes_total", map[string]string{"direction": "to_client"}) > 1<<20
	})
	reload(t, n, rerouted(yaml))
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageBinary || len(msg) != size {
		t.Fatalf("the message in flight: type %v, %d bytes, %v", typ, len(msg), err)
	}
	if code := closedWith(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("then close %d, want 1001", code)
	}
	appClosed(t, a)
}

// TestTunnelOldOriginSaysUpgrade: an origin built before the tunnel
// handshake's own flag refuses every handshake frame with "unknown flags";
// the client gets 502 and the edge's log says what to do (upgrade the
// origins first), not only the origin's words.
func TestTunnelOldOriginSaysUpgrade(t *testing.T) {
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wire: malformed frame: unknown flags 0x4", http.StatusBadRequest)
	}))
	t.Cleanup(old.Close)
	logs := &testutil.SyncBuffer{}
	n := startNodeWith(t, wsConfig(strings.TrimPrefix(old.URL, "http://"), "", ""),
		edge.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	if _, resp, err := dialWS(n); err == nil || resp == nil || resp.StatusCode != 502 {
		t.Fatalf("handshake through an old origin: %v, %v: want 502", err, resp)
	}
	if !strings.Contains(logs.String(), "upgrade the origins first") {
		t.Errorf("the edge's log does not say to upgrade the origins:\n%s", logs)
	}
}
