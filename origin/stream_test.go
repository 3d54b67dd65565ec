package origin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
)

// streamBody seals a streamed request with body, in chunks of step bytes,
// as an edge sends it: the HTTP body and the edge's exchange after it.
func streamBody(t *testing.T, c *wire.Codec, body []byte, step int) ([]byte, wire.Exchange) {
	t.Helper()
	return streamRequest(t, c, &wire.Request{Method: wire.Bytes("PUT"), Path: wire.Bytes("/up")}, body, step)
}

// streamRequest is streamBody with the request's head.
func streamRequest(t *testing.T, c *wire.Codec, req *wire.Request, body []byte, step int) ([]byte, wire.Exchange) {
	t.Helper()
	head, x, err := c.AppendRequestHead(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.Write(wire.AppendHead(nil, head))
	w, err := c.NewBodyWriter(&out, &x)
	if err != nil {
		t.Fatal(err)
	}
	for p := body; len(p) > 0; p = p[min(step, len(p)):] {
		w.Write(p[:min(step, len(p))])
	}
	w.Close()
	return out.Bytes(), x
}

func postStream(t *testing.T, addr string, body []byte) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.Path)
	req.Header.SetMethod("POST")
	req.Header.SetContentType(wire.StreamContentType)
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), bytes.Clone(resp.Body())
}

// TestServerStreamedRequest: a streamed request body reaches the handler
// whole, and the answer is bound to the end of the body; one altered in
// transit (a chunk tampered with, dropped, reordered, or the end cut off)
// is refused with the error saying which chunk and why, and never reaches
// the handler.
func TestServerStreamedRequest(t *testing.T) {
	ran := make(chan string, 16)
	h := HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		ran <- string(req.Path)
		resp.Body = fmt.Appendf(resp.Body, "%d %x", len(req.Body), sha256.Sum256(req.Body))
	})
	o := startOrigin(t, h, nil)
	body := bytes.Repeat([]byte("streamed "), 30000) // 270,000 bytes: 5 chunks of 64 KiB
	in, x := streamBody(t, o.codec, body, 1<<20)

	st, out := postStream(t, o.addr, in)
	if st != 200 {
		t.Fatalf("intact: %d %q", st, out)
	}
	var resp wire.Response
	if _, err := o.codec.DecodeResponse(out, x, &resp); err != nil {
		t.Fatalf("the answer does not verify against the end of the body: %v", err)
	}
	if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); string(resp.Body) != want {
		t.Fatalf("handler saw %q, want %q", resp.Body, want)
	}
	<-ran

	headLen := 4 + int(binary.BigEndian.Uint32(in))
	chunk := func(i int) (int, int) { // offsets of data chunk i (64 KiB each)
		s := headLen + i*(20+wire.MaxChunk)
		return s, s + 20 + wire.MaxChunk
	}
	cases := []struct {
		name   string
		edit   func([]byte) []byte
		status int
		msg    string
	}{
		{"tampered", func(b []byte) []byte { s, _ := chunk(2); b[s+100] ^= 1; return b }, 401, "chunk 2: bad MAC"},
		{"dropped", func(b []byte) []byte { s, e := chunk(1); return append(b[:s], b[e:]...) }, 401, "chunk 1: bad MAC"},
		{"reordered", func(b []byte) []byte {
			s0, e0 := chunk(0)
			_, e1 := chunk(1)
			c0 := bytes.Clone(b[s0:e0])
			copy(b[s0:], b[e0:e1])
			copy(b[s0+(e1-e0):], c0)
			return b
		}, 401, "chunk 0: bad MAC"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-20] }, 400, "without its end chunk"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, out := postStream(t, o.addr, tc.edit(bytes.Clone(in)))
			if st != tc.status || !strings.Contains(string(out), tc.msg) {
				t.Fatalf("got %d %q, want %d with %q", st, out, tc.status, tc.msg)
			}
			select {
			case p := <-ran:
				t.Fatalf("the handler ran (%s) on an altered body", p)
			default:
			}
		})
	}
}

// keyless opens a connection that POSTs a chunked body to path with
// Content-Type ct, sends pre (a first piece of the body, as raw chunks),
// and returns once the server has read the header and runs the handler
// (its 100 Continue came): a peer without the key, holding on.
func keyless(t *testing.T, addr, path, ct, pre string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	head := "POST " + path + " HTTP/1.1\r\nHost: origin\r\nContent-Type: " + ct +
		"\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want a 100 Continue, got %q (%v)", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, pre); err != nil {
		t.Fatal(err)
	}
	return c, br
}

