package origin

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
)

// rawApp is an application that answers every connection's request with
// answer, as bytes, and then, when it switched protocols, echoes what
// comes. It keeps the request heads it read.
type rawApp struct {
	addr   string
	mu     sync.Mutex
	heads  []string
	answer string
}

func startRawApp(t *testing.T, answer string) *rawApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &rawApp{addr: ln.Addr().String(), answer: answer}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					head.WriteString(line)
					if line == "\r\n" {
						break
					}
				}
				a.mu.Lock()
				a.heads = append(a.heads, head.String())
				a.mu.Unlock()
				if _, err := io.WriteString(c, a.answer); err != nil || !strings.HasPrefix(a.answer, "HTTP/1.1 101") {
					return
				}
				io.Copy(c, br)
			})
		}
	})
	return a
}

func (a *rawApp) lastHead() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.heads) == 0 {
		return ""
	}
	return a.heads[len(a.heads)-1]
}

const switched = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

func wsReq(path string) *wire.Request {
	r := getReq(path)
	r.AddHeader([]byte("Sec-WebSocket-Key"), []byte("dGhlIHNhbXBsZSBub25jZQ=="))
	r.AddHeader([]byte("Sec-WebSocket-Version"), []byte("13"))
	return r
}

// openTunnel POSTs req's frame, sealed by codec, to the origin's tunnel
// path on a connection of its own, and returns the transport status, the
// envelope when there is one, and the connection, open, for the tunnel.
func openTunnel(t *testing.T, addr string, codec *wire.Codec, req *wire.Request) (int, *wire.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	frame, x, err := codec.AppendTunnelRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	return postTunnel(t, addr, frame, func(body []byte) *wire.Response {
		resp := new(wire.Response)
		if _, err := codec.DecodeResponse(body, x, resp); err != nil {
			t.Fatalf("decode response: %v", err)
		}
		return resp
	})
}

func postTunnel(t *testing.T, addr string, frame []byte, open func([]byte) *wire.Response) (int, *wire.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	head := "POST " + wire.TunnelPath + " HTTP/1.1\r\nHost: origin\r\nContent-Type: application/wedge\r\nContent-Length: " +
		strconv.Itoa(len(frame)) + "\r\n\r\n"
	if _, err := c.Write(append([]byte(head), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	hr, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		t.Fatal(err)
	}
	if hr.StatusCode != 200 {
		return hr.StatusCode, nil, c, br
	}
	return hr.StatusCode, open(body), c, br
}

func TestTunnelThroughProxy(t *testing.T) {
	// The app's first bytes come in the same write as its 101.
	app := startRawApp(t, switched+"early")
	o := startOrigin(t, newProxy(t, ProxyConfig{Upstreams: []string{"http://" + app.addr}, HealthInterval: -1}),
		func(c *ServerConfig) { c.MaxTunnels = 1 })
	status, resp, c, br := openTunnel(t, o.addr, o.codec, wsReq("/chat"))
	if status != 200 || resp.Status != 101 {
		t.Fatalf("handshake: transport %d, envelope %+v", status, resp)
	}
	if v, _ := wire.Get(resp.Header, "Sec-WebSocket-Accept"); string(v) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("101 fields: %q", resp.Header)
	}
	for _, f := range resp.Header {
		if wire.HopByHop(f.Name) {
			t.Fatalf("hop-by-hop field %s in the 101 envelope", f.Name)
		}
	}
	h := app.lastHead()
	for _, want := range []string{"GET /chat HTTP/1.1\r\n", "\r\nConnection: Upgrade\r\n", "\r\nUpgrade: websocket\r\n",
		"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "\r\nX-Forwarded-For: 192.0.2.7\r\n"} {
		if !strings.Contains(h, want) {
			t.Fatalf("the app's handshake lacks %q:\n%s", want, h)
		}
	}
	// Raw bytes both ways, the app's early ones first.
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("earlyping"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "earlyping" {
		t.Fatalf("tunnel bytes: %q %v", got, err)
	}
	// MaxTunnels: the second handshake is refused.
	if status, _, _, _ := openTunnel(t, o.addr, o.codec, wsReq("/chat")); status != 503 {
		t.Fatalf("past MaxTunnels: transport %d, want 503", status)
	}
	// Shutdown closes the tunnel.
	o.srv.Shutdown(t.Context())
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("after Shutdown: %v", err)
	}
}

