package edge_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// seenApp is the application behind the origin service's proxy: it
// answers with the client address fields it got, and keeps them.
type seenApp struct {
	mu   sync.Mutex
	seen []string // "X-Real-Ip|X-Forwarded-For|Forwarded" of each request
}

func (a *seenApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := r.Header.Get("X-Real-Ip") + "|" + r.Header.Get("X-Forwarded-For") + "|" + r.Header.Get("Forwarded")
	a.mu.Lock()
	a.seen = append(a.seen, s)
	a.mu.Unlock()
	io.WriteString(w, s)
}

func (a *seenApp) all() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.seen, "\n")
}

// proxyStack is a node with proxy_protocol trusting trusted, in front of
// the origin service and a seenApp: route "rl" (host rl) limits each
// client address to one request an hour with the ratelimit plugin, the
// others pass as they are. frontStack is one with front, the config
// lines of whatever stands in front of it, in place of proxy_protocol.
type proxyStack struct {
	n      *testNode
	app    *seenApp
	log    string // the access log's file
	origin string // the origin service's address
}

func startProxyStack(t *testing.T, trusted, extra string) *proxyStack {
	t.Helper()
	return startFrontStack(t, "proxy_protocol: {trusted: ["+trusted+"]}", extra)
}

func startFrontStack(t *testing.T, front, extra string) *proxyStack {
	t.Helper()
	s := &proxyStack{app: &seenApp{}, log: filepath.Join(t.TempDir(), "access.log")}
	appLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.app}
	go hs.Serve(appLn)
	t.Cleanup(func() { hs.Close() })
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + appLn.Addr().String()}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	s.origin = origintest.Start(t, proxy).Addr
	s.n = startNode(t, fmt.Sprintf(`
%s
access_log: {path: %q}
origins:
  app: {addr: %q, key: %q}
routes:
  - name: rl
    host: rl
    origin: app
    chain:
      - {file: %q, config: {policies: [{name: perip, key: ip, limit: 1, period: 1h, burst: 1}]}}
  - name: app
    path: /
    origin: app
%s`, front, s.log, s.origin, origintest.Key.Text(), plugins(t)["ratelimit"], extra))
	return s
}

// v1 is a PROXY protocol v1 header for a client at src (port 5555).
func v1(src string) []byte {
	return []byte("PROXY TCP4 " + src + " 127.0.0.1 5555 80\r\n")
}

// v2 is a PROXY protocol v2 header for a client at src, as the
// library writes it.
func v2(t *testing.T, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src).To4(), Port: 5555}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proxyExchange writes header on a new connection to addr, then each request
// in turn on it, reading each one's response; it returns their statuses
// and bodies. exchangeFrom does from the local address local (nil: any).
func proxyExchange(t *testing.T, addr string, header []byte, reqs ...string) (status []int, body []string) {
	t.Helper()
	return exchangeFrom(t, nil, addr, header, reqs...)
}

func exchangeFrom(t *testing.T, local *net.TCPAddr, addr string, header []byte, reqs ...string) (status []int, body []string) {
	t.Helper()
	d := net.Dialer{}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang guard
	if _, err := c.Write(header); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, req := range reqs {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q then %q: %v", header, req, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status, body = append(status, resp.StatusCode), append(body, string(b))
	}
	return status, body
}

// closedSilently writes b on a new connection to addr and expects the
// node to close it without sending a byte. The read deadline is only a
// hang guard: reaching it fails the test.
func closedSilently(t *testing.T, addr string, b []byte) {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	got, err := io.ReadAll(c)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("after %q: the connection is still open", b)
	case err != nil && !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("after %q: %v", b, err)
	case len(got) > 0:
		t.Fatalf("after %q: got %q, want the connection closed without an answer", b, got)
	}
}

const getWho = "GET /who HTTP/1.1\r\nHost: x\r\n\r\n"

// TestProxyProtocolClientAddress: behind a trusted load balancer, the
// client a v1 or a v2 header names is the client the application (its
// X-Real-Ip, X-Forwarded-For and Forwarded) and the access log see, for
// every request of a kept-alive connection.
func TestProxyProtocolClientAddress(t *testing.T) {
	s := startProxyStack(t, `"127.0.0.1/32"`, "")
	for _, tc := range []struct {
		name   string
		header []byte
		client string
	}{
		{"v1", v1("203.0.113.7"), "203.0.113.7"},
		{"v2", v2(t, "198.51.100.9"), "198.51.100.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := proxyExchange(t, s.n.Addr, tc.header, getWho, getWho)
			want := tc.client + "|" + tc.client + "|for=" + tc.client + ";proto=http;host=x"
			for i := range status {
				if status[i] != 200 || body[i] != want {
					t.Errorf("request %d: %d %q, want 200 %q", i+1, status[i], body[i], want)
				}
			}
		})
	}
	lines := waitAccessLog(t, s.log, 4)
	for i, want := range []string{"203.0.113.7:5555", "203.0.113.7:5555", "198.51.100.9:5555", "198.51.100.9:5555"} {
		if lines[i].Client != want {
			t.Errorf("access log line %d: client %q, want %q", i+1, lines[i].Client, want)
		}
	}
}