// TestPreAuthNoSlots: peers without the key, sending a frame, a streamed
// head or a tunnel handshake slowly, take neither an in-flight slot nor a
// tunnel slot: with one of each, an edge's exchange and tunnel handshake
// still go through while they hold on.
func TestPreAuthNoSlots(t *testing.T) {
	h := HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) { resp.Body = append(resp.Body, "ok"...) })
	o := startOrigin(t, h, func(c *ServerConfig) { c.MaxInFlight, c.MaxTunnels = 1, 1 })
	claim := "4\r\n\x00\x10\x00\x00\r\n" // a head of 1 MiB, as a chunk
	keyless(t, o.addr, wire.Path, "application/wedge", "3\r\nabc\r\n")
	keyless(t, o.addr, wire.Path, wire.StreamContentType, claim)
	keyless(t, o.addr, wire.TunnelPath, "application/wedge", "3\r\nabc\r\n")
	if r := exchange(t, o.addr, o.codec, getReq("/")); r.Status != 200 || string(r.Body) != "ok" {
		t.Fatalf("exchange: %d %q, want 200 ok", r.Status, r.Body)
	}
	// Not a Tunneler: the answer is the envelope's 501, past the slot.
	if status, resp, _, _ := openTunnel(t, o.addr, o.codec, wsReq("/chat")); status != 200 || resp.Status != 501 {
		t.Fatalf("tunnel handshake: transport %d, want 200 with the envelope's 501", status)
	}
}

// TestPreAuthHeadDeadline: a peer without the key that trickles a
// streamed head byte by byte is cut off at a fixed deadline (MaxTimeout),
// which its bytes do not move on.
func TestPreAuthHeadDeadline(t *testing.T) {
	h := HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {})
	o := startOrigin(t, h, func(c *ServerConfig) { c.MaxTimeout = 300 * time.Millisecond })
	c, br := keyless(t, o.addr, wire.Path, wire.StreamContentType, "4\r\n\x00\x00\x10\x00\r\n")
	answered := make(chan *http.Response, 1)
	go func() {
		resp, _ := http.ReadResponse(br, nil)
		answered <- resp
	}()
	// Each byte comes well within MaxTimeout of the one before, so a
	// deadline moved on by each read never passes; 100 of them take 5 s.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range 100 {
		select {
		case resp := <-answered:
			if resp == nil || resp.StatusCode != 400 {
				t.Fatalf("cut off with %v, want a 400", resp)
			}
			return
		case <-tick.C:
			if _, err := io.WriteString(c, "1\r\nx\r\n"); err != nil {
				return // closed: cut off
			}
		}
	}
	t.Fatal("a head trickled for 5 s was not cut off")
}

// TestPreAuthMemory: what a peer without the key makes the server hold
// is what it sent, not the length it claims: four connections claiming
// frames and heads of 16 MiB, each sending a few bytes, leave the server
// far from 64 MiB allocated.
func TestPreAuthMemory(t *testing.T) {
	h := HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {})
	o := startOrigin(t, h, nil)
	max := o.codec.MaxEnvelope()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	frame := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: origin\r\nContent-Type: application/wedge\r\nContent-Length: %d\r\n\r\n", wire.Path, max)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: origin\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n\x00\xff\xff\xff",
		wire.Path, wire.StreamContentType, max)
	for _, req := range []string{frame, frame, head, head} {
		c, err := net.Dial("tcp", o.addr)
		if err != nil {
			t.Fatal(err)
		}
		// Past fasthttp's own pre-read of 8 KiB, so the handler runs.
		if _, err := io.WriteString(c, req+strings.Repeat("x", 10<<10)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	testutil.Eventually(t, 20*time.Second, "the four frames refused", func() bool {
		return metric(t, o.reg, "wedge_origin_errors_total", "kind", "frame") == 4
	})
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("four cut-off frames of 10 KiB allocated %d MiB", grew>>20)
	}
}

