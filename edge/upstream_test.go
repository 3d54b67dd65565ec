package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// rawApp is an HTTP application written as raw bytes: it reads request
// heads and has answer write whatever it likes for each, by request line.
// It counts the connections it accepted.
type rawApp struct {
	addr   string
	answer func(line string, c net.Conn)

	mu    sync.Mutex
	conns int
	lines []string
}

func startRawApp(t *testing.T, answer func(line string, c net.Conn)) *rawApp {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &rawApp{addr: ln.Addr().String(), answer: answer}
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
			a.mu.Lock()
			a.conns++
			a.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					first := ""
					for {
						l, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if l == "\r\n" {
							break
						}
						if first == "" {
							first = strings.TrimSpace(l)
						}
					}
					a.mu.Lock()
					a.lines = append(a.lines, first)
					a.mu.Unlock()
					a.answer(first, c)
				}
			}()
		}
	}()
	return a
}

func (a *rawApp) stats() (requests, conns int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.lines), a.conns
}

// proxyOrigin runs an origin service proxying to the application at addr.
func proxyOrigin(t *testing.T, addr string) string {
	t.Helper()
	p, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + addr}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return origintest.Start(t, p).Addr
}

// cacheNode runs the cache plugin alone in front of the origin service at
// originAddr, with the admin token s3cret.
func cacheNode(t *testing.T, originAddr string) *testNode {
	t.Helper()
	return startNode(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {file: %q}
`, originAddr, origintest.Key.Text(), plugins(t)["cache"]))
}

// TestStackShiftedResponseNotCached: an application that writes bytes
// after its response, a moment later, on the connection the origin service
// pools, does not get them served as the answer to the next request, and
// the edge's cache never stores them. Before the origin checked its pooled
// connections, /b got the leftover "HTTP/1.1 200" as its response, the
// cache stored it under /b, and every hit on /b served it.
func TestStackShiftedResponseNotCached(t *testing.T) {
	const cacheable = "Cache-Control: public, max-age=60\r\n"
	respond := func(c net.Conn, body string) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\n"+cacheable+fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
	}
	served, late := make(chan struct{}), make(chan struct{})
	app := startRawApp(t, func(line string, c net.Conn) {
		path := strings.Fields(line)[1]
		if path != "/a" {
			respond(c, "this is "+path)
			return
		}
		respond(c, "this is /a")
		// The rest of a response the application thought was longer,
		// written once the first has been served.
		<-served
		io.WriteString(c, "HTTP/1.1 200 OK\r\n"+cacheable+"Content-Length: 8\r\n\r\nleftover")
		close(late)
	})
	n := cacheNode(t, proxyOrigin(t, app.addr))

	get := func(path string) string {
		t.Helper()
		st, h, body := n.do(t, "GET", "shop.example", path, nil)
		if st != 200 {
			t.Fatalf("GET %s: %d %q", path, st, body)
		}
		return body + " (" + string(h.Peek("Cache-Status")) + ")"
	}
	if body := get("/a"); !strings.HasPrefix(body, "this is /a (") {
		t.Fatalf("/a: %q", body)
	}
	close(served)
	<-late
	for i := range 3 {
		if body := get("/b"); !strings.HasPrefix(body, "this is /b (") {
			t.Fatalf("/b, request %d: %q", i+1, body)
		}
	}
	if body := get("/a"); !strings.HasPrefix(body, "this is /a (") || !strings.Contains(body, "hit") {
		t.Fatalf("/a again: %q, want a hit", body)
	}
	if reqs, conns := app.stats(); reqs != 2 || conns != 2 {
		t.Errorf("application saw %d requests on %d connections, want 2 (/a, /b) on 2", reqs, conns)
	}
}

// TestNodeInterimResponses: informational responses an application sends
// through the origin service reach an HTTP/1.1 client of the edge ahead of
// the final response, 103 Early Hints with its Link fields among them;
// 100 Continue is the application's hop's own and stops at the origin; an
// HTTP/1.0 client gets the final response alone.
func TestNodeInterimResponses(t *testing.T) {
	app := startRawApp(t, func(_ string, c net.Conn) {
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"+
			"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nKeep-Alive: timeout=5\r\n"+
			"Link: </app.js>; rel=preload; as=script\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\n<!doctype html>")
	})
	n := startNode(t, config(proxyOrigin(t, app.addr), hello(t), ""))

	c, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	get := &http.Request{Method: "GET"}
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		io.WriteString(c, "GET /api/page "+proto+"\r\nHost: api.example.com\r\nConnection: keep-alive\r\n\r\n")
		var got []string
		for {
			resp, err := http.ReadResponse(br, get)
			if err != nil {
				t.Fatalf("%s: %v after %q", proto, err, got)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = append(got, fmt.Sprintf("%d %q %q", resp.StatusCode, resp.Header.Values("Link"), resp.Header.Values("Keep-Alive")))
			if resp.StatusCode >= 200 {
				if string(body) != "<!doctype html>" {
					t.Errorf("%s: body %q", proto, body)
				}
				break
			}
		}
		want := []string{`200 [] []`}
		if proto == "HTTP/1.1" {
			want = []string{`103 ["</style.css>; rel=preload; as=style" "</app.js>; rel=preload; as=script"] []`, `200 [] []`}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s client got\n%s\nwant\n%s", proto, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