// TestProxyProtocolRateLimitKey: the ratelimit plugin's ip key counts
// each proxied client apart: one client's second request is refused, a
// second client's first, on another connection from the same balancer,
// is not.
func TestProxyProtocolRateLimitKey(t *testing.T) {
	s := startProxyStack(t, `"127.0.0.1"`, "")
	rl := "GET /x HTTP/1.1\r\nHost: rl\r\n\r\n"
	if status, _ := proxyExchange(t, s.n.Addr, v1("203.0.113.7"), rl, rl); status[0] != 200 || status[1] != 429 {
		t.Fatalf("one client, two requests: %v, want [200 429]", status)
	}
	if status, _ := proxyExchange(t, s.n.Addr, v2(t, "198.51.100.9"), rl); status[0] != 200 {
		t.Fatalf("another client: %d, want 200: limited with the first", status[0])
	}
}

// TestProxyProtocolTrustedMustSend: a connection from a trusted address
// without a valid header is closed unanswered and counted by reason, and
// nothing of it reaches the application.
func TestProxyProtocolTrustedMustSend(t *testing.T) {
	s := startProxyStack(t, `"127.0.0.0/8"`, "")
	for _, tc := range []struct {
		reason string
		b      []byte
	}{
		{"missing", []byte(getWho)},
		{"malformed", append([]byte("PROXY TCP4 203.0.113.777 127.0.0.1 5555 80\r\n"), getWho...)},
		{"malformed", append([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555\r\n"), getWho...)},
		{"unsupported", append(udpHeader(t), getWho...)},
	} {
		before := metric(t, s.n, "wedge_edge_proxy_protocol_refused_total", "reason", tc.reason)
		closedSilently(t, s.n.Addr, tc.b)
		waitMetric(t, s.n, atLeast(before+1), "wedge_edge_proxy_protocol_refused_total", "reason", tc.reason)
	}
	if seen := s.app.all(); seen != "" {
		t.Fatalf("the application saw %q", seen)
	}
}

// udpHeader is a v2 header for a UDP client: the node's clients are TCP.
func udpHeader(t *testing.T) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 5555}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProxyProtocolUntrusted: a client that is no trusted balancer
// cannot name another address with a header: its connection is closed
// unanswered, counted as untrusted, and the application never hears of
// the address. Without a header it is served as itself.
func TestProxyProtocolUntrusted(t *testing.T) {
	s := startProxyStack(t, `"10.0.0.0/8", "192.0.2.10"`, "")
	for _, h := range [][]byte{v1("203.0.113.7"), v2(t, "203.0.113.7")} {
		before := metric(t, s.n, "wedge_edge_proxy_protocol_refused_total", "reason", "untrusted")
		closedSilently(t, s.n.Addr, append(h, getWho...))
		waitMetric(t, s.n, atLeast(before+1), "wedge_edge_proxy_protocol_refused_total", "reason", "untrusted")
	}
	status, body := proxyExchange(t, s.n.Addr, nil, getWho)
	if want := "127.0.0.1|127.0.0.1|for=127.0.0.1;proto=http;host=x"; status[0] != 200 || body[0] != want {
		t.Fatalf("without a header: %d %q, want 200 %q", status[0], body[0], want)
	}
	if seen := s.app.all(); strings.Contains(seen, "203.0.113.7") {
		t.Fatalf("the application saw %q", seen)
	}
}

// TestProxyProtocolHeaderTimeout: a trusted peer that sends part of a
// header and stalls is closed once read_timeout has passed, unanswered.
func TestProxyProtocolHeaderTimeout(t *testing.T) {
	s := startProxyStack(t, `"127.0.0.1/32"`, "limits: {read_timeout: 500ms}\n")
	before := metric(t, s.n, "wedge_edge_proxy_protocol_refused_total", "reason", "timeout")
	closedSilently(t, s.n.Addr, v2(t, "203.0.113.7")[:14])
	waitMetric(t, s.n, atLeast(before+1), "wedge_edge_proxy_protocol_refused_total", "reason", "timeout")
}

// TestProxyProtocolTLS: over the TLS listener the header comes before the
// handshake, and the client it names is the one HTTP/2 and HTTP/1.1
// requests carry to the application.
func TestProxyProtocolTLS(t *testing.T) {
	s := startProxyStack(t, `"127.0.0.1/32"`, "")
	certFile, keyFile, cert := writeCert(t, t.TempDir(), "edge.test", 1)
	n := startNode(t, fmt.Sprintf(`
proxy_protocol: {trusted: ["127.0.0.1/32"]}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
tls:
  certs:
    - {cert: %s, key: %s}
`, s.origin, origintest.Key.Text(), certFile, keyFile))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.ServeTLS(ln)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, proto := range []string{"h2", "http/1.1"} {
		var protos http.Protocols
		protos.SetHTTP1(proto == "http/1.1")
		protos.SetHTTP2(proto == "h2")
		tr := &http.Transport{Protocols: &protos, DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", ln.Addr().String())
			if err != nil {
				return nil, err
			}
			if _, err := c.Write(v2(t, "203.0.113.7")); err != nil {
				c.Close()
				return nil, err
			}
			tc := tls.Client(c, &tls.Config{ServerName: "edge.test", RootCAs: roots, NextProtos: []string{proto}})
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		}}
		cl := &http.Client{Transport: tr, Timeout: time.Minute}
		resp, err := cl.Get("https://edge.test/who")
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if want := "203.0.113.7|203.0.113.7|for=203.0.113.7;proto=https;host=edge.test"; resp.StatusCode != 200 || resp.Proto != map[string]string{"h2": "HTTP/2.0", "http/1.1": "HTTP/1.1"}[proto] || string(b) != want {
			t.Errorf("%s: %s %d %q, want 200 %q", proto, resp.Proto, resp.StatusCode, b, want)
		}
	}
}

// TestProxyProtocolConfig: a block that could only refuse every
// connection, or names an address that is none, is refused at load
// rather than at the first connection.
func TestProxyProtocolConfig(t *testing.T) {
	parse := func(block string) error {
		doc := "proxy_protocol: " + block + "\norigins:\n  app: {addr: \"127.0.0.1:9\", key: \"" + origintest.Key.Text() + "\"}\nroutes:\n  - {path: /, origin: app}\n"
		_, err := edge.ParseConfig([]byte(doc), t.TempDir())
		return err
	}
	if err := parse(`{trusted: ["10.0.0.0/8", "192.0.2.10", "2001:db8::/32"]}`); err != nil {
		t.Fatal(err)
	}
	for _, block := range []string{"{}", "{trusted: []}", `{trusted: ["10.0.0.0/33"]}`, `{trusted: [lb.example]}`} {
		if err := parse(block); err == nil || !strings.Contains(err.Error(), "proxy_protocol") {
			t.Errorf("proxy_protocol: %s: %v, want it refused", block, err)
		}
	}
}

// TestProxyProtocolTunnel: a WebSocket tunnel runs over a proxied
// connection, the header read before the handshake.
func TestProxyProtocolTunnel(t *testing.T) {
	n, a, _ := startWSConfig(t, "", "", `proxy_protocol: {trusted: ["127.0.0.1/32"]}`+"\n")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(v1("203.0.113.7")); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}}
	c, resp, err := dialWith(hc, "ws://"+n.Addr+"/ws")
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer c.CloseNow()
	echo(t, c, websocket.MessageText, []byte("through the balancer"))
	c.Close(websocket.StatusNormalClosure, "")
	if code := appClosed(t, a); code != websocket.StatusNormalClosure {
		t.Fatalf("the application saw the tunnel end with %d", code)
	}
}

