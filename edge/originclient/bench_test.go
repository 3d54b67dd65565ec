package originclient

import (
	"testing"
	"time"

	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/valyala/fasthttp"
)

// benchOrigin answers every request with a fixed small response. It reuses
// its envelopes and buffers, so that what a benchmark or an allocation test
// in this process counts is the client's.
func benchOrigin(tb testing.TB) *fakeOrigin {
	type scratch struct {
		req  wire.Request
		resp wire.Response
		buf  []byte
	}
	pool := make(chan *scratch, 64)
	return newFakeOrigin(tb, func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		var s *scratch
		select {
		case s = <-pool:
		default:
			s = new(scratch)
		}
		defer func() {
			select {
			case pool <- s:
			default:
			}
		}()
		x, err := o.codec.DecodeRequest(ctx.PostBody(), &s.req)
		if err != nil {
			ctx.Error(err.Error(), 400)
			return
		}
		s.resp = wire.Response{Status: 200, Body: benchBody, Header: benchRespHeader}
		if s.buf, _, err = o.codec.AppendResponse(s.buf[:0], x, &s.resp); err != nil {
			ctx.Error(err.Error(), 500)
			return
		}
		ctx.Response.SetBody(s.buf)
	})
}

var (
	benchBody       = wire.Bytes(`{"id":42,"name":"widget","tags":["a","b","c"],"price":12.5}`)
	benchRespHeader = []wire.Field{
		{Name: wire.Bytes("Content-Type"), Value: wire.Bytes("application/json")},
		{Name: wire.Bytes("Cache-Control"), Value: wire.Bytes("max-age=60")},
	}
)

func benchRequest() *wire.Request {
	req := getReq("GET", "/api/items/42")
	req.Query = wire.Bytes("expand=tags")
	req.Client = wire.Bytes("203.0.113.7")
	req.AddHeader([]byte("Accept"), []byte("application/json"))
	req.AddHeader([]byte("User-Agent"), []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"))
	req.AddHeader([]byte("Accept-Encoding"), []byte("gzip, br"))
	req.AddValue([]byte("Sub"), []byte("user-42"))
	return req
}

func BenchmarkDo(b *testing.B) {
	o := benchOrigin(b)
	d := &countingDialer{}
	c := newClient(b, o.addr, func(cfg *Config) { cfg.Dial = d.Dial })
	loopDo(b, c, d)
}

// loopDo runs c.Do of the bench request as one benchmark, reporting the
// bytes d saw each way.
func loopDo(b *testing.B, c *testClient, d *countingDialer) {
	req := benchRequest()
	var resp wire.Response
	if err := c.Do(time.Now().Add(5*time.Second), req, &resp); err != nil {
		b.Fatal(err)
	}
	sent, recvd := d.sent.Load(), d.recvd.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Do(time.Now().Add(5*time.Second), req, &resp); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(d.sent.Load()-sent)/float64(b.N), "sent-B/op")
	b.ReportMetric(float64(d.recvd.Load()-recvd)/float64(b.N), "recv-B/op")
}

func BenchmarkDoParallel(b *testing.B) {
	o := benchOrigin(b)
	c := newClient(b, o.addr, nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := benchRequest()
		var resp wire.Response
		for pb.Next() {
			if err := c.Do(time.Now().Add(5*time.Second), req, &resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDoMinCompress is BenchmarkDo with both codecs configured as the
// edge and origin binaries are (wire.DefaultMinCompress): the ~1 KB
// envelopes travel uncompressed.
func BenchmarkDoMinCompress(b *testing.B) {
	o := benchOrigin(b)
	o.codec = origintest.NewCodec(b, wire.Config{MinCompress: wire.DefaultMinCompress})
	d := &countingDialer{}
	c := newClient(b, o.addr, func(cfg *Config) {
		cfg.Dial = d.Dial
		cfg.Codec = origintest.NewCodec(b, wire.Config{MinCompress: wire.DefaultMinCompress})
	})
	loopDo(b, c, d)
}
