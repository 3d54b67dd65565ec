package origin_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/wire"
)

// An origin service in front of an HTTP application, and one exchange with
// it as an edge makes it: seal a request into a frame, POST it to wire.Path,
// open the response frame. Both ends hold the same key.
func Example() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s, %s\n", r.URL.Path, r.Header.Get("Accept-Language"))
	}))
	defer app.Close()

	key := wire.Key{ID: 1, Secret: bytes.Repeat([]byte{0x42}, 32)} // wedgectl origin keygen makes one
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{key}})
	if err != nil {
		log.Fatal(err)
	}
	defer codec.Close()
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{app.URL}})
	if err != nil {
		log.Fatal(err)
	}
	defer proxy.Close()
	srv, err := origin.NewServer(origin.ServerConfig{Codec: codec, Handler: proxy})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	// The edge's side (edge/originclient does this with pooled connections).
	req := &wire.Request{Method: wire.Bytes("GET"), Scheme: wire.Bytes("https"), Host: wire.Bytes("app.example"),
		Path: wire.Bytes("/greeting"), Timeout: 5_000_000} // 5 s of the edge's budget left, in microseconds
	req.AddHeader([]byte("Accept-Language"), []byte("sv"))
	frame, x, err := codec.AppendRequest(nil, req)
	if err != nil {
		log.Fatal(err)
	}
	hr, err := http.Post("http://"+ln.Addr().String()+wire.Path, "application/wedge", bytes.NewReader(frame))
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(hr.Body)
	hr.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	var resp wire.Response
	if _, err := codec.DecodeResponse(body, x, &resp); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("transport %d, application %d: %s", hr.StatusCode, resp.Status, resp.Body)
	// Output:
	// transport 200, application 200: hello from /greeting, sv
}
