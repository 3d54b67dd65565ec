package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// syncBuffer is a bytes.Buffer safe to write from up's goroutine while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUp runs `wedgectl up` on a free port and walks the README's tour of
// it: 401 without a token, 200 with the printed one, a cache hit with Age
// and Cache-Status on the repeat, 429 with RateLimit fields past the
// per-identity limit; then Ctrl-C (the context) stops it cleanly.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three plugins")
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := new(syncBuffer)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"up", "--listen", "127.0.0.1:0"}, out) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("up: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("up did not stop within 30 s of Ctrl-C")
		}
	}()
	var addr, token string
	re := regexp.MustCompile(`edge http://(\S+) .*\n(?s:.*)WEDGE_TOKEN=(\S+)`)
	for deadline := time.Now().Add(5 * time.Minute); ; {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr, token = m[1], m[2]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("up ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("up printed no address and token in 5 minutes:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	get := func(auth string) (int, *fasthttp.ResponseHeader, string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/api/hello")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		h := new(fasthttp.ResponseHeader)
		resp.Header.CopyTo(h)
		return resp.StatusCode(), h, string(resp.Body())
	}
	st, h, _ := get("")
	if st != 401 || !strings.HasPrefix(string(h.Peek("WWW-Authenticate")), "Bearer") {
		t.Fatalf("without a token: %d, WWW-Authenticate %q", st, h.Peek("WWW-Authenticate"))
	}
	st, _, first := get(token)
	if st != 200 || !strings.Contains(first, `"user":"demo-user"`) {
		t.Fatalf("with the token: %d %s", st, first)
	}
	st, h, again := get(token)
	if st != 200 || again != first || !strings.Contains(strings.ToLower(string(h.Peek("Cache-Status"))), "hit") {
		t.Fatalf("repeat: %d, Cache-Status %q, same body %t", st, h.Peek("Cache-Status"), again == first)
	}
	if _, err := strconv.Atoi(string(h.Peek("Age"))); err != nil {
		t.Errorf("a hit without an Age: %q", h.Peek("Age"))
	}
	limited := false
	for range 30 {
		if st, h, _ := get(token); st == 429 {
			limited = true
			if h.Peek("Retry-After") == nil || h.Peek("RateLimit") == nil || h.Peek("RateLimit-Policy") == nil {
				t.Errorf("429 without Retry-After / RateLimit / RateLimit-Policy: %s", h.String())
			}
			break
		}
	}
	if !limited {
		t.Error("30 requests at once never met the 10/s limit")
	}
}
