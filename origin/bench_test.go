package origin

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
)

// benchExchange is one request frame and a RequestCtx to replay it through
// the server's handler, as fasthttp would, without a socket.
type benchExchange struct {
	s     *Server
	rc    *fasthttp.RequestCtx
	frame []byte
	x     wire.Exchange
	codec *wire.Codec
}

func newBenchExchange(tb testing.TB) *benchExchange {
	codec := newCodec(tb, wire.Config{})
	h := HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
		resp.AddHeader([]byte("Content-Type"), []byte("text/html; charset=utf-8"))
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=60"))
		resp.Body = append(resp.Body, "<!doctype html><title>hello</title><p>a small page from the origin</p>"...)
	})
	s, err := NewServer(ServerConfig{Codec: codec, Handler: h})
	if err != nil {
		tb.Fatal(err)
	}
	req := getReq("/products/42")
	req.Query = wire.Bytes("ref=home")
	// The frame is replayed for as long as a benchmark runs: a budget as
	// long as the codec's Skew keeps the server from finding it expired.
	req.Timeout = 60_000_000
	for _, f := range [][2]string{
		{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{"Accept-Encoding", "gzip, deflate, br"},
		{"Accept-Language", "en-US,en;q=0.5"},
		{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		{"Cookie", "session=0123456789abcdef"},
	} {
		req.AddHeader([]byte(f[0]), []byte(f[1]))
	}
	req.AddValue([]byte("User"), []byte("alice"))
	frame, x, err := codec.AppendRequest(nil, req)
	if err != nil {
		tb.Fatal(err)
	}
	rc := new(fasthttp.RequestCtx)
	rc.Request.Header.SetMethod("POST")
	rc.Request.SetRequestURI(wire.Path)
	rc.Request.SetBody(frame)
	return &benchExchange{s: s, rc: rc, frame: frame, x: x, codec: codec}
}

func (b *benchExchange) run() {
	b.rc.Response.Reset()
	b.s.handle(b.rc)
}

func (b *benchExchange) check(tb testing.TB) {
	if b.rc.Response.StatusCode() != 200 {
		tb.Fatalf("status %d: %s", b.rc.Response.StatusCode(), b.rc.Response.Body())
	}
	var resp wire.Response
	if _, err := b.codec.DecodeResponse(b.rc.Response.Body(), b.x, &resp); err != nil || resp.Status != 200 {
		tb.Fatalf("response %+v: %v", resp, err)
	}
}

// BenchmarkServerExchange is the server's whole share of an exchange: open
// and decode the frame, run an in-process handler on its own goroutine,
// seal the answer.
func BenchmarkServerExchange(b *testing.B) {
	be := newBenchExchange(b)
	be.run()
	be.check(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(be.frame)))
	for b.Loop() {
		be.run()
	}
	be.check(b)
}

func BenchmarkServerExchangeParallel(b *testing.B) {
	be := newBenchExchange(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rc := new(fasthttp.RequestCtx)
		rc.Request.Header.SetMethod("POST")
		rc.Request.SetRequestURI(wire.Path)
		rc.Request.SetBody(be.frame)
		for pb.Next() {
			rc.Response.Reset()
			be.s.handle(rc)
		}
	})
}

// BenchmarkProxy forwards a collapsible GET to an upstream on loopback:
// request building, one pooled keep-alive connection, response copying.
func BenchmarkProxy(b *testing.B) {
	u := startUpstream(b, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Cache-Control", "public, max-age=60")
		ctx.SetBodyString("<!doctype html><title>hello</title><p>a small page from the upstream</p>")
	})
	p := newProxy(b, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1})
	req := getReq("/products/42")
	req.AddHeader([]byte("Accept"), []byte("text/html"))
	req.AddValue([]byte("User"), []byte("alice"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var resp wire.Response
	b.ReportAllocs()
	for b.Loop() {
		resp.Reset()
		p.ServeOrigin(ctx, req, &resp)
	}
	if resp.Status != 200 {
		b.Fatalf("status %d %q", resp.Status, resp.Error)
	}
}
