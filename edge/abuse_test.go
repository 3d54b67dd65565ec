package edge_test

// Abuse at the edge (issue 6): each test sends what a hostile or broken
// client would to a real node on 127.0.0.1, checks the exact answer it gets,
// and checks that the node goes on serving other clients, during the abuse
// for the slow cases and after it for all.

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// originLog is an origin application that records every request it gets
// and answers with what it saw: method, path, body length and each header
// field as name=%q.
type originLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD PATH"
}

func (o *originLog) handler() origin.Handler {
	return origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		o.mu.Lock()
		o.reqs = append(o.reqs, string(req.Method)+" "+string(req.Path))
		o.mu.Unlock()
		resp.Status = 200
		resp.Body = fmt.Appendf(resp.Body, "%s %s body=%d", req.Method, req.Path, len(req.Body))
		for _, f := range req.Header {
			resp.Body = fmt.Appendf(resp.Body, " %s=%q", f.Name, f.Value)
		}
	})
}

// seen counts the requests for path.
func (o *originLog) seen(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, r := range o.reqs {
		if _, p, _ := strings.Cut(r, " "); p == path {
			n++
		}
	}
	return n
}

func (o *originLog) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reqs)
}

// startAbused runs a node with config's routes (the api route without
// plugins, the hello route with one) in front of a logging origin; limits
// ("read_timeout: 1s") is added to config's limits.
func startAbused(t *testing.T, limits string) (*testNode, *originLog) {
	t.Helper()
	log := &originLog{}
	cfg := config(origintest.Start(t, log.handler()).Addr, hello(t), "")
	if limits != "" {
		cfg = strings.Replace(cfg, "limits: {", "limits: {"+limits+", ", 1)
	}
	return startNode(t, cfg), log
}

// served sends a normal request on a new connection and fails the test
// unless it gets a 200: the node still serves other clients.
func served(t *testing.T, addr, when string) {
	t.Helper()
	if err := tryServed(addr); err != nil {
		t.Fatalf("%s, another client was not served: %v", when, err)
	}
}

func tryServed(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /api/ok HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /api/ok") {
		return fmt.Errorf("%d %q", resp.StatusCode, body)
	}
	return nil
}

// exchange writes req on a new connection and reads the first response.
// rest is whatever the server sent after it before closing the connection
// or going quiet for wait; closed says it closed the connection.
func exchange(t *testing.T, addr, req string, wait time.Duration) (resp *http.Response, body, rest string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	br := bufio.NewReader(c)
	method, _, _ := strings.Cut(req, " ")
	resp, err = http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: no response: %v", req, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(wait))
	more, err := io.ReadAll(br)
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	return resp, string(b), string(more), !timedOut
}

