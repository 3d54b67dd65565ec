package origin

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
)

// scripted is an application written as raw bytes on real sockets: the
// n-th request it reads (counting from 0, across connections) is answered
// by answer(n, conn), which writes whatever it likes. It records how many
// connections it accepted and which of them the proxy closed.
type scripted struct {
	url    string
	answer func(n int, c net.Conn)

	mu     sync.Mutex
	reqs   []string // request lines, in order
	conns  int
	closed int // connections the proxy closed (read EOF or reset)
}

func startScripted(t *testing.T, answer func(n int, c net.Conn)) *scripted {
	t.Helper()
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{url: "http://" + ln.Addr().String(), answer: answer}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *scripted) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for {
		first := ""
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				if first == "" {
					s.mu.Lock()
					s.closed++
					s.mu.Unlock()
				}
				return
			}
			if line == "\r\n" {
				break
			}
			if first == "" {
				first = strings.TrimSpace(line)
			}
		}
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, first)
		s.mu.Unlock()
		s.answer(n, c)
	}
}

func (s *scripted) stats() (reqs, conns, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs), s.conns, s.closed
}

func (s *scripted) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestProxyStrictFraming: a response whose framing is ambiguous or whose
// header is malformed is refused with 502 and its connection closed, and
// the next request is answered on a new connection. Before the strict
// transport fasthttp took each of these (Transfer-Encoding winning over
// Content-Length, a bare LF as a line end, the last Content-Length, ...)
// and pooled the connection.
func TestProxyStrictFraming(t *testing.T) {
	const prefix = "upstream sent an invalid response: "
	for _, tc := range []struct {
		name, response, reason string
	}{
		{"content-length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			"both Content-Length and Transfer-Encoding"},
		{"chunked and content-length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			"both Content-Length and Transfer-Encoding"},
		{"differing content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "invalid or conflicting Content-Length"},
		{"content-length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", "invalid or conflicting Content-Length"},
		{"signed content-length", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "invalid or conflicting Content-Length"},
		{"gzip coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "transfer coding other than chunked"},
		{"identity coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nhello", "transfer coding other than chunked"},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "transfer coding other than chunked"},
		// fasthttp kept the last: deflate over gzip bytes, undecodable.
		{"content-encoding twice", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\ncontent-encoding: deflate\r\nContent-Length: 2\r\n\r\nok", "Content-Encoding repeated"},
		{"chunked on HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "transfer coding other than chunked"},
		{"bare LF", "HTTP/1.1 200 OK\r\nX-A: 1\nSet-Cookie: session=stolen\r\nContent-Length: 2\r\n\r\nok", "bare LF in the header"},
		{"bare LF line ends", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "bare LF in the header"},
		{"bare CR", "HTTP/1.1 200 OK\r\nX-A: 1\rSet-Cookie: session=stolen\r\nContent-Length: 2\r\n\r\nok", "bare CR in the header"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n Set-Cookie: session=stolen\r\nContent-Length: 2\r\n\r\nok", "obsolete line folding in the header"},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", "malformed header field"},
		{"no colon", "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 2\r\n\r\nok", "malformed header field"},
		{"NUL", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", "malformed header field"},
		{"control in name", "HTTP/1.1 200 OK\r\nX\x01A: 1\r\nContent-Length: 2\r\n\r\nok", "malformed header field"},
		{"not HTTP/1", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "malformed status line"},
		{"bytes past content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nshift",
			"bytes past the end of the response"},
		{"bytes past the last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n",
			"bytes past the end of the response"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "101 Switching Protocols, not asked for"},
		{"endless interim", strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", maxInterimRead+1) + okResponse, "too many interim responses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := startScripted(t, func(n int, c net.Conn) {
				if n == 0 {
					io.WriteString(c, tc.response)
					return
				}
				io.WriteString(c, okResponse)
			})
			p := newProxy(t, ProxyConfig{Upstreams: []string{app.url}, HealthInterval: -1})
			resp := serve(p, getReq("/first"), 5*time.Second)
			if resp.Status != 502 || string(resp.Error) != prefix+tc.reason {
				t.Fatalf("got %d %q, want 502 %q", resp.Status, resp.Error, prefix+tc.reason)
			}
			// At once: the pool's idle timeout must not be what retires
			// the connection.
			resp = serve(p, getReq("/second"), 5*time.Second)
			if resp.Status != 200 || string(resp.Body) != "ok" {
				t.Fatalf("next request: %d %q %q", resp.Status, resp.Body, resp.Error)
			}
			if reqs, conns, _ := app.stats(); reqs != 2 || conns != 2 {
				t.Errorf("application saw %d requests on %d connections, want 2 on 2", reqs, conns)
			}
			testutil.Eventually(t, 5*time.Second, "the proxy to close the first connection", func() bool {
				_, _, closed := app.stats()
				return closed == 1
			})
		})
	}
}

// TestProxyBodilessResponses: a 204, a 304 or an answer to HEAD ends at its
// header (RFC 9112 §6.3), so it is passed on without the body the
// application sent after it, and that connection is never used again: the
// next request gets its own answer, not the stray body.
func TestProxyBodilessResponses(t *testing.T) {
	for _, tc := range []struct {
		name, method, response string
		status                 uint64
	}{
		{"204 with a body", "GET", "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nshift", 204},
		{"304 with content-length and a body", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\nshift", 304},
		{"HEAD answered with a body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nshift", 200},
		{"HEAD answered chunked", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200},
		{"204 announcing a body", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := startScripted(t, func(n int, c net.Conn) {
				if n == 0 {
					io.WriteString(c, tc.response)
					return
				}
				io.WriteString(c, okResponse)
			})
			p := newProxy(t, ProxyConfig{Upstreams: []string{app.url}, HealthInterval: -1})
			req := getReq("/first")
			req.Method = wire.Bytes(tc.method)
			resp := serve(p, req, 5*time.Second)
			if resp.Status != tc.status || len(resp.Body) != 0 || len(resp.Error) != 0 {
				t.Fatalf("got %d %q %q, want %d without a body", resp.Status, resp.Body, resp.Error, tc.status)
			}
			// At once: the pool's idle timeout must not be what retires
			// the connection.
			resp = serve(p, getReq("/second"), 5*time.Second)
			if resp.Status != 200 || string(resp.Body) != "ok" {
				t.Fatalf("next request: %d %q %q", resp.Status, resp.Body, resp.Error)
			}
			if reqs, conns, _ := app.stats(); reqs != 2 || conns != 2 {
				t.Errorf("application saw %d requests on %d connections, want 2 on 2", reqs, conns)
			}
			testutil.Eventually(t, 5*time.Second, "the proxy to close the first connection", func() bool {
				_, _, closed := app.stats()
				return closed == 1
			})
		})
	}
}

// TestProxyLateLeftover: bytes an application writes after a response, a
// moment later, are found on the pooled connection before the next request
// goes out on it; the next request goes on a fresh connection and gets its
// own answer. Before connwatch on this hop it got the leftover as its
// response.
func TestProxyLateLeftover(t *testing.T) {
	for _, tc := range []struct{ name, first, later string }{
		{"past content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nleftover"},
		{"body after a 204", "HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nleftover"},
		{"a close after the response", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answered, late := make(chan struct{}), make(chan struct{})
			app := startScripted(t, func(n int, c net.Conn) {
				switch n {
				case 0:
					io.WriteString(c, tc.first)
					<-answered
					if tc.later == "" {
						c.(*net.TCPConn).CloseWrite()
					} else {
						io.WriteString(c, tc.later)
					}
					close(late)
				default:
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len("answer "+strconv.Itoa(n)))+"\r\n\r\nanswer "+strconv.Itoa(n))
				}
			})
			p := newProxy(t, ProxyConfig{Upstreams: []string{app.url}, HealthInterval: -1})
			req := getReq("/first")
			req.Method = wire.Bytes("POST") // not idempotent: nothing may be sent twice
			if resp := serve(p, req, 5*time.Second); resp.Status/100 != 2 {
				t.Fatalf("first: %d %q", resp.Status, resp.Error)
			}
			close(answered)
			<-late
			for i := 1; i <= 3; i++ {
				req := getReq("/next")
				req.Method = wire.Bytes("POST")
				resp := serve(p, req, 5*time.Second)
				if want := "answer " + strconv.Itoa(i); resp.Status != 200 || string(resp.Body) != want {
					t.Fatalf("request %d: %d %q %q, want %q", i, resp.Status, resp.Body, resp.Error, want)
				}
			}
			if reqs, conns, _ := app.stats(); reqs != 4 || conns != 2 {
				t.Errorf("application saw %d requests on %d connections, want 4 on 2", reqs, conns)
			}
		})
	}
}

// TestProxyInterim: informational responses reach the envelope in order,
// with their end-to-end fields; 100 Continue does not; the connection is
// reused after them; and only wire.MaxInterim of them travel.
func TestProxyInterim(t *testing.T) {
	hints := "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n" +
		"Content-Length: 0\r\nBad Name: x\r\nLink: </b.js>; rel=preload\r\n\r\n" +
		"HTTP/1.1 102 Processing\r\n\r\n"
	many := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </c.css>; rel=preload\r\n\r\n", wire.MaxInterim+3)
	app := startScripted(t, func(n int, c net.Conn) {
		switch n {
		case 0:
			io.WriteString(c, hints+okResponse)
		case 1:
			io.WriteString(c, many+okResponse)
		default:
			io.WriteString(c, okResponse)
		}
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{app.url}, HealthInterval: -1})
	resp := serve(p, getReq("/"), 5*time.Second)
	if resp.Status != 200 || string(resp.Body) != "ok" {
		t.Fatalf("got %d %q %q", resp.Status, resp.Body, resp.Error)
	}
	var got []string
	for _, in := range resp.Interim {
		s := strconv.Itoa(int(in.Status))
		for _, f := range in.Header {
			s += " | " + string(f.Name) + ": " + string(f.Value)
		}
		got = append(got, s)
	}
	want := []string{"103 | Link: </a.css>; rel=preload | Link: </b.js>; rel=preload", "102"}
	if !slices.Equal(got, want) {
		t.Errorf("interim\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	resp = serve(p, getReq("/"), 5*time.Second)
	if resp.Status != 200 || len(resp.Interim) != wire.MaxInterim {
		t.Errorf("%d interim responses sent: %d %q, %d passed on, want %d", wire.MaxInterim+3, resp.Status, resp.Error,
			len(resp.Interim), wire.MaxInterim)
	}
	resp = serve(p, getReq("/"), 5*time.Second)
	if resp.Status != 200 || len(resp.Interim) != 0 {
		t.Errorf("plain response: %d, %d interim", resp.Status, len(resp.Interim))
	}
	if reqs, conns, _ := app.stats(); reqs != 3 || conns != 1 {
		t.Errorf("application saw %d requests on %d connections, want 3 on 1", reqs, conns)
	}
}

// TestCheckResponseHeader pins what the strict check takes: the framing it
// reads and the well-formed headers it lets through.
func TestCheckResponseHeader(t *testing.T) {
	for _, tc := range []struct {
		block   string
		status  int
		length  int64
		chunked bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", 200, 12, false},
		{"HTTP/1.1 200\r\n\r\n", 200, -1, false},
		{"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 404, 0, false},
		{"HTTP/1.1 200 OK\r\ntransfer-encoding:  Chunked \r\n\r\n", 200, -1, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n", 200, -1, true},
		{"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 103, -1, false},
		{"HTTP/1.1 200 OK\r\nBad Name: dropped later\r\nX-Obs: \x80\xff\t\r\n\r\n", 200, -1, false},
	} {
		info, err := checkResponseHeader([]byte(tc.block))
		if err != nil || info.status != tc.status || info.length != tc.length || info.chunked != tc.chunked {
			t.Errorf("%q: %+v, %v", tc.block, info, err)
		}
	}
	for _, block := range []string{
		"", "\r\n\r\n", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 099 Low\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n: empty\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
	} {
		if info, err := checkResponseHeader([]byte(block)); err == nil {
			t.Errorf("%q accepted: %+v", block, info)
		}
	}
}

// FuzzCheckResponseHeader: whatever the check accepts, fasthttp reads the
// same way (status, length, chunked) and sees the same fields, one per
// field line; and the check never accepts a block with a bare CR or LF.
func FuzzCheckResponseHeader(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\nSet-Cookie: a=1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\rSet-Cookie: a=1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length : 3\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		info, err := checkResponseHeader(block)
		if err != nil {
			var ue *upstreamError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not an upstreamError", err)
			}
			return
		}
		for i, c := range block {
			if (c == '\n' && (i == 0 || block[i-1] != '\r')) || (c == '\r' && (i+1 == len(block) || block[i+1] != '\n')) {
				t.Fatalf("accepted %q with a bare CR or LF at %d", block, i)
			}
		}
		if i := strings.Index(string(block), "\r\n\r\n"); i != len(block)-4 {
			t.Fatalf("accepted %q, whose header ends at %d", block, i)
		}
		var h fasthttp.ResponseHeader
		h.DisableNormalizing()
		if err := h.Read(bufio.NewReader(strings.NewReader(string(block)))); err != nil {
			// fasthttp is stricter about some things (a status line's
			// reason, say); refusing more is safe.
			return
		}
		if h.StatusCode() != info.status {
			t.Fatalf("%q: status %d here, %d to fasthttp", block, info.status, h.StatusCode())
		}
		if info.status >= 200 && info.status != 204 && info.status != 304 {
			switch cl := h.ContentLength(); {
			case info.chunked && cl != -1:
				t.Fatalf("%q: chunked here, length %d to fasthttp", block, cl)
			case !info.chunked && info.length >= 0 && int64(cl) != info.length:
				t.Fatalf("%q: length %d here, %d to fasthttp", block, info.length, cl)
			}
		}
		// Every field fasthttp sees is a field line of the block, but for
		// those it makes up itself (defaults, framing it infers).
		lines := strings.Split(string(block), "\r\n")
		for k := range h.All() {
			switch strings.ToLower(string(k)) {
			case "content-type", "content-length", "transfer-encoding", "connection", "server", "date":
				continue
			}
			if !slices.ContainsFunc(lines[1:], func(l string) bool {
				return len(l) > len(k) && strings.EqualFold(l[:len(k)], string(k)) && l[len(k)] == ':'
			}) {
				t.Fatalf("%q: fasthttp sees a field %q no line starts with", block, k)
			}
		}
	})
}

// TestStreamedAnswerLeavesAbort: once a response body is handed over, the
// exchange's Abort (its job's, and so the next exchange's once the job is
// back in its pool) is no longer the stream's. The stream's end detached
// whatever connection it then held: the next exchange's, whose client's
// hang-up then closed nothing, and its application's request ran on.
func TestStreamedAnswerLeavesAbort(t *testing.T) {
	const size = 1 << 20
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(bytes.Repeat([]byte("x"), size)) })
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1, StreamThreshold: 64 << 10})
	var ab connwatch.Abort
	st := &exchangeStream{accept: true, idle: time.Minute}
	ctx := &exchangeCtx{deadline: time.Now().Add(time.Minute), stream: st, abort: &ab}
	var resp wire.Response
	p.ServeOrigin(ctx, getReq("/big"), &resp)
	if resp.Status != 200 || st.up == nil {
		t.Fatalf("status %d, handed over %v: want the body streamed", resp.Status, st.up != nil)
	}
	// The job goes back to its pool and the next exchange attaches its
	// upstream connection.
	ab.Reset()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	next, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	ab.Attach(next)
	if n, err := io.Copy(io.Discard, st.up); n != size || err != nil {
		t.Fatalf("streamed body: %d bytes, %v", n, err)
	}
	st.up.Close()
	ab.Abort() // the next exchange's client hangs up
	if _, err := next.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the next exchange's connection after its abort: write %v, want it closed", err)
	}
}