func TestTunnelAppAnswers(t *testing.T) {
	for _, c := range []struct {
		name, answer string
		status       uint64
	}{
		{"refused", "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno", 403},
		{"other protocol", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 502},
		{"bare LF", "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n", 502},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := startRawApp(t, c.answer)
			o := startOrigin(t, newProxy(t, ProxyConfig{Upstreams: []string{"http://" + app.addr}, HealthInterval: -1}), nil)
			status, resp, conn, _ := openTunnel(t, o.addr, o.codec, wsReq("/chat"))
			if status != 200 || resp.Status != c.status {
				t.Fatalf("transport %d, envelope status %d, want %d", status, resp.Status, c.status)
			}
			// No tunnel: the origin closes the connection.
			conn.SetReadDeadline(time.Now().Add(time.Minute))
			if n, err := conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("after a refused handshake: %d %v, want EOF", n, err)
			}
		})
	}
}

// TestTunnelFrameRefused: a handshake whose frame does not authenticate
// never reaches a decoder or an application.
func TestTunnelFrameRefused(t *testing.T) {
	app := startRawApp(t, switched)
	o := startOrigin(t, newProxy(t, ProxyConfig{Upstreams: []string{"http://" + app.addr}, HealthInterval: -1}), nil)
	other := newCodec(t, wire.Config{Keys: []wire.Key{{ID: 7, Secret: bytes.Repeat([]byte{1}, 32)}}})
	frame, _, err := other.AppendTunnelRequest(nil, wsReq("/chat"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned := bytes.Clone(frame)
	clear(unsigned[10:26]) // the MAC
	for name, f := range map[string][]byte{"another secret": frame, "no MAC": unsigned} {
		if status, _, _, _ := postTunnel(t, o.addr, f, nil); status != 401 {
			t.Errorf("%s: transport %d, want 401", name, status)
		}
	}
	if app.lastHead() != "" {
		t.Fatal("a refused frame reached the app")
	}
	if status, _, _ := post(t, o.addr, "GET", wire.TunnelPath, nil); status != 405 {
		t.Fatalf("GET: %d, want 405", status)
	}
}

// TestTunnelInProcess: an application in process cannot take a tunnel.
func TestTunnelInProcess(t *testing.T) {
	o := startOrigin(t, HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) { resp.Status = 200 }), nil)
	status, resp, _, _ := openTunnel(t, o.addr, o.codec, wsReq("/chat"))
	if status != 200 || resp.Status != 501 || len(resp.Error) == 0 {
		t.Fatalf("transport %d, envelope %+v, want 501 with a reason", status, resp)
	}
}

// TestTunnelReplayRefused: a handshake frame sent again within the skew
// window (captured on a plaintext link) opens no second session.
func TestTunnelReplayRefused(t *testing.T) {
	app := startRawApp(t, switched)
	o := startOrigin(t, newProxy(t, ProxyConfig{Upstreams: []string{"http://" + app.addr}, HealthInterval: -1}), nil)
	frame, x, err := o.codec.AppendTunnelRequest(nil, wsReq("/chat"))
	if err != nil {
		t.Fatal(err)
	}
	open := func(body []byte) *wire.Response {
		resp := new(wire.Response)
		if _, err := o.codec.DecodeResponse(body, x, resp); err != nil {
			t.Fatalf("decode response: %v", err)
		}
		return resp
	}
	if status, resp, _, _ := postTunnel(t, o.addr, frame, open); status != 200 || resp.Status != 101 {
		t.Fatalf("first handshake: transport %d, envelope %+v", status, resp)
	}
	if status, _, _, _ := postTunnel(t, o.addr, frame, open); status != 401 {
		t.Fatalf("replayed handshake: transport %d, want 401", status)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.heads) != 1 {
		t.Fatalf("the app saw %d handshakes, want 1", len(app.heads))
	}
}