// TestAbuseSlowloris: clients that trickle a request's header a byte at a
// time, never finishing it, are answered 408 and dropped once
// limits.read_timeout has passed, while other clients are served.
func TestAbuseSlowloris(t *testing.T) {
	n, log := startAbused(t, "read_timeout: 1s")
	const slow = 5
	type outcome struct {
		got     string
		elapsed time.Duration
	}
	done := make(chan outcome, slow)
	var stop atomic.Bool
	defer stop.Store(true)
	start := time.Now()
	for i := range slow {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /api/slow%d HTTP/1.1\r\nHost: api.example.com\r\nX-Slow: ", i)
		go func() {
			// 100 bytes over 5 s: well within max_header_bytes, far past
			// the read timeout.
			for range 100 {
				if stop.Load() {
					return
				}
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, _ := io.ReadAll(c)
			done <- outcome{string(got), time.Since(start)}
		}()
	}
	// (A header section with bare LFs, which fasthttp never sees end,
	// gets a 400 at once: TestBareLFAtOnce.)
	// Meanwhile, with every slow client still sending.
	served(t, n.Addr, "during the slowloris")
	if len(done) != 0 {
		t.Fatalf("a slow client was dropped within %s, before the read timeout", time.Since(start))
	}
	served(t, n.Addr, "during the slowloris")
	served(t, n.Addr, "during the slowloris")
	for range slow {
		o := <-done
		if !strings.HasPrefix(o.got, "HTTP/1.1 408 ") {
			t.Errorf("slow header: got %q, want a 408", o.got)
		}
		if o.elapsed < 900*time.Millisecond || o.elapsed > 4*time.Second {
			t.Errorf("slow header dropped after %s, want about read_timeout (1s)", o.elapsed)
		}
	}
	if log.count() != 3 {
		t.Errorf("the origin got %d requests, want only the 3 normal ones", log.count())
	}
	served(t, n.Addr, "after the slowloris")
}

// TestAbuseSlowBody: a body trickled far slower than Content-Length needs
// gets a 408 at read_timeout and never reaches the origin in part.
func TestAbuseSlowBody(t *testing.T) {
	n, log := startAbused(t, "read_timeout: 1s")
	c, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "POST /api/slow HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 1000\r\n\r\n")
	var stop atomic.Bool
	defer stop.Store(true)
	go func() {
		for range 100 {
			if stop.Load() {
				return
			}
			if _, err := c.Write([]byte("b")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	done := make(chan string, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		done <- string(got)
	}()
	served(t, n.Addr, "during the slow body")
	select {
	case got := <-done:
		t.Fatalf("the slow body was answered %q within %s, before the read timeout", got, time.Since(start))
	default:
	}
	got := <-done
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond || elapsed > 4*time.Second {
		t.Errorf("slow body dropped after %s, want about read_timeout (1s)", elapsed)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Errorf("slow body: got %q, want a 408", got)
	}
	if log.seen("/api/slow") != 0 {
		t.Errorf("the origin got the unfinished request")
	}
	served(t, n.Addr, "after the slow body")
}

// TestAbuseConnFlood: with max_conns 20 and 40 connections opened, the 20
// past the limit get a 503 at once and are closed, the 20 within it keep
// working, and once they close new connections are served again.
func TestAbuseConnFlood(t *testing.T) {
	const limit = 20
	n, _ := startAbused(t, fmt.Sprintf("max_conns: %d", limit))
	req := "GET /api/flood HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
	ask := func(c net.Conn) (string, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Status, nil
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range limit {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if st, err := ask(c); err != nil || st != "200 OK" {
			t.Fatalf("connection %d, within the limit: %q %v", i+1, st, err)
		}
	}
	for i := range limit {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatalf("extra connection %d: %v", i+1, err)
		}
		t0 := time.Now()
		// The node answers at accept, before reading anything; a request
		// written first would be unread at the close, which then resets
		// the connection and may lose the answer.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c) // to the close: the node does not keep it
		c.Close()
		if !strings.HasPrefix(string(got), "HTTP/1.1 503 ") || err != nil {
			t.Fatalf("extra connection %d: %q %v, want a 503 and close", i+1, got, err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("extra connection %d refused after %s", i+1, d)
		}
	}
	for i, c := range held {
		if st, err := ask(c); err != nil || st != "200 OK" {
			t.Fatalf("held connection %d after the flood: %q %v", i+1, st, err)
		}
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	// The node notices the closes as its connection goroutines return: poll.
	deadline := time.Now().Add(5 * time.Second)
	for len(held) < limit {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := ask(c); err != nil || st != "200 OK" {
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("after the held connections closed, %d new ones served, then %q %v", len(held), st, err)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
			continue
		}
		held = append(held, c)
	}
}

// TestAbuseOversized: past max_header_bytes (4096) the request line or the
// header section gets a 431, past max_body_bytes (65536) a declared or a
// chunked body gets a 413, each with the connection closed. TestNodeLimits
// covers one big field and a whole big Content-Length body; these are the
// other shapes.
func TestAbuseOversized(t *testing.T) {
	n, log := startAbused(t, "")
	var many strings.Builder
	for i := range 200 {
		fmt.Fprintf(&many, "X-Field-%d: %s\r\n", i, strings.Repeat("v", 20))
	}
	chunk := strings.Repeat("c", 8000)
	var chunked strings.Builder
	for range 9 { // 72,000 bytes
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	chunked.WriteString("0\r\n\r\n")
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"request line", "GET /api/" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nHost: api.example.com\r\n\r\n", 431},
		{"query", "GET /api/x?q=" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nHost: api.example.com\r\n\r\n", 431},
		{"many small fields", "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\n" + many.String() + "\r\n", 431},
		// Only the header is sent: the refusal must not wait for a body
		// it will not take.
		{"declared body", "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 100000\r\n\r\n", 413},
		{"chunked body", "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String(), 413},
		// Refused before 100 Continue: the handler never runs.
		{"declared body, Expect: 100-continue", "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n", 413},
	} {
		resp, body, _, closed := exchange(t, n.Addr, tc.req, 2*time.Second)
		if resp.StatusCode != tc.want || !closed {
			t.Errorf("%s: %d, closed %t; want %d and closed", tc.name, resp.StatusCode, closed, tc.want)
		}
		// RFC 9110 §6.6.1: a server with a clock dates its answers.
		if resp.Header.Get("Date") == "" || !strings.Contains(body, "limit") {
			t.Errorf("%s: Date %q, body %q; want a Date and the reason", tc.name, resp.Header.Get("Date"), body)
		}
		served(t, n.Addr, "after an oversized "+tc.name)
	}
	if c := log.count(); c != log.seen("/api/ok") {
		t.Errorf("the origin got %d requests, want only the normal ones", c)
	}
}

// TestAbuseMalformed: requests that are not HTTP/1.1 as RFC 9112 has it get
// a 400 (505 for a version other than 1.0 and 1.1) and the connection is
// closed.
func TestAbuseMalformed(t *testing.T) {
	n, log := startAbused(t, "")
	const host = "Host: api.example.com\r\n"
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"garbage request line", "GARBAGE\r\n\r\n", 400},
		{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400}, // a TLS hello on the HTTP port
		{"no version", "GET /api/x\r\n" + host + "\r\n", 400},
		{"lower-case version", "GET /api/x http/1.1\r\n" + host + "\r\n", 400},
		{"not HTTP", "GET /api/x FOO/1.1\r\n" + host + "\r\n", 400},
		{"two spaces", "GET  /api/x HTTP/1.1\r\n" + host + "\r\n", 400},
		{"HTTP/2.0", "GET /api/x HTTP/2.0\r\n" + host + "\r\n", 505},
		{"HTTP/9.9", "GET /api/x HTTP/9.9\r\n" + host + "\r\n", 505},
		{"HTTP/0.9", "GET /api/x HTTP/0.9\r\n" + host + "\r\n", 505},
		// RFC 9110 §2.5 would have 1.2 processed as 1.1; fasthttp takes it
		// for 1.0 (no chunked, no keep-alive, no upgrade), so it is refused.
		{"HTTP/1.2", "GET /api/x HTTP/1.2\r\n" + host + "\r\n", 505},
		{"HTTP/1.9", "GET /api/x HTTP/1.9\r\n" + host + "\r\n", 505},
		// RFC 9112 §3.2: a 1.1 request without Host, or with two, is a 400.
		{"no Host", "GET /api/x HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET /api/x HTTP/1.1\r\n" + host + "Host: other.example.com\r\n\r\n", 400},
		// RFC 9110 §4.2.4: no userinfo; fasthttp routed "u@a" as a.
		{"userinfo in Host", "GET /api/x HTTP/1.1\r\nHost: u:p@api.example.com\r\n\r\n", 400},
		{"userinfo in an absolute target", "GET http://u@api.example.com/api/x HTTP/1.1\r\n" + host + "\r\n", 400},
		// RFC 9112 §3.2: a Host that is not a uri-host and port is a 400.
		{"non-ASCII Host", "GET /api/x HTTP/1.1\r\nHost: api.\u212Axample.com\r\n\r\n", 400},
		{"invalid UTF-8 in Host", "GET /api/x HTTP/1.1\r\nHost: api\xff.example.com\r\n\r\n", 400},
		{"path in Host", "GET /x HTTP/1.1\r\nHost: api.example.com/api\r\n\r\n", 400},
		{"query in Host", "GET /api/x HTTP/1.1\r\nHost: api.example.com?a=1\r\n\r\n", 400},
		{"letter in the port", "GET /api/x HTTP/1.1\r\nHost: api.example.com:8o\r\n\r\n", 400},
		{"bad escape in Host", "GET /api/x HTTP/1.1\r\nHost: api.example.com%zz\r\n\r\n", 400},
		{"non-ASCII absolute target", "GET http://api.\u212Axample.com/api/x HTTP/1.1\r\n" + host + "\r\n", 400},
		{"NUL in a value", "GET /api/x HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n", 400},
		{"NUL in a name", "GET /api/x HTTP/1.1\r\n" + host + "X-\x00A: a\r\n\r\n", 400},
		{"control in a value", "GET /api/x HTTP/1.1\r\n" + host + "X-A: a\x01b\r\n\r\n", 400},
		{"DEL in a value", "GET /api/x HTTP/1.1\r\n" + host + "X-A: a\x7fb\r\n\r\n", 400},
		{"parenthesis in a name", "GET /api/x HTTP/1.1\r\n" + host + "X(A): b\r\n\r\n", 400},
		{"space in a name", "GET /api/x HTTP/1.1\r\n" + host + "X A: b\r\n\r\n", 400},
		{"quote in a name", "GET /api/x HTTP/1.1\r\n" + host + "X\"A: b\r\n\r\n", 400},
		{"no colon", "GET /api/x HTTP/1.1\r\n" + host + "X-A b\r\n\r\n", 400},
		// RFC 9112 §5.1: whitespace between name and colon MUST get a 400.
		{"space before colon", "GET /api/x HTTP/1.1\r\n" + host + "X-A : b\r\n\r\n", 400},
		{"tab before colon", "GET /api/x HTTP/1.1\r\n" + host + "X-A\t: b\r\n\r\n", 400},
		// RFC 9112 §2.2: whitespace before the first field.
		{"space before the first field", "GET /api/x HTTP/1.1\r\n " + host + "\r\n", 400},
		{"CTL in the target", "GET /api/\x01 HTTP/1.1\r\n" + host + "\r\n", 400},
	} {
		resp, body, _, closed := exchange(t, n.Addr, tc.req, 2*time.Second)
		if resp.StatusCode != tc.want || !closed {
			t.Errorf("%s: %d %q, closed %t; want %d and closed", tc.name, resp.StatusCode, body, closed, tc.want)
		}
		served(t, n.Addr, "after "+tc.name)
	}
	if c := log.count(); c != log.seen("/api/ok") {
		t.Errorf("the origin got %d requests, want only the normal ones", c)
	}
}

// TestAbuseSmuggling: framing that two parsers could read differently is
// refused, or read one way with the connection closed after the answer
// (RFC 9112 §6.1), so that no request hidden in a body reaches the origin.
func TestAbuseSmuggling(t *testing.T) {
	n, log := startAbused(t, "")
	const (
		head     = "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\n"
		smuggled = "GET /api/smuggled HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
	)
	// Both Content-Length and chunked: Transfer-Encoding wins, Content-Length
	// is dropped, and the connection closes after the answer, whichever
	// framing the smuggled request hides behind.
	for _, tc := range []struct {
		name, req string
		body      int // what the origin must get, as chunked frames it
	}{
		// CL.TE: by Content-Length the smuggled request is body; by chunked
		// it is the next request on the connection.
		{"CL.TE", head + "Content-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + smuggled, 5},
		// TE.CL: by chunked the smuggled request is body; by Content-Length
		// (4 bytes: the chunk size line) it is the next request.
		{"TE.CL", head + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled), len(smuggled)},
		{"CL 0 and chunked", head + "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 0},
	} {
		before := log.count()
		resp, body, rest, closed := exchange(t, n.Addr, tc.req, 2*time.Second)
		if want := fmt.Sprintf("POST /api/x body=%d", tc.body); resp.StatusCode != 200 || body != want {
			t.Errorf("%s: %d %q, want 200 %q", tc.name, resp.StatusCode, body, want)
		}
		if !closed || !resp.Close || rest != "" {
			t.Errorf("%s: Connection: close %t, closed %t, then %q: the connection must close after the answer", tc.name, resp.Close, closed, rest)
		}
		if got := log.count() - before; got != 1 {
			t.Errorf("%s: the origin got %d requests, want 1", tc.name, got)
		}
		served(t, n.Addr, "after "+tc.name)
	}
	// Framing the node cannot trust at all is refused.
	for _, tc := range []struct {
		name, req string
	}{
		{"two Content-Lengths", head + "Content-Length: 3\r\nContent-Length: 60\r\n\r\nabc" + smuggled},
		{"a Content-Length list", head + "Content-Length: 3, 60\r\n\r\nabc" + smuggled},
		{"signed Content-Length", head + "Content-Length: +3\r\n\r\nabc" + smuggled},
		// RFC 9112 §6.1 says 501 for a coding the server does not know; 400
		// is what fasthttp answers and closes just the same.
		{"gzip", head + "Transfer-Encoding: gzip\r\n\r\nabc" + smuggled},
		{"chunked, identity", head + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled},
		// RFC 9112 §6.3: chunked not the final coding. fasthttp took
		// identity for no body and what followed for the next request.
		{"identity", head + "Transfer-Encoding: identity\r\n\r\n" + smuggled},
		{"Identity with a Content-Length", head + "Transfer-Encoding: Identity\r\nContent-Length: 3\r\n\r\nabc" + smuggled},
		{"two Transfer-Encodings", head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		// RFC 9112 §6.1: in HTTP/1.0 Transfer-Encoding means faulty framing.
		{"chunked in HTTP/1.0", "POST /api/x HTTP/1.0\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"chunk size with bare LF", head + "Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n" + smuggled},
		// Bare CR is never a line terminator (RFC 9112 §2.2).
		{"bare CR between fields", "GET /api/x HTTP/1.1\r\nHost: api.example.com\rX-A: a\r\n\r\n" + smuggled},
		{"bare CR in a value", "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\nX-A: a\rX-B: b\r\n\r\n" + smuggled},
		{"CR CR LF", "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\nX-A: a\r\r\n\r\n" + smuggled},
		// RFC 9112 §2.2 allows a bare LF as a line end, but a parser in
		// front of the edge may not: one field there, two here.
		{"bare LF ending a field", "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\nX-A: a\nX-B: b\r\n\r\n" + smuggled},
		{"bare LF throughout", "GET /api/x HTTP/1.1\nHost: api.example.com\nX-A: a\n\n" + smuggled},
		// obs-fold (RFC 9112 §5.2): refused, not unfolded, so no field
		// hides in another's value.
		{"obs-fold with space", "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\nX-A: a\r\n b\r\n\r\n" + smuggled},
		{"obs-fold with tab", "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\nX-A: a\r\n\tX-Smuggled: c\r\n\r\n" + smuggled},
	} {
		before := log.count()
		resp, body, rest, closed := exchange(t, n.Addr, tc.req, 2*time.Second)
		if resp.StatusCode != 400 || !closed || rest != "" {
			t.Errorf("%s: %d %q, closed %t, then %q; want 400 and closed", tc.name, resp.StatusCode, body, closed, rest)
		}
		if got := log.count() - before; got != 0 {
			t.Errorf("%s: the origin got %d requests", tc.name, got)
		}
		served(t, n.Addr, "after "+tc.name)
	}
	if c := log.seen("/api/smuggled"); c != 0 {
		t.Errorf("a smuggled request reached the origin %d times", c)
	}
	served(t, n.Addr, "after the smuggling attempts")
}

// TestAbuseTrailers: fasthttp parses a chunked body's trailer section
// leniently (a bare LF, obs-fold, whitespace in or before a name) and took
// what followed for the next request, which a parser before the edge may
// read as part of this one: it was served. The connection now closes after
// the answer to any chunked request, whether its body is read whole or
// streamed, empty (whose length fasthttp sets to 0 once read) or not,
// well-formed trailer or not, so nothing after one is served.
func TestAbuseTrailers(t *testing.T) {
	const smuggled = "GET /api/smuggled HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
	head := "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
	big := strings.Repeat("b", 5000) // past stream_threshold: streamed
	for _, limits := range []string{"", "stream_threshold: 1024"} {
		n, log := startAbused(t, limits)
		for _, body := range []string{"", "5\r\nhello\r\n", fmt.Sprintf("%x\r\n%s\r\n", len(big), big)} {
			for _, tc := range []struct{ name, tail string }{
				{"well-formed trailer", "0\r\nX-T: a\r\nX-U:b \r\n\r\n"},
				{"bare LF ending the section", "0\r\n\n"},
				{"bare LF ending a field", "0\r\nX-T: a\nX-U: b\r\n\r\n"},
				{"obs-fold", "0\r\nX-T: a\r\n b\r\n\r\n"},
				{"space in a name", "0\r\nX T: a\r\n\r\n"},
				{"space before the colon", "0\r\nX-T : a\r\n\r\n"},
				{"tab before a name", "0\r\n\tX-T: a\r\n\r\n"},
				{"bare LF after the last chunk", "0\n\r\n"},
			} {
				name := fmt.Sprintf("%q, %d-byte body, %s", limits, len(body), tc.name)
				_, _, rest, closed := exchange(t, n.Addr, head+body+tc.tail+smuggled, 2*time.Second)
				if !closed || rest != "" {
					t.Errorf("%s: closed %t, then %.40q; want the connection closed after the answer", name, closed, rest)
				}
			}
		}
		// Pipelined behind another request: two answers, then closed.
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /api/first HTTP/1.1\r\nHost: api.example.com\r\n\r\n"+head+"5\r\nhello\r\n0\r\n\n"+smuggled)
		raw, err := io.ReadAll(c)
		c.Close()
		if err != nil || strings.Count(string(raw), "HTTP/1.1 ") != 2 {
			t.Errorf("%q, pipelined: %v, %q; want two answers, then the connection closed", limits, err, raw)
		}
		if c := log.seen("/api/smuggled"); c != 0 {
			t.Errorf("%q: a smuggled request reached the origin %d times", limits, c)
		}
		served(t, n.Addr, "after the trailers")
	}
}

// TestAbuseOriginFields: a field an application in the origin's process
// sets with a name that is not a token, or a value with CR or LF, does not
// reach the client: the edge wrote "Content-Length: 0, X" as a second
// Content-Length line.
func TestAbuseOriginFields(t *testing.T) {
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Content-Length: 0, X"), []byte("v"))
		resp.AddHeader([]byte("X A"), []byte("b"))
		resp.AddHeader([]byte("X-Split"), []byte("a\r\nSet-Cookie: evil=1"))
		resp.AddHeader([]byte("X-Kept"), []byte("yes"))
		resp.Body = append(resp.Body, "hello"...)
	})).Addr
	n := startNode(t, fmt.Sprintf("origins:\n  app: {addr: %q, key: %q}\nroutes:\n  - {path: /, origin: app}\n", addr, origintest.Key.Text()))
	raw, resp, body := closing(t, n.Addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "hello" || resp.Header.Get("X-Kept") != "yes" ||
		strings.Count(raw, "Content-Length") != 1 || strings.Contains(raw, "X A") ||
		strings.Contains(raw, "X-Split") || strings.Contains(raw, "evil") {
		t.Errorf("the client got\n%s", raw)
	}
}

// closing sends req, which closes its connection, and returns all the
// node sent, parsed as a response, and its body.
func closing(t *testing.T, addr, req string) (string, *http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	raw, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return string(raw), resp, body
}

// TestAbuseHeaderInjection: a plugin that sets a response field with CR LF
// in its value, or a name with ':' in it, gets an error from the host and
// nothing of it reaches the client. The host's refusals are unit-tested in
// wasm/host and wasm/tck; this is the same end to end through the node.
func TestAbuseHeaderInjection(t *testing.T) {
	injectWasm := wasmtest.BuildFile(t, "../wasm/internal/testguests/inject")
	cfg := fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain: [{file: %q}]
`, startOrigin(t, "o"), origintest.Key.Text(), injectWasm)
	n := startNode(t, cfg)
	raw, resp, body := closing(t, n.Addr, "GET /inject HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "inject done\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Inject-Errors"); got != "set-crlf,add-lf,name-colon,set-nul" {
		t.Errorf("the host did not refuse every injection: refused %q", got)
	}
	if strings.Contains(strings.ToLower(raw), "evil") || strings.Contains(raw, "X-Inject:") {
		t.Errorf("an injected field reached the client:\n%s", raw)
	}
	if resp.Header.Values("Set-Cookie") != nil {
		t.Errorf("Set-Cookie on the wire: %q", resp.Header.Values("Set-Cookie"))
	}
	if resp, _, _, _ := exchange(t, n.Addr, "GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", time.Second); resp.StatusCode != 200 {
		t.Errorf("after the injection attempts: %d", resp.StatusCode)
	}
}

// TestAbuseAbsoluteFormNoPath: an absolute-form target without a path is
// for "/" (RFC 9112 §3.2.2), with a query or without; it was refused as a
// path not in normal form, the path as received ("") differing from the
// normalized one ("/").
func TestAbuseAbsoluteFormNoPath(t *testing.T) {
	log := &originLog{}
	n := startNode(t, fmt.Sprintf("origins:\n  app: {addr: %q, key: %q}\nroutes:\n  - {path: /, origin: app}\n",
		origintest.Start(t, log.handler()).Addr, origintest.Key.Text()))
	for _, target := range []string{"http://api.example.com?x=1", "http://api.example.com"} {
		resp, body, _, _ := exchange(t, n.Addr, "GET "+target+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n", 2*time.Second)
		if resp.StatusCode != 200 || body != "GET / body=0" {
			t.Errorf("GET %s: %d %q, want 200 from the origin as GET /", target, resp.StatusCode, body)
		}
	}
}

// TestAbusePathTricks: /public/ has no plugin, everything else is behind
// auth. A path that routes to /public/ but that the origin could read as
// another resource is refused; TestNodePathTricks covers "..", "%2e%2e",
// "//", "." and "%2f..%2f"; these are the other spellings.
func TestAbusePathTricks(t *testing.T) {
	log := &originLog{}
	n := startNode(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - name: public
    path: /public/
    origin: app
  - name: private
    path: /
    origin: app
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}
`, origintest.Start(t, log.handler()).Addr, origintest.Key.Text(), plugins(t)["auth"], base64.RawURLEncoding.EncodeToString(jwtSecret)))
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/public/x", 200},
		{"/admin/x", 401},
		{"/public/%2E%2E/admin/x", 400}, // upper-case escapes
		{"/public/.%2e/admin/x", 400},   // half escaped
		{"/public/%2e./admin/x", 400},
		{"/public/..%2fadmin/x", 400},
		{"/public/%2e%2e%2fadmin/x", 400},
		{"/public/x/..", 400}, // at the end
		{"/public/x/%2e%2e", 400},
		{"/public;/../admin/x", 400},                      // a path parameter before the dots
		{"http://api.example.com/public/../admin/x", 400}, // absolute form
		// A backslash is a separator to some origins: /public/..\admin
		// would route as public and be served as /admin.
		{`/public/..\admin/x`, 400},
		{`/public\..\admin/x`, 400},
		{"/public/%5c..%5cadmin/x", 400},
		{"/public/%5C..%5Cadmin/x", 400},
		// Double encoding decodes once, for routing and origin alike: the
		// origin gets %252e%252e as sent, which decodes to the literal
		// segment "%2e%2e", under /public/.
		{"/public/%252e%252e/admin/x", 200},
		{"/public/%252e%252e%252fadmin/x", 200},
		// Escaped letters and slashes route as they decode: /%61dmin is
		// /admin, behind auth; /public%2fx is under /public/.
		{"/%61dmin/x", 401},
		{"/admin%2fx", 401},
		{"/%70ublic/x", 200},
		{"/public%2fx", 200},
	} {
		before := log.count()
		resp, body, _, _ := exchange(t, n.Addr, "GET "+tc.path+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n", 2*time.Second)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.path, resp.StatusCode, body, tc.want)
			continue
		}
		// What reached the origin is the path as sent, on the route that
		// decoded path names.
		switch reached := log.count() - before; {
		case tc.want == 200 && (reached != 1 || body != "GET "+tc.path+" body=0"):
			t.Errorf("%s: the origin saw %q (%d requests), want the path as sent", tc.path, body, reached)
		case tc.want != 200 && reached != 0:
			t.Errorf("%s: refused with %d, but the origin got it", tc.path, tc.want)
		}
	}
	// The private route works with a token, so its 401s above are auth's.
	st, _, body := n.do(t, "GET", "api.example.com", "/admin/x", nil, "Authorization", "Bearer "+jwstest.UserToken(jwtSecret, "ops"))
	if st != 200 || !strings.HasPrefix(body, "GET /admin/x") {
		t.Errorf("with a token: %d %q", st, body)
	}
}

// TestAbuseCacheHostKeys: a Host the router does not route as a named
// route's host never keys as that host. The cache key lowered hosts with
// Unicode case folding, where the Kelvin sign (U+212A) is "k": a request
// for "\u212Aite.test", routed to the catch-all's origin, stored its answer
// under kite.test's key, which kite.test's route then served. Such a Host
// is refused now, and its escaped form, which is a valid reg-name the
// catch-all serves, keys apart; so do a path or query in the Host.
func TestAbuseCacheHostKeys(t *testing.T) {
	start := func(name string) string {
		return origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
			resp.Status = 200
			resp.AddHeader([]byte("Cache-Control"), []byte("max-age=60"))
			resp.Body = fmt.Appendf(resp.Body, "%s %s%s", name, req.Host, req.Path)
		})).Addr
	}
	cache := plugins(t)["cache"]
	n := startNode(t, fmt.Sprintf(`
origins:
  kite: {addr: %q, key: %q}
  other: {addr: %q, key: %q}
routes:
  - host: kite.test
    path: /
    origin: kite
    chain: [{file: %q}]
  - path: /
    origin: other
    chain: [{file: %q}]
`, start("kite"), origintest.Key.Text(), start("other"), origintest.Key.Text(), cache, cache))
	for _, tc := range []struct {
		host, target string
		status       int
		victim       string // the target kite.test's route must still serve itself
	}{
		{"\u212Aite.test", "/page", 400, "/page"},
		{"\xffkite.test", "/page", 400, "/page"},
		{"%E2%84%AAite.test", "/page", 200, "/page"},
		{"kite.test/admin", "/index.html", 400, "/admin/index.html"},
		{"kite.test?a=1", "/", 400, "/"},
	} {
		resp, body := n.raw(t, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n")
		if resp.StatusCode != tc.status || tc.status == 200 && !strings.HasPrefix(body, "other ") {
			t.Errorf("Host %q: %d %q, want %d (from the catch-all for 200)", tc.host, resp.StatusCode, body, tc.status)
		}
		resp, body = n.raw(t, "GET "+tc.victim+" HTTP/1.1\r\nHost: kite.test\r\n\r\n")
		if want := "kite kite.test" + tc.victim; resp.StatusCode != 200 || body != want {
			t.Errorf("after Host %q, kite.test%s: %d %q, want %q", tc.host, tc.victim, resp.StatusCode, body, want)
		}
	}
	// Valid hosts in other forms are served as they were.
	for _, host := range []string{"KITE.test:80", "kite.test.", "[::1]:8080", "127.0.0.1", "a-b_c~d!$&'()*+,;=.test"} {
		want := "other"
		if strings.HasPrefix(strings.ToLower(host), "kite") {
			want = "kite"
		}
		if resp, body := n.raw(t, "GET /p HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); resp.StatusCode != 200 || !strings.HasPrefix(body, want+" ") {
			t.Errorf("Host %q: %d %q, want %s's answer", host, resp.StatusCode, body, want)
		}
	}
}

// TestAbuseCacheKeyFlood: 2,000 unique URLs of cacheable 8 KiB responses
// through the cache plugin, with cache_bytes 1 MiB: the cache's size stays
// within its bound all along, and a key requested often is still served
// from the cache afterwards.
func TestAbuseCacheKeyFlood(t *testing.T) {
	const bound = 1 << 20
	var (
		mu   sync.Mutex
		hits = map[string]int{}
	)
	page := strings.Repeat("p", 8<<10)
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		mu.Lock()
		hits[string(req.Path)]++
		mu.Unlock()
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=300"))
		resp.Body = append(resp.Body, page...)
	})).Addr
	n := startNode(t, fmt.Sprintf(`
cache_bytes: %d
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain: [{file: %q}]
`, bound, addr, origintest.Key.Text(), plugins(t)["cache"]))
	gauge := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(n.get(t, "/metrics", ""))
		if m == nil {
			t.Fatalf("no %s in /metrics", name)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}

	hc := &fasthttp.HostClient{Addr: n.Addr, MaxConns: 8}
	get := func(path string) (int, string, int, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://x" + path)
		err := hc.DoTimeout(req, resp, 10*time.Second)
		return resp.StatusCode(), string(resp.Header.Peek("Cache-Status")), len(resp.Body()), err
	}
	const urls, workers = 2000, 8
	var (
		next    atomic.Int64
		maxSize atomic.Uint64
		wg      sync.WaitGroup
		failed  atomic.Int64
		first   atomic.Value // the first failure, as text
	)
	get("/hot")
	sample := func() {
		if v := uint64(gauge("wedge_edge_cache_bytes")); v > maxSize.Load() {
			maxSize.Store(v)
		}
	}
	for w := range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > urls {
					return
				}
				path := fmt.Sprintf("/flood/%d", i)
				if i%10 == 0 {
					path = "/hot"
				}
				if st, _, size, err := get(path); err != nil || st != 200 || size != len(page) {
					if failed.Add(1) == 1 {
						first.Store(fmt.Sprintf("%s: %d, %d bytes, %v", path, st, size, err))
					}
				}
				if w == 0 && i%200 == 0 {
					sample()
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the flood; the first: %v", failed.Load(), urls, first.Load())
	}
	sample()
	entries := gauge("wedge_edge_cache_entries")
	t.Logf("cache during the flood: at most %d bytes; after it %d entries", maxSize.Load(), int(entries))
	if maxSize.Load() > bound {
		t.Errorf("the cache held %d bytes, past its bound of %d", maxSize.Load(), bound)
	}
	if maxSize.Load() < bound/2 || entries < 10 {
		t.Errorf("the cache held at most %d bytes in %v entries: the flood was not cached at all", maxSize.Load(), entries)
	}
	mu.Lock()
	unique, hot := len(hits), hits["/hot"]
	mu.Unlock()
	if unique != urls-urls/10+1 {
		t.Errorf("the origin saw %d distinct paths, want %d", unique, urls-urls/10+1)
	}
	// The hot key was asked for 201 times; eviction of it would show as
	// origin requests.
	if hot > 5 {
		t.Errorf("the origin was asked for the hot key %d times: the flood evicted it", hot)
	}
	if st, cs, size, err := get("/hot"); err != nil || st != 200 || size != len(page) || !strings.Contains(cs, "hit") {
		t.Errorf("the hot key after the flood: %d %q %d bytes %v, want a hit", st, cs, size, err)
	}
}

