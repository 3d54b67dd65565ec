package edge_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// answerWait bounds how long a test waits for an answer the node must give
// at once: far under the read timeout of an hour these tests set, and far
// over what a busy machine takes to answer.
const answerWait = 30 * time.Second

// conversation writes each request on one connection, its header section
// and its body with two writes, and reads the answer to each before writing
// the next; it stops at the first answer that closes the connection.
func conversation(t *testing.T, addr string, reqs ...string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	var out []*http.Response
	for _, req := range reqs {
		c.SetDeadline(time.Now().Add(answerWait))
		head, body, _ := strings.Cut(req, "\r\n\r\n")
		if body == "" {
			head = req
		} else {
			head += "\r\n\r\n"
		}
		for _, part := range []string{head, body} {
			if _, err := io.WriteString(c, part); err != nil {
				t.Fatalf("%q: %v", req, err)
			}
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: no answer: %v", req, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp)
		if resp.Close {
			break
		}
	}
	return out
}

// TestBareLFAtOnce: a header section with a line ending in a bare LF gets
// 400 as soon as that line arrives, on a new connection or a kept-alive
// one, complete or not, rather than a 408 after read_timeout (an hour
// here). Bare LF in a body, and empty CRLF lines before the request line,
// are fine.
func TestBareLFAtOnce(t *testing.T) {
	n, log := startAbused(t, "read_timeout: 1h")
	const ok = "GET /api/ok HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
	for _, tc := range []struct {
		name string
		reqs []string
		want []int
	}{
		{"bare LF throughout", []string{"GET /api/x HTTP/1.1\nHost: api.example.com\n\n"}, []int{400}},
		{"request line only", []string{"GET /api/x HTTP/1.1\n"}, []int{400}},
		{"unfinished", []string{"GET /api/x HTTP/1.1\nHost: api.example.com\n"}, []int{400}},
		{"one field", []string{"GET /api/x HTTP/1.1\r\nHost: api.example.com\nX-A: a\r\n"}, []int{400}},
		{"the empty line", []string{"GET /api/x HTTP/1.1\r\nHost: api.example.com\r\n\n"}, []int{400}},
		{"second request", []string{ok, "GET /api/x HTTP/1.1\nHost: api.example.com\n"}, []int{200, 400}},
		{"third request", []string{ok, ok, "GET /api/x HTTP/1.1\r\nHost: api.example.com\nX-A: a\r\n"}, []int{200, 200, 400}},
		{"after a body", []string{"POST /api/ok HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\n\r\na\nb\n",
			"GET /api/x HTTP/1.1\nHost: api.example.com\n"}, []int{200, 400}},
		// Not refused:
		{"bare LF in bodies", []string{ // chunked last: the connection closes after it
			"POST /api/ok HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 6\r\n\r\n\na\nb\n\n",
			"POST /api/ok HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\n\r\n\n\n\n\n",
			ok,
			"POST /api/ok HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na\nb\n\r\n0\r\n\r\n",
		}, []int{200, 200, 200, 200}},
		{"empty lines first", []string{"\r\n\r\n" + ok, "\n\r\n\n" + ok}, []int{200, 200}},
	} {
		var got []int
		for _, resp := range conversation(t, n.Addr, tc.reqs...) {
			got = append(got, resp.StatusCode)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		served(t, n.Addr, "after "+tc.name)
	}
	if c := log.count(); c != log.seen("/api/ok") {
		t.Errorf("the origin got %d requests, want only the normal ones", c)
	}
}

// TestTooManyFields: a request with more header fields than an envelope
// carries, but within max_header_bytes, gets 431 before the chain runs, so
// the plugins' health does not count it; one field fewer is served.
func TestTooManyFields(t *testing.T) {
	log := &originLog{}
	cfg := config(origintest.Start(t, log.handler()).Addr, hello(t), "")
	cfg = strings.Replace(cfg, "max_header_bytes: 4096", "max_header_bytes: 16384", 1)
	n := startNode(t, cfg)
	fields := func(k int) string {
		var b strings.Builder
		b.WriteString("GET /x HTTP/1.1\r\nHost: x\r\n")
		for i := range k - 1 { // Host is one
			fmt.Fprintf(&b, "a%d:\r\n", i)
		}
		b.WriteString("\r\n")
		return b.String()
	}
	health := func() (req, errs uint64) {
		for _, h := range n.Health() {
			req, errs = req+h.Requests, errs+h.Errors
		}
		return req, errs
	}
	for _, k := range []int{wire.MaxFields + 1, 1900} {
		req := fields(k)
		if len(req) > 16384 {
			t.Fatalf("%d fields take %d bytes, past max_header_bytes", k, len(req))
		}
		resp, body, _, closed := exchange(t, n.Addr, req, 2*time.Second)
		if resp.StatusCode != 431 || !closed {
			t.Errorf("%d fields: %d %.80q, closed %t; want 431 and closed", k, resp.StatusCode, body, closed)
		}
		if r, e := health(); r != 0 || e != 0 {
			t.Errorf("%d fields: plugin health counted %d requests, %d errors", k, r, e)
		}
	}
	if log.count() != 0 {
		t.Errorf("the origin got %d requests", log.count())
	}
	resp, body, _, _ := exchange(t, n.Addr, fields(wire.MaxFields), time.Second)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /x") {
		t.Errorf("%d fields: %d %.80q, want 200", wire.MaxFields, resp.StatusCode, body)
	}
	if r, e := health(); r != 1 || e != 0 {
		t.Errorf("plugin health counted %d requests, %d errors; want 1, 0", r, e)
	}
}

// TestBareLFOverTLS: the check sits under fasthttp on HTTPS connections
// too, which still read as HTTPS (the request's scheme).
func TestBareLFOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, "a.example", 1)
	originAddr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.Body = fmt.Appendf(resp.Body, "scheme=%s", req.Scheme)
	})).Addr
	cfg := config(originAddr, hello(t), fmt.Sprintf("tls:\n  certs:\n    - {cert: %s, key: %s}\n", certFile, keyFile))
	n := startNode(t, strings.Replace(cfg, "limits: {", "limits: {read_timeout: 1h, ", 1))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.ServeTLS(ln)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ask := func(req string) (*http.Response, string) {
		t.Helper()
		c, err := tls.Dial("tcp4", ln.Addr().String(), &tls.Config{ServerName: "a.example", RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(answerWait))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: no answer: %v", req, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := ask("GET /api/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"); resp.StatusCode != 200 || body != "scheme=https" {
		t.Errorf("over TLS: %d %q, want 200 scheme=https", resp.StatusCode, body)
	}
	if resp, body := ask("GET /api/x HTTP/1.1\nHost: api.example.com\n"); resp.StatusCode != 400 || !resp.Close {
		t.Errorf("bare LF over TLS: %d %q, want 400 and closed", resp.StatusCode, body)
	}
}
