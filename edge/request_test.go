package edge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// raw sends one request as written and returns the response.
func (n *testNode) raw(t *testing.T, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestNodePathTricks: routing uses the normalized path and the origin the
// path as sent, so a path whose normalization changes it is refused rather
// than routed as one resource and served as another.
func TestNodePathTricks(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	for _, tc := range []struct {
		path string
		want int
		body string // the origin's view, for 200
	}{
		{"/api/x", 200, "o: GET /api/x?"},
		{"/api/%78", 200, "o: GET /api/%78?"}, // decodes to the routed path
		{"/api/../x", 400, ""},                // routes as /x, origin sees /api/
		{"/x/%2e%2e/api/y", 400, ""},          // routes as /api/y (no plugin)
		{"/x%2f..%2fapi/y", 400, ""},
		{"/api//x", 400, ""},
		{"/api/./x", 400, ""},
	} {
		resp, body := n.raw(t, "GET "+tc.path+" HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
		if resp.StatusCode != tc.want || !strings.HasPrefix(body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.want, tc.body)
		}
	}
}

// TestNodeConnectionListed: fields the Connection field names are
// hop-by-hop (RFC 9110 §7.6.1) and do not reach the origin; a Host field
// in any case is not passed on as an ordinary field.
func TestNodeConnectionListed(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	resp, body := n.raw(t, "GET /api/x HTTP/1.1\r\nHOST: api.example.com\r\nUser-Agent: agent\r\nConnection: keep-alive, User-Agent\r\n\r\n")
	if resp.StatusCode != 200 || strings.Contains(body, "ua=") {
		t.Fatalf("%d %q: the origin got a field Connection named", resp.StatusCode, body)
	}
}

// TestNodeServeAfterShutdown: a Serve that starts after Shutdown (the
// goroutine was slow) returns and closes its listener instead of serving
// forever.
func TestNodeServeAfterShutdown(t *testing.T) {
	cfg, err := edge.ParseConfig([]byte(config(startOrigin(t, "o"), hello(t), "")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{CompilationCache: wasmbuild.CompilationCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		ln.Close()
		t.Fatal("Serve after Shutdown kept serving")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener left open: %v", err)
	}
}

// TestNodeShutdownTimeout: requests that arrive on a connection still open
// after Shutdown gave up waiting get a 503, not a handler spinning on the
// closed plugins.
func TestNodeShutdownTimeout(t *testing.T) {
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		if string(req.Path) == "/slow" {
			time.Sleep(time.Second)
		}
		resp.Status = 200
		resp.Body = append(resp.Body, "ok"...)
	})).Addr
	n := startNode(t, config(addr, hello(t), ""))

	c, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Two pipelined requests: the first is in flight when Shutdown gives
	// up, the second is read after it.
	fmt.Fprint(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	n.Shutdown(ctx)
	br := bufio.NewReader(c)
	for i, want := range []int{200, 503} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want {
			t.Errorf("response %d: %d, want %d", i+1, resp.StatusCode, want)
		}
		if resp.Close {
			break
		}
	}
}

// TestStackPrivateNotShared: auth strips the Authorization it verified, and
// the cache must still treat the request as authenticated (RFC 9111 §3.5):
// one user's response without public or s-maxage is not served to another.
func TestStackPrivateNotShared(t *testing.T) {
	n, _ := startStack(t)
	_, _, alice := n.do(t, "GET", "x", "/private", nil, "Authorization", "Bearer "+jwstest.UserToken(jwtSecret, "alice"))
	st, h, bob := n.do(t, "GET", "x", "/private", nil, "Authorization", "Bearer "+jwstest.UserToken(jwtSecret, "bob"))
	if st != 200 || bob == alice || !strings.HasSuffix(bob, "for bob\n") {
		t.Fatalf("bob got %d %q (Cache-Status %q), alice had %q", st, bob, h.Peek("Cache-Status"), alice)
	}
}

// TestNodeResponseConnectionListed: fields the origin's Connection field
// names do not reach the client.
func TestNodeResponseConnectionListed(t *testing.T) {
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Connection"), []byte("X-Internal"))
		resp.AddHeader([]byte("X-Internal"), []byte("secret"))
		resp.AddHeader([]byte("X-Public"), []byte("ok"))
	})).Addr
	n := startNode(t, config(addr, hello(t), ""))
	resp, _ := n.raw(t, "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
	if resp.StatusCode != 200 || resp.Header.Get("X-Internal") != "" || resp.Header.Get("X-Public") != "ok" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
}