// TestTunnelKindRefused: a request frame captured on the link, one that
// carries a WebSocket handshake's fields and is within the skew window,
// is refused on the tunnel path (401, counted, logged) and opens nothing;
// a handshake is refused on the request path. With
// LegacyTunnelHandshakes, as during a rolling upgrade, a handshake sealed
// as a request (an old edge's) opens its tunnel, and a new edge's too.
func TestTunnelKindRefused(t *testing.T) {
	app := startRawApp(t, switched)
	var logs testutil.SyncBuffer
	o := startOrigin(t, newProxy(t, ProxyConfig{Upstreams: []string{"http://" + app.addr}, HealthInterval: -1}),
		func(c *ServerConfig) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	reqFrame, _, err := o.codec.AppendRequest(nil, wsReq("/chat"))
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := post(t, o.addr, "POST", wire.TunnelPath, reqFrame)
	if status != 401 || !strings.Contains(string(body), "a request frame where a tunnel's handshake was expected") {
		t.Fatalf("request frame as a handshake: transport %d %q, want 401 naming the kind", status, body)
	}
	if n := metric(t, o.reg, "wedge_origin_errors_total", "kind", "auth"); n != 1 {
		t.Fatalf("errors_total{kind=auth} = %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "tunnel handshake refused: not sealed as one") {
		t.Fatalf("no warning logged:\n%s", logs.String())
	}
	hsFrame, _, err := o.codec.AppendTunnelRequest(nil, wsReq("/chat"))
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ = post(t, o.addr, "POST", wire.Path, hsFrame)
	if status != 401 || !strings.Contains(string(body), "a tunnel's handshake where a request was expected") {
		t.Fatalf("handshake as a request: transport %d %q, want 401 naming the kind", status, body)
	}
	if h := app.lastHead(); h != "" {
		t.Fatalf("a frame of the wrong kind reached the app:\n%s", h)
	}

	if n := metric(t, o.reg, "wedge_origin_tunnel_legacy_handshakes_total"); n != 0 {
		t.Fatalf("tunnel_legacy_handshakes_total = %v without the option", n)
	}
	legacy := startOrigin(t, newProxy(t, ProxyConfig{Upstreams: []string{"http://" + app.addr}, HealthInterval: -1}),
		func(c *ServerConfig) { c.LegacyTunnelHandshakes = true })
	old, x, err := legacy.codec.AppendRequest(nil, wsReq("/old"))
	if err != nil {
		t.Fatal(err)
	}
	status, resp, _, _ := postTunnel(t, legacy.addr, old, func(body []byte) *wire.Response {
		resp := new(wire.Response)
		if _, err := legacy.codec.DecodeResponse(body, x, resp); err != nil {
			t.Fatalf("decode response: %v", err)
		}
		return resp
	})
	if status != 200 || resp.Status != 101 {
		t.Fatalf("legacy handshake: transport %d, envelope %+v", status, resp)
	}
	if status, resp, _, _ := openTunnel(t, legacy.addr, legacy.codec, wsReq("/new")); status != 200 || resp.Status != 101 {
		t.Fatalf("flagged handshake at a legacy origin: transport %d, envelope %+v", status, resp)
	}
	if n := metric(t, legacy.reg, "wedge_origin_tunnel_legacy_handshakes_total"); n != 1 {
		t.Fatalf("tunnel_legacy_handshakes_total = %v, want 1 (the old edge's handshake only)", n)
	}
}

// TestHandshakesBounded: the set of handshakes remembered is bounded, and
// makes room as they expire.
func TestHandshakesBounded(t *testing.T) {
	h := handshakes{max: 2}
	frame := func(b byte) []byte { return bytes.Repeat([]byte{b}, 26) }
	now := time.Now()
	if !h.first(frame(1), now.Add(-time.Hour), time.Minute) || !h.first(frame(2), now, time.Minute) {
		t.Fatal("fresh handshakes refused")
	}
	if h.first(frame(2), now, time.Minute) {
		t.Fatal("a repeat accepted")
	}
	// Full, but the first has expired: it makes room.
	if !h.first(frame(3), now, time.Minute) {
		t.Fatal("refused although an entry had expired")
	}
	if h.first(frame(4), now, time.Minute) {
		t.Fatal("accepted past the bound")
	}
}

// TestTunnelCloseGrace: once the edge ended its sending, an application
// that never closes its side gets TunnelCloseGrace, then the origin closes
// both connections and the tunnel's slot is free again.
func TestTunnelCloseGrace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(c, switched)
				io.Copy(io.Discard, br) // to the edge's half close, then it holds on
				<-stop
			})
		}
	})
	o := startOrigin(t, newProxy(t, ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1}),
		func(c *ServerConfig) { c.MaxTunnels = 1; c.TunnelCloseGrace = 50 * time.Millisecond })
	status, resp, c, br := openTunnel(t, o.addr, o.codec, wsReq("/chat"))
	if status != 200 || resp.Status != 101 {
		t.Fatalf("handshake: transport %d, envelope %+v", status, resp)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// postTunnel's deadline of a minute is the hang guard.
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("the origin did not close the tunnel: %v", err)
	}
	testutil.Eventually(t, time.Minute, "the tunnel's slot freed", func() bool {
		status, resp, _, _ := openTunnel(t, o.addr, o.codec, wsReq("/chat"))
		return status == 200 && resp.Status == 101
	})
}

