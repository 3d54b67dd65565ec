// Command benchserve is a bare fasthttp server that answers every request
// with the same body: the ceiling the edge benchmarks compare Wedge, nginx
// and Varnish against, and the application behind them.
//
//	benchserve -listen 127.0.0.1:18001 -size 1024 -cache-control 'public, max-age=3600'
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "address")
	size := flag.Int("size", 1024, "body size in bytes")
	cc := flag.String("cache-control", "public, max-age=3600", "Cache-Control of every response (\"\": none)")
	flag.Parse()
	body := bytes.Repeat([]byte("x"), *size)
	s := &fasthttp.Server{NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
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
