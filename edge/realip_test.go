package edge_test

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin/origintest"
)

// xffGet is a GET of /who on host with an X-Forwarded-For field for each
// of xff.
func xffGet(host string, xff ...string) string {
	var b strings.Builder
	b.WriteString("GET /who HTTP/1.1\r\nHost: " + host + "\r\n")
	for _, v := range xff {
		b.WriteString("X-Forwarded-For: " + v + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestTrustedProxiesClientAddress: behind a trusted L7 proxy, the client
// its X-Forwarded-For names (right to left past the trusted hops) is the
// client the application's X-Real-Ip and Forwarded and the access log
// see; the application's X-Forwarded-For is the chain as received plus
// the proxy. The next request on the kept-alive connection, without the
// field, is the proxy's own again.
func TestTrustedProxiesClientAddress(t *testing.T) {
	s := startFrontStack(t, `trusted_proxies: ["127.0.0.1/32", "10.0.0.0/8"]`, "")
	reqs := []string{
		xffGet("x", "198.51.100.1, 10.1.2.3"),
		xffGet("x", "203.0.113.9", "10.0.0.7"),      // two fields, in order
		xffGet("x", "203.0.113.9, bogus, 10.0.0.7"), // the walk stops at bogus
		xffGet("x", "10.0.0.8, 10.0.0.7"),           // all trusted: the left-most
		xffGet("x", "[2001:db8::5]:4711 , 192.0.2.1:80"),
		xffGet("x"),
	}
	want := []string{
		"198.51.100.1|198.51.100.1, 10.1.2.3, 127.0.0.1|for=198.51.100.1;proto=http;host=x",
		"203.0.113.9|203.0.113.9, 10.0.0.7, 127.0.0.1|for=203.0.113.9;proto=http;host=x",
		"10.0.0.7|203.0.113.9, bogus, 10.0.0.7, 127.0.0.1|for=10.0.0.7;proto=http;host=x",
		"10.0.0.8|10.0.0.8, 10.0.0.7, 127.0.0.1|for=10.0.0.8;proto=http;host=x",
		"192.0.2.1|[2001:db8::5]:4711 , 192.0.2.1:80, 127.0.0.1|for=192.0.2.1;proto=http;host=x",
		"127.0.0.1|127.0.0.1|for=127.0.0.1;proto=http;host=x",
	}
	status, body := proxyExchange(t, s.n.Addr, nil, reqs...)
	for i := range status {
		if status[i] != 200 || body[i] != want[i] {
			t.Errorf("request %d: %d %q, want 200 %q", i+1, status[i], body[i], want[i])
		}
	}
	lines := waitAccessLog(t, s.log, len(reqs))
	for i, want := range []string{"198.51.100.1:0", "203.0.113.9:0", "10.0.0.7:0", "10.0.0.8:0", "192.0.2.1:0", "127.0.0.1:"} {
		if !strings.HasPrefix(lines[i].Client, want) {
			t.Errorf("access log line %d: client %q, want %q", i+1, lines[i].Client, want)
		}
	}
}

// TestTrustedProxiesRateLimitKey: the ratelimit plugin's ip key counts
// each client behind a trusted proxy apart, where it counted them all as
// the proxy; a client that is no trusted proxy (127.0.0.2) is counted as
// itself whatever X-Forwarded-For it sends, and what it names is not
// charged.
func TestTrustedProxiesRateLimitKey(t *testing.T) {
	s := startFrontStack(t, `trusted_proxies: ["127.0.0.1/32"]`, "")
	a, b := xffGet("rl", "203.0.113.7"), xffGet("rl", "198.51.100.9")
	if status, _ := proxyExchange(t, s.n.Addr, nil, a, a); status[0] != 200 || status[1] != 429 {
		t.Fatalf("one client, two requests: %v, want [200 429]", status)
	}
	if status, _ := proxyExchange(t, s.n.Addr, nil, b); status[0] != 200 {
		t.Fatalf("another client behind the proxy: %d, want 200: limited with the first", status[0])
	}
	untrusted := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	spoof1, spoof2 := xffGet("rl", "192.0.2.77"), xffGet("rl", "192.0.2.78")
	status, body := exchangeFrom(t, untrusted, s.n.Addr, nil, spoof1, spoof2)
	if want := "127.0.0.2|192.0.2.77, 127.0.0.2|for=127.0.0.2;proto=http;host=rl"; status[0] != 200 || body[0] != want {
		t.Fatalf("an untrusted client's first request: %d %q, want 200 %q", status[0], body[0], want)
	}
	if status[1] != 429 {
		t.Fatalf("an untrusted client naming another address: %d, want 429: counted as itself", status[1])
	}
	if status, _ := proxyExchange(t, s.n.Addr, nil, spoof1); status[0] != 200 {
		t.Fatalf("the client the untrusted one named, behind the proxy: %d, want 200", status[0])
	}
}

// TestTrustedProxiesBehindProxyProtocol: with proxy_protocol on, the peer
// whose trust counts is the one the PROXY header names, not the balancer
// that sent it.
func TestTrustedProxiesBehindProxyProtocol(t *testing.T) {
	s := startProxyStack(t, `"127.0.0.1/32"`, `trusted_proxies: ["192.0.2.10"]`)
	req := xffGet("x", "198.51.100.1")
	for _, tc := range []struct{ peer, want string }{
		{"192.0.2.10", "198.51.100.1|198.51.100.1, 192.0.2.10|for=198.51.100.1;proto=http;host=x"},
		{"203.0.113.7", "203.0.113.7|198.51.100.1, 203.0.113.7|for=203.0.113.7;proto=http;host=x"},
	} {
		if status, body := proxyExchange(t, s.n.Addr, v1(tc.peer), req); status[0] != 200 || body[0] != tc.want {
			t.Errorf("from %s: %d %q, want 200 %q", tc.peer, status[0], body[0], tc.want)
		}
	}
}

// TestTrustedProxiesConfig: trusted_proxies takes addresses and CIDR
// ranges, and refuses anything else by name.
func TestTrustedProxiesConfig(t *testing.T) {
	parse := func(list string) error {
		doc := "trusted_proxies: " + list + "\norigins:\n  app: {addr: \"127.0.0.1:9\", key: \"" + origintest.Key.Text() + "\"}\nroutes:\n  - {path: /, origin: app}\n"
		_, err := edge.ParseConfig([]byte(doc), t.TempDir())
		return err
	}
	for _, list := range []string{`[]`, `["10.0.0.0/8", "192.0.2.10", "2001:db8::/32", "2001:db8::1", "::ffff:10.0.0.0/104"]`} {
		if err := parse(list); err != nil {
			t.Errorf("trusted_proxies: %s: %v", list, err)
		}
	}
	for _, list := range []string{`["10.0.0.0/33"]`, `[lb.example]`, `["10.0.0.1-10.0.0.9"]`, `["fe80::1%eth0"]`, `["::ffff:10.0.0.0/8"]`, `[""]`} {
		if err := parse(list); err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
			t.Errorf("trusted_proxies: %s: %v, want it refused", list, err)
		}
	}
}

// TestTrustedProxiesAddressGivenBack: after a request a trusted proxy
// named a client for, its context has the connection's address again:
// fasthttp keeps one context for a connection's requests, and the next
// one, without X-Forwarded-For, was taken for the client the last named.
func TestTrustedProxiesAddressGivenBack(t *testing.T) {
	n, req := startHitNodeWith(t, `trusted_proxies: ["127.0.0.1/32"]`)
	ctx, _ := handlerCtx(t, bytes.Replace(req, []byte("\r\n\r\n"), []byte("\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n"), 1))
	n.Handler()(ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("got %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if got := ctx.RemoteAddr().String(); got != "127.0.0.1:40000" {
		t.Fatalf("after the request its context's address is %s, want the connection's, 127.0.0.1:40000", got)
	}
}

// TestTrustedProxiesTunnelPerClient: limits.websocket's per-client bound
// counts each client behind a trusted proxy apart: one client's second
// tunnel is refused, another's first is not.
func TestTrustedProxiesTunnelPerClient(t *testing.T) {
	n, _, _ := startWSConfig(t, "max_tunnels: 10, max_tunnels_per_client: 1", "", `trusted_proxies: ["127.0.0.1/32"]`+"\n")
	c, resp, err := dialWS(n, "X-Forwarded-For", "203.0.113.7")
	if err != nil {
		t.Fatalf("a client's first tunnel: %v (%v)", err, resp)
	}
	defer c.CloseNow()
	echo(t, c, websocket.MessageText, []byte("open"))
	if c, resp, err := dialWS(n, "X-Forwarded-For", "203.0.113.7"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		if err == nil {
			c.CloseNow()
		}
		t.Fatalf("the same client's second tunnel: %v %+v, want 503", err, resp)
	}
	other, resp, err := dialWS(n, "X-Forwarded-For", "198.51.100.9")
	if err != nil {
		t.Fatalf("another client's tunnel: %v (%v): counted with the first", err, resp)
	}
	defer other.CloseNow()
	echo(t, other, websocket.MessageText, []byte("other"))
}

// TestTrustedProxiesRefusedAtHeaderLogged: a request refused from its
// header alone (413 past max_body_bytes, with Expect: 100-continue or over
// HTTP/1.0 with stream_threshold) is answered outside serve; behind a
// trusted proxy its access-log line names the client the proxy's
// X-Forwarded-For names, as every other request's does, not the proxy.
func TestTrustedProxiesRefusedAtHeaderLogged(t *testing.T) {
	s := startFrontStack(t, "trusted_proxies: [\"127.0.0.1/32\"]\nlimits: {max_body_bytes: 1024, stream_threshold: 512}", "")
	reqs := []string{
		"POST /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
		"POST /x HTTP/1.0\r\nHost: x\r\nX-Forwarded-For: 203.0.113.8\r\nContent-Length: 100000\r\n\r\n",
	}
	for _, req := range reqs {
		if resp, body, _, _ := exchange(t, s.n.Addr, req, 5*time.Second); resp.StatusCode != 413 {
			t.Fatalf("%q: %d %q, want 413", req, resp.StatusCode, body)
		}
	}
	lines := waitAccessLog(t, s.log, len(reqs))
	for i, want := range []string{"203.0.113.7:0", "203.0.113.8:0"} {
		if lines[i].Status != 413 || lines[i].Client != want {
			t.Errorf("access log line %d: %d from %q, want 413 from %q (the client the proxy names)", i+1, lines[i].Status, lines[i].Client, want)
		}
	}
}
