package e2e

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/internal/mix"
	"github.com/talowa/wedge/origin/wire"
	"github.com/valyala/fasthttp"
)

// edgeFront is the smallest edge there is: a fasthttp server that sends
// every request through the origin client and writes back what comes. It
// stands in for the edge node in the benchmarks, doing the same
// conversions.
func edgeFront(c *originclient.Client) fasthttp.RequestHandler {
	pool := sync.Pool{New: func() any { return new([2]wire.Response) }}
	reqs := sync.Pool{New: func() any { return new(wire.Request) }}
	return func(ctx *fasthttp.RequestCtx) {
		req, rp := reqs.Get().(*wire.Request), pool.Get().(*[2]wire.Response)
		defer reqs.Put(req)
		defer pool.Put(rp)
		resp := &rp[0]
		req.Reset()
		req.Method = append(req.Method, ctx.Method()...)
		req.Scheme = append(req.Scheme, "https"...)
		req.Host = append(req.Host, ctx.Host()...)
		req.Path = append(req.Path, ctx.URI().PathOriginal()...)
		req.Query = append(req.Query, ctx.URI().QueryString()...)
		for k, v := range ctx.Request.Header.All() {
			switch string(k) {
			case "Host", "Connection", "Content-Length":
				continue
			}
			req.AddHeader(k, v)
		}
		req.Body = append(req.Body, ctx.Request.Body()...)
		if err := c.Do(time.Now().Add(10*time.Second), req, resp); err != nil {
			ctx.Error(err.Error(), originclient.Status(err))
			return
		}
		ctx.SetStatusCode(int(resp.Status))
		for _, f := range resp.Header {
			ctx.Response.Header.AddBytesKV(f.Name, f.Value)
		}
		ctx.SetBody(resp.Body)
	}
}

// link is one way of getting the mix's requests to the upstream, with a
// front a load generator sends to and a count of the bytes on the long-haul
// hop: proxy->upstream for plain HTTP, edge->origin for Wedge.
type link struct {
	name  string
	front string
	bytes *counter
	hc    *fasthttp.HostClient
}