// TestProxyProtocolRefusedAtMaxConns: a connection past max_conns gets
// fasthttp's 503 from the accept loop at once, though it sent no PROXY
// header: writing it read the header first, and one silent client held
// the listener's accept loop for read_timeout (10 minutes here).
func TestProxyProtocolRefusedAtMaxConns(t *testing.T) {
	for _, trusted := range []string{`"10.9.9.9/32"`, `"127.0.0.1/32"`} {
		t.Run(trusted, func(t *testing.T) {
			s := startProxyStack(t, trusted, "limits: {max_conns: 1, read_timeout: 10m}\n")
			hold, err := net.Dial("tcp4", s.n.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer hold.Close()
			if trusted != `"10.9.9.9/32"` {
				hdr := proxyproto.HeaderProxyFromAddrs(1, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 5555}, hold.LocalAddr())
				if _, err := hdr.WriteTo(hold); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := io.WriteString(hold, getWho); err != nil {
				t.Fatal(err)
			}
			hold.SetReadDeadline(time.Now().Add(time.Minute))
			if resp, err := http.ReadResponse(bufio.NewReader(hold), nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("the connection holding the only slot: %v %v", resp, err)
			}
			silent, err := net.Dial("tcp4", s.n.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			silent.SetReadDeadline(time.Now().Add(time.Minute)) // the failure signal, far under read_timeout
			resp, err := http.ReadResponse(bufio.NewReader(silent), nil)
			if err != nil || resp.StatusCode != 503 {
				t.Fatalf("a silent connection past max_conns: %v %v, want fasthttp's 503 at once", resp, err)
			}
		})
	}
}