// pieces reads as its sizes say, one piece per Read at most.
type pieces struct {
	data  []byte
	sizes []int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.sizes) == 0 {
		return 0, io.EOF
	}
	n := min(p.sizes[0], len(b), len(p.data))
	p.sizes = p.sizes[1:]
	copy(b, p.data[:n])
	p.data = p.data[n:]
	return n, nil
}

// TestCopyBytes: a tunnel direction copies every byte, in the order they
// came, as it moves from its small buffer to a pooled large one and back.
func TestCopyBytes(t *testing.T) {
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	src := &pieces{data: data, sizes: []int{10, 1 << 20, 1 << 20, 1 << 20, 100, 1 << 20, 5000, 1 << 20, 1 << 20}}
	var dst bytes.Buffer
	if err := copyBytes(&dst, src); err != nil {
		t.Fatal(err)
	}
	want := len(data) - len(src.data)
	if !bytes.Equal(dst.Bytes(), data[:want]) {
		t.Fatalf("copied %d bytes, not the %d read in order", dst.Len(), want)
	}
	if want <= 2*largeTunnelRead {
		t.Fatalf("only %d bytes read: the large buffer was not used", want)
	}
}

// pollApp is an application instance that holds GET /poll until release
// closes (a long poll), saying so on polled, and switches any other
// request to a tunnel that echoes, counting them.
type pollApp struct {
	url     string
	polled  chan struct{}
	tunnels atomic.Int64
}

func startPollApp(t *testing.T, release chan struct{}) *pollApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &pollApp{url: "http://" + ln.Addr().String(), polled: make(chan struct{}, 1)}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/poll" {
			a.polled <- struct{}{}
			<-release
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		a.tunnels.Add(1)
		brw.WriteString(switched)
		brw.Flush()
		go func() {
			defer c.Close()
			io.Copy(c, brw)
		}()
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return a
}

// TestTunnelsCountAsLoad: the balancer counts an upstream's open tunnels
// with its requests in flight. One long poll held on an instance sent
// every WebSocket to the other, however many it carried; a tunnel closed
// no longer counts.
func TestTunnelsCountAsLoad(t *testing.T) {
	release := make(chan struct{})
	a, b := startPollApp(t, release), startPollApp(t, release)
	p := newProxy(t, ProxyConfig{Upstreams: []string{a.url, b.url}, HealthInterval: -1})
	polled := make(chan struct{})
	go func() {
		serve(p, getReq("/poll"), time.Minute)
		close(polled)
	}()
	defer func() {
		close(release)
		<-polled
	}()
	busy, idle := a, b
	select {
	case <-a.polled:
	case <-b.polled:
		busy, idle = b, a
	case <-time.After(time.Minute):
		t.Fatal("the long poll never reached an instance")
	}
	open := func() net.Conn {
		t.Helper()
		var resp wire.Response
		c := p.OpenTunnel(time.Now().Add(time.Minute), wsReq("/ws"), &resp)
		if c == nil {
			t.Fatalf("tunnel: %d %s", resp.Status, resp.Body)
		}
		return c
	}
	// The poll and four tunnels: loads 3 and 2, whichever way the tie
	// went.
	var conns []net.Conn
	for range 4 {
		conns = append(conns, open())
	}
	if n := busy.tunnels.Load(); n < 1 || n > 2 {
		t.Fatalf("the instance holding the long poll got %d of 4 tunnels, want 1 or 2; the other %d", n, idle.tunnels.Load())
	}
	// A tunnel counts until its connection is closed, once.
	for _, c := range conns {
		c.Close()
		c.Close()
	}
	for _, u := range p.ups {
		if n := u.tunnels.Load(); n != 0 {
			t.Fatalf("%s: %d tunnels counted once all were closed", u.name, n)
		}
	}
}