// TestAnsweredHere: TRACE is refused (an application answering it echoes
// the request's cookies and credentials to the script that sent it), and
// the OPTIONS requests whose final recipient is this hop (asterisk form,
// Max-Forwards: 0; RFC 9110 §9.3.7, §7.6.2) are answered here; a larger
// Max-Forwards reaches the origin one less. Before, all went to the
// origin as sent, and OPTIONS * got a 400.
func TestAnsweredHere(t *testing.T) {
	n, log := startAbused(t, "")
	const host = "Host: api.example.com\r\n"
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"TRACE", "TRACE /api/x HTTP/1.1\r\n" + host + "Cookie: session=secret\r\n\r\n", 501},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", 200},
		{"Max-Forwards: 0", "OPTIONS /api/x HTTP/1.1\r\n" + host + "max-forwards: 0\r\n\r\n", 200},
	} {
		resp, body, _, _ := exchange(t, n.Addr, tc.req, 100*time.Millisecond)
		if resp.StatusCode != tc.want || strings.Contains(body, "secret") {
			t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	if c := log.count(); c != 0 {
		t.Fatalf("the origin got %d requests, want none", c)
	}
	resp, body, _, _ := exchange(t, n.Addr, "OPTIONS /api/x HTTP/1.1\r\n"+host+"Max-Forwards: 3\r\n\r\n", 100*time.Millisecond)
	if resp.StatusCode != 200 || !strings.Contains(body, `Max-Forwards="2"`) {
		t.Errorf("Max-Forwards: 3: %d %q, want the origin to see 2", resp.StatusCode, body)
	}
}
