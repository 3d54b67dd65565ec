package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/internal/tracing/tracingtest"
	"github.com/talowa/wedge/origin/wire"
)

var testKey = wire.Key{ID: 3, Secret: bytes.Repeat([]byte{0x5a}, 32)}

func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/big" {
			ctx.SetBody(make([]byte, 20<<20)) // past an envelope: streamed
			return
		}
		ctx.Response.Header.Set("X-User", string(ctx.Request.Header.Peek("Wedge-Value-User")))
		ctx.SetBodyString("hello from " + string(ctx.Path()))
	}}
	go up.Serve(ln)                     //nolint:errcheck
	t.Cleanup(func() { up.Shutdown() }) //nolint:errcheck

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	other := wire.Key{ID: 4, Secret: bytes.Repeat([]byte{1}, 16)}
	if err := os.WriteFile(keyFile, []byte("# keys\n"+testKey.Text()+"\n\n"+other.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	samples := filepath.Join(dir, "samples")
	collector := tracingtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-metrics", "127.0.0.1:0", "-key", "@" + keyFile,
			"-upstream", "http://" + ln.Addr().String(), "-samples", samples, "-sample-every", "1",
			"-otlp", collector.URL, "-trace-sample", "0"}, out)
	}()
	re := regexp.MustCompile(`listen=(\S+) metrics=(\S+)`)
	var m []string
	deadline := time.Now().Add(10 * time.Second)
	for m = re.FindStringSubmatch(out.String()); m == nil; m = re.FindStringSubmatch(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("origin did not start:\n%s", out)
		}
		select {
		case err := <-done:
			t.Fatalf("run: %v\n%s", err, out)
		case <-time.After(5 * time.Millisecond):
		}
	}
	addr, maddr := m[1], m[2]

	// The edge's side of one exchange, signed with the second key.
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{other}})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	req := &wire.Request{Method: wire.Bytes("GET"), Host: wire.Bytes("app.example"), Path: wire.Bytes("/hi"),
		Query: wire.Bytes("token=secret&page=2"), Timeout: 5_000_000}
	req.AddHeader([]byte("Cookie"), []byte("session=secret"))
	req.AddHeader([]byte("X-Api-Key"), []byte("secret"))
	req.AddHeader([]byte("X-Auth-Token"), []byte("secret"))
	req.AddHeader([]byte("traceparent"), []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	req.AddValue([]byte("User"), []byte("alice"))
	frame, x, err := codec.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	hreq, hresp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	hreq.SetRequestURI("http://" + addr + wire.Path)
	hreq.Header.SetMethod("POST")
	hreq.Header.SetContentType("application/wedge")
	hreq.SetBody(frame)
	if err := fasthttp.DoTimeout(hreq, hresp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if hresp.StatusCode() != 200 {
		t.Fatalf("transport status %d: %s", hresp.StatusCode(), hresp.Body())
	}
	var resp wire.Response
	if _, err := codec.DecodeResponse(hresp.Body(), x, &resp); err != nil {
		t.Fatal(err)
	}
	if user, _ := wire.Get(resp.Header, "x-user"); resp.Status != 200 || string(resp.Body) != "hello from /hi" || string(user) != "alice" {
		t.Fatalf("got %d %q user %q", resp.Status, resp.Body, user)
	}

	// Sampling leaves the server the proxy itself: a response past an
	// envelope streams to an edge that takes streams. The sampler wrapped
	// it and hid it, and the same response got 502.
	big := &wire.Request{Method: wire.Bytes("GET"), Host: wire.Bytes("app.example"), Path: wire.Bytes("/big"), Timeout: 5_000_000}
	frame, _, err = codec.AppendRequest(nil, big)
	if err != nil {
		t.Fatal(err)
	}
	hreq.SetBody(frame)
	hreq.Header.Set("Accept", wire.StreamContentType)
	if err := fasthttp.DoTimeout(hreq, hresp, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if ct := string(hresp.Header.ContentType()); hresp.StatusCode() != 200 || ct != wire.StreamContentType {
		t.Fatalf("a response past an envelope with -samples: %d %q, want it streamed", hresp.StatusCode(), ct)
	}

	get := func(path string) (int, string) {
		r, err := http.Get("http://" + maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := get("/health"); code != 200 {
		t.Errorf("/health: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `wedge_origin_exchanges_total{code="2xx"} 2`) ||
		!strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	// The upstream call's span (sampled: the edge's traceparent says so)
	// is sent by the time run returns, well before the batch's 5 s.
	if spans := collector.Trace("4bf92f3577b34da6a3ce929d0e0e4736"); len(spans) != 1 || spans[0].Parent != "00f067aa0ba902b7" {
		t.Errorf("spans %+v, want the upstream call's, child of the edge's", spans)
	}
	// The sample is written by the time run returns.
	b, err := os.ReadFile(filepath.Join(samples, "1.req.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	var sreq wire.Request
	if err := wire.Unmarshal(b, &sreq); err != nil {
		t.Fatal(err)
	}
	cookie, _ := wire.Get(sreq.Header, "cookie")
	if string(sreq.Path) != "/hi" || string(cookie) != "redacted" || string(sreq.Values[0].Value) != "redacted" {
		t.Errorf("sample request %+v", sreq)
	}
	// No credential in a sample, by whatever field or query name it came:
	// the dictionary trained on them goes to every edge.
	if bytes.Contains(b, []byte("secret")) || string(sreq.Query) != "token=redacted&page=redacted" {
		t.Errorf("sample request holds a credential: %q", b)
	}
	b, err = os.ReadFile(filepath.Join(samples, "1.resp.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	var sresp wire.Response
	if err := wire.Unmarshal(b, &sresp); err != nil || string(sresp.Body) != "hello from /hi" {
		t.Errorf("sample response %+v: %v", sresp, err)
	}
}

func TestRunRefuses(t *testing.T) {
	t.Setenv(keyEnv, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-upstream", "http://127.0.0.1:1"}, "no key"},
		{[]string{"-key", testKey.Text()}, "no upstream"},
		{[]string{"-key", "7:zz", "-upstream", "http://127.0.0.1:1"}, "key secret"},
		{[]string{"-key", "@/nonexistent/keys", "-upstream", "http://127.0.0.1:1"}, "no such file"},
		{[]string{"-key", testKey.Text(), "-upstream", "ftp://x"}, "want http://host:port"},
		{[]string{"-key", testKey.Text(), "-upstream", "http://127.0.0.1:1", "-dict", "/nonexistent"}, "-dict"},
		{[]string{"-key", testKey.Text(), "-upstream", "http://127.0.0.1:1", "-otlp", "127.0.0.1:4318"}, "-otlp"},
		{[]string{"-key", testKey.Text(), "-upstream", "http://127.0.0.1:1", "-otlp", "http://127.0.0.1:4318", "-trace-sample", "2"}, "-otlp"},
	} {
		err := run(context.Background(), c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.args, err, c.want)
		}
	}
}

func TestKeyFromEnvironment(t *testing.T) {
	t.Setenv(keyEnv, testKey.Text())
	keys, err := loadKeys("")
	if err != nil || len(keys) != 1 || keys[0].ID != testKey.ID || !bytes.Equal(keys[0].Secret, testKey.Secret) {
		t.Fatalf("got %v %v", keys, err)
	}
}