// links sets up, on loopback, the three paths the benchmarks compare:
// a plain fasthttp reverse proxy, and Wedge without and with a dictionary
// trained on another sample of the same mix.
func links(b *testing.B) []*link {
	up := newMixUpstream(1, 64)
	plainUp, wedgeUp := listen(b), listen(b)
	plainBytes := new(counter)
	serve(b, countingListener{plainUp, plainBytes}, up.handle)
	serve(b, wedgeUp, up.handle)
	newLink := func(name string, h fasthttp.RequestHandler, c *counter) *link {
		ln := listen(b)
		serve(b, ln, h)
		return &link{name: name, front: ln.Addr().String(), bytes: c,
			hc: &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 256, ReadTimeout: 10 * time.Second,
				MaxResponseBodySize: 32 << 20}}
	}
	upstreams := origin.ProxyConfig{Upstreams: []string{"http://" + wedgeUp.Addr().String()}}
	plain := newLink("plain", plainProxy(plainUp.Addr().String()), plainBytes)
	nodict := newStack(b, stackOpts{proxy: upstreams})
	wedge := newLink("wedge", edgeFront(nodict.client), nodict.link)

	// Train on traffic the measured requests are not part of.
	var samples [][]byte
	g := mix.New(2)
	for range 500 {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		toHTTP(g.Request(), wedge.front, req)
		wr := new(wire.Request)
		if err := fromHTTP(req, wr); err != nil {
			b.Fatal(err)
		}
		wresp := nodict.do(b, 10*time.Second, wr)
		samples = append(samples, cborOf(b, wr), cborOf(b, wresp))
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	dict, err := wire.TrainDict(samples, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	withDict := newStack(b, stackOpts{proxy: upstreams, dicts: [][]byte{dict}, dict: 1})
	return []*link{plain, wedge, newLink("wedge-dict", edgeFront(withDict.client), withDict.link)}
}

// toHTTP builds an HTTP request for a generated one.
func toHTTP(r mix.Request, front string, req *fasthttp.Request) {
	req.SetRequestURI("http://" + front + r.Path)
	req.Header.SetMethod(r.Method)
	for _, h := range r.Header {
		if h[0] == "Host" {
			req.Header.SetHost(h[1])
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	req.SetBody(r.Body)
}

// fromHTTP is edgeFront's conversion, for building training samples.
func fromHTTP(req *fasthttp.Request, w *wire.Request) error {
	w.Reset()
	w.Method = append(w.Method, req.Header.Method()...)
	w.Host = append(w.Host, req.Host()...)
	w.Path = append(w.Path, req.URI().PathOriginal()...)
	w.Query = append(w.Query, req.URI().QueryString()...)
	for k, v := range req.Header.All() {
		w.AddHeader(k, v)
	}
	w.Body = append(w.Body, req.Body()...)
	return nil
}

// mixRequests are the measured requests, prepared once.
func mixRequests(n int) []mix.Request {
	g := mix.New(3)
	rs := make([]mix.Request, n)
	for i := range rs {
		rs[i] = g.Request()
	}
	return rs
}

// BenchmarkWireMix sends the same requests of the mix through each link and
// reports the bytes each put on its long-haul hop per exchange (both ways),
// and wire-bytes-ratio: plain HTTP bytes / Wedge bytes with a dictionary.
// req-bytes-ratio is the same for the request direction alone, where small,
// header-heavy envelopes are.
func BenchmarkWireMix(b *testing.B) {
	ls := links(b)
	reqs := mixRequests(1000)
	for _, l := range ls {
		l.bytes.reset()
	}
	b.ReportAllocs()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	for i := 0; b.Loop(); i++ {
		r := reqs[i%len(reqs)]
		var status [3]int
		for j, l := range ls {
			req.Reset()
			toHTTP(r, l.front, req)
			if err := l.hc.DoTimeout(req, resp, 10*time.Second); err != nil {
				b.Fatalf("%s: %v", l.name, err)
			}
			status[j] = resp.StatusCode()
		}
		if status[0] != status[1] || status[1] != status[2] || status[0] >= 300 {
			b.Fatalf("statuses differ or failed: %v", status)
		}
	}
	n := float64(b.N)
	plain, wedge, dict := ls[0].bytes, ls[1].bytes, ls[2].bytes
	b.ReportMetric(float64(plain.total())/n, "plain-B/op")
	b.ReportMetric(float64(wedge.total())/n, "wedge-B/op")
	b.ReportMetric(float64(dict.total())/n, "wedge-dict-B/op")
	b.ReportMetric(float64(plain.total())/float64(dict.total()), "wire-bytes-ratio")
	b.ReportMetric(float64(plain.total())/float64(wedge.total()), "nodict-bytes-ratio")
	b.ReportMetric(float64(plain.in.Load())/float64(dict.in.Load()), "req-bytes-ratio")
	b.ReportMetric(float64(plain.in.Load())/float64(wedge.in.Load()), "req-nodict-bytes-ratio")
}

// BenchmarkLink measures requests/s and p99 through each link under the
// same closed-loop load: 4 connections per core sending the mix's requests
// back to back. The load generator shares the machine, as wrk would.
func BenchmarkLink(b *testing.B) {
	ls := links(b)
	reqs := mixRequests(1000)
	for _, l := range ls {
		b.Run(l.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4)
			var mu sync.Mutex
			var lat []time.Duration
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				mine := make([]time.Duration, 0, 1024)
				for i := 0; pb.Next(); i++ {
					req.Reset()
					toHTTP(reqs[i%len(reqs)], l.front, req)
					t0 := time.Now()
					if err := l.hc.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() >= 300 {
						panic(fmt.Sprintf("%s: %v %d", l.name, err, resp.StatusCode()))
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}
