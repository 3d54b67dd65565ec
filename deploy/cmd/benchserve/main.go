// Command benchserve is a bare fasthttp server that answers every request
// with the same body: the ceiling the edge benchmarks compare Wedge, nginx
// and Varnish against, and the application behind them. With -shed it
// answers that share of requests, at random, with a 503 as short as the
// edge's shed answer: a node shedding at that share at no cost, the floor
// of an overload point's latencies on the same machine.
//
//	benchserve -listen 127.0.0.1:18001 -size 1024 -cache-control 'public, max-age=3600'
//	benchserve -listen 127.0.0.1:18001 -size 65536 -shed 0.65
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "address")
	size := flag.Int("size", 1024, "body size in bytes")
	cc := flag.String("cache-control", "public, max-age=3600", "Cache-Control of every response (\"\": none)")
	shed := flag.Float64("shed", 0, "share of requests answered 503 with a short body, at random")
	flag.Parse()
	body := bytes.Repeat([]byte("x"), *size)
	shedBody := []byte("503 Service Unavailable: overloaded, retry shortly\n")
	s := &fasthttp.Server{NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
		if *shed > 0 && rand.Float64() < *shed {
			ctx.Response.Header.Set("Retry-After", "1")
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetContentType("text/plain; charset=utf-8")
			ctx.SetBody(shedBody)
			return
		}
		ctx.SetContentType("text/plain")
		if *cc != "" {
			ctx.Response.Header.Set("Cache-Control", *cc)
		}
		ctx.SetBody(body)
	}}
	if err := s.ListenAndServe(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "benchserve:", err)
		os.Exit(1)
	}
}
