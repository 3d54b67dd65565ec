package origin

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
)

func testKey() wire.Key { return wire.Key{ID: 7, Secret: bytes.Repeat([]byte{0x42}, 32)} }

func newCodec(t testing.TB, cfg wire.Config) *wire.Codec {
	t.Helper()
	if len(cfg.Keys) == 0 {
		cfg.Keys = []wire.Key{testKey()}
	}
	c, err := wire.NewCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testOrigin is a Server on a real socket, with its own registry.
type testOrigin struct {
	addr  string
	srv   *Server
	reg   *prometheus.Registry
	m     *Metrics
	codec *wire.Codec
}

func startOrigin(t testing.TB, h Handler, mod func(*ServerConfig)) *testOrigin {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := &testOrigin{reg: reg, m: NewMetrics(reg), codec: newCodec(t, wire.Config{})}
	cfg := ServerConfig{Codec: o.codec, Handler: h, Metrics: o.m}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.srv, o.addr = srv, ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return o
}

var edgeClient = &fasthttp.Client{MaxConnsPerHost: 1024, ReadTimeout: 10 * time.Second}

// post sends one raw HTTP request to the origin, as an edge would.
func post(t testing.TB, addr, method, path string, body []byte) (int, []byte, *fasthttp.ResponseHeader) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetMethod(method)
	req.Header.SetContentType("application/wedge")
	req.SetBody(body)
	if err := edgeClient.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	h := new(fasthttp.ResponseHeader)
	resp.Header.CopyTo(h)
	return resp.StatusCode(), bytes.Clone(resp.Body()), h
}

// exchange seals req with codec, POSTs it and opens the answer.
func exchange(t testing.TB, addr string, codec *wire.Codec, req *wire.Request) *wire.Response {
	t.Helper()
	frame, x, err := codec.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := post(t, addr, "POST", wire.Path, frame)
	if status != 200 {
		t.Fatalf("transport status %d: %s", status, body)
	}
	resp := new(wire.Response)
	if _, err := codec.DecodeResponse(body, x, resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp
}

func getReq(path string) *wire.Request {
	return &wire.Request{Method: wire.Bytes("GET"), Scheme: wire.Bytes("https"), Host: wire.Bytes("app.example"),
		Path: wire.Bytes(path), Client: wire.Bytes("192.0.2.7"), Timeout: 5_000_000}
}

// metric reads one series from reg; labels are name, value pairs.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[labels[i]] = labels[i+1]
	}
	return wasmtest.Metric(t, reg, name, m)
}

// upstream is an HTTP application on a real socket that records what
// reached it.
type testUpstream struct {
	url  string
	addr string
	ln   net.Listener
	srv  *fasthttp.Server

	mu   sync.Mutex
	hits int
	raw  []string // raw request header blocks
	body [][]byte
}

func startUpstream(t testing.TB, h fasthttp.RequestHandler) *testUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &testUpstream{addr: ln.Addr().String(), ln: ln}
	u.url = "http://" + u.addr
	u.srv = &fasthttp.Server{
		DisableHeaderNamesNormalizing: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) != "/_health" {
				u.mu.Lock()
				u.hits++
				u.raw = append(u.raw, string(ctx.Request.Header.RawHeaders()))
				u.body = append(u.body, bytes.Clone(ctx.PostBody()))
				u.mu.Unlock()
			}
			h(ctx)
		},
	}
	go u.srv.Serve(ln) //nolint:errcheck
	t.Cleanup(u.close)
	return u
}

func (u *testUpstream) close() {
	// Bounded: a test's blocked handler must not hang its cleanup.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	u.srv.ShutdownWithContext(ctx) //nolint:errcheck
}

func (u *testUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

func (u *testUpstream) lastRaw() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.raw) == 0 {
		return ""
	}
	return u.raw[len(u.raw)-1]
}

// headerLines splits a raw header block into its lines.
func headerLines(raw string) []string {
	var out []string
	for _, l := range strings.Split(raw, "\r\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func newProxy(t testing.TB, cfg ProxyConfig) *Proxy {
	t.Helper()
	p, err := NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