// TestProxyAnsweredEarly: an application that answers a large streamed
// upload before it read the body (401 without reading it; 413 after
// 100 KiB of it, as multer does past its limit) and closes the connection
// has its answer passed on, with its header fields and body, for a body
// with a length and a chunked one, and it counts as an answer, not an
// upstream error. Before, the proxy wrote the whole body first and, the
// connection being closed, answered 502 "upstream reset the connection".
func TestProxyAnsweredEarly(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/limit" {
			io.CopyN(io.Discard, r.Body, 100<<10)
			w.Header().Set("X-Read", "100KiB")
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "no token", http.StatusUnauthorized)
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	reg := newRegistry()
	m := NewMetrics(reg)
	p := newProxy(t, ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1, Metrics: m})
	o := startOrigin(t, p, func(c *ServerConfig) { c.Metrics = m })

	body := bytes.Repeat([]byte("upload "), 24<<20/7) // 24 MiB: more than the sockets' buffers hold
	cases := []struct {
		path, field, value string
		status             int
		text               string
	}{
		{"/deny", "WWW-Authenticate", "Bearer", 401, "no token\n"},
		{"/limit", "X-Read", "100KiB", 413, "too large\n"},
	}
	for _, tc := range cases {
		for _, length := range []bool{true, false} {
			req := &wire.Request{Method: wire.Bytes("POST"), Path: wire.Bytes(tc.path)}
			if length {
				req.AddHeader([]byte("Content-Length"), []byte(strconv.Itoa(len(body))))
			}
			in, x := streamRequest(t, o.codec, req, body, wire.MaxChunk)
			st, out := postStream(t, o.addr, in)
			if st != 200 {
				t.Fatalf("%s (length %v): transport status %d %q", tc.path, length, st, out)
			}
			var resp wire.Response
			if _, err := o.codec.DecodeResponse(out, x, &resp); err != nil {
				t.Fatalf("%s (length %v): %v", tc.path, length, err)
			}
			v, _ := wire.Get(resp.Header, tc.field)
			if resp.Status != uint64(tc.status) || string(resp.Body) != tc.text || string(v) != tc.value {
				t.Errorf("%s (length %v): %d %q (%s: %q, error %q), want the application's %d %q",
					tc.path, length, resp.Status, resp.Body, tc.field, v, resp.Error, tc.status, tc.text)
			}
		}
	}
	if got := metric(t, reg, "wedge_origin_upstream_requests_total", "outcome", "error"); got != 0 {
		t.Errorf("%v upstream errors counted for answers", got)
	}
	if got := metric(t, reg, "wedge_origin_upstream_requests_total", "outcome", "ok"); got != 4 {
		t.Errorf("%v answers counted, want 4", got)
	}
}

// TestProxyAnsweredEarlyNotReused: the connection an application answered
// on before it read the streamed body (and that it keeps open) is not used
// again, since the rest of that body would be read as the next request:
// the answer comes without the rest of the body being sent, and the next
// request goes on a new connection. Before, the proxy went on writing the
// body the application did not read until the origin's timeout.
func TestProxyAnsweredEarlyNotReused(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan net.Conn, 8)
	go func() {
		for range cap(conns) {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			// Each connection is answered once, from its request line: 401
			// to the upload, whose body is never read, 200 to anything else.
			go func() {
				line, _ := bufio.NewReader(c).ReadString('\n')
				answer := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
				if strings.HasPrefix(line, "PUT") {
					answer = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 8\r\n\r\nno token"
				}
				io.WriteString(c, answer)
			}()
		}
	}()
	t.Cleanup(func() {
		for range len(conns) {
			(<-conns).Close()
		}
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1})
	o := startOrigin(t, p, func(c *ServerConfig) { c.MaxTimeout = 5 * time.Second })

	body := bytes.Repeat([]byte("upload "), 24<<20/7) // more than the sockets' buffers hold
	in, x := streamBody(t, o.codec, body, wire.MaxChunk)
	st, out := postStream(t, o.addr, in)
	var resp wire.Response
	if st == 200 {
		_, err = o.codec.DecodeResponse(out, x, &resp)
	}
	if st != 200 || err != nil || resp.Status != 401 || string(resp.Body) != "no token" {
		t.Fatalf("upload: %d %v, %d %q (%q), want the application's 401", st, err, resp.Status, resp.Body, resp.Error)
	}
	if got := exchange(t, o.addr, o.codec, getReq("/next")); got.Status != 200 || string(got.Body) != "ok" {
		t.Fatalf("next request: %d %q (%q), want 200 on a new connection", got.Status, got.Body, got.Error)
	}
	if n := len(conns); n != 2 {
		t.Fatalf("%d connections to the application, want 2", n)
	}
}
