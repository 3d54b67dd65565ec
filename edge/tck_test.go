package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/tck"
	"github.com/talowa/wedge/wasm/tck/tcktest"
)

// TestConformanceLive runs the conformance kit in a live edge node, as
// http-wasm's TCK runs against a server: the kit is the node's chain, the
// fixture request comes over a socket on 127.0.0.1 and goes on to an origin
// service, and what the node did is held to the standard the harness is
// (tcktest.Check), with as many checks passing as in the harness run. The
// harness and the node run a chain through the same runner (host.Flow);
// this holds the node's side of it (its exchange, request copy, origin
// link, stores, metrics and logs) to the contract too.
func TestConformanceLive(t *testing.T) { conformanceLive(t, tcktest.GuestDir(t)) }

// TestConformanceLiveRust is TestConformanceLive with the kit's guest in
// Rust.
func TestConformanceLiveRust(t *testing.T) { conformanceLive(t, tcktest.RustGuestDir(t)) }

// conformanceLive runs the kit built from guest in a live edge node.
func conformanceLive(t *testing.T, guest string) {
	harness := tcktest.RunWasmGuest(t, guest)

	// What the origin got, copied: the envelope's buffers are reused.
	var mu sync.Mutex
	var sent *host.Request
	var id string
	fwd := map[string]string{}
	originAddr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		mu.Lock()
		sent = &host.Request{Method: string(req.Method), Path: string(req.Path), Body: bytes.Clone(req.Body)}
		for _, f := range req.Header {
			sent.Header.Add(string(f.Name), string(f.Value))
		}
		for _, v := range req.Values {
			fwd[string(v.Name)] = string(v.Value)
		}
		id = string(req.ID)
		mu.Unlock()
		o := tcktest.OriginResponse()
		resp.Status = uint64(o.Status)
		for _, f := range o.Header.Fields {
			resp.AddHeader([]byte(f.Name), []byte(f.Value))
		}
		resp.Body = append(resp.Body, o.Body...)
	})).Addr

	// The client's connection is made before the node starts, so that the
	// kit can be told the client address the node will give the request.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := tcktest.Config(t, tck.Assigned{Scheme: "http", ClientAddr: c.LocalAddr().String(), RequestID: tck.AnyRequestID})
	lg := &tcktest.Logs{}
	n := startNodeWith(t, fmt.Sprintf(`
pop: test1
region: eu-test
limits: {max_body_bytes: %d}
origins:
  app: {addr: %q, key: %q}
routes:
  - name: tck
    host: %s
    path: /
    origin: app
    chain:
      - {name: tck, version: "1", file: %q, config: %s}
`, tck.MaxBodySize, originAddr, origintest.Key.Text(), tck.Host, edgetest.ModuleFile(t, guest), cfg), edge.Options{Logger: slog.New(lg)}, ln)

	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(tcktest.RawRequest()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	client := host.Response{Status: resp.StatusCode, Body: body}
	for name, vs := range resp.Header {
		for _, v := range vs {
			client.Header.Add(name, v)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if sent == nil {
		t.Fatal("the origin got no request")
	}
	var failed error
	if lg.Has("plugin failed", "plugin", "tck@1") {
		failed = fmt.Errorf("the node logged a failure of the kit")
	}
	passed := tcktest.Check(t, tcktest.Observed{Resp: &client, Failed: failed, Origin: sent, Forwarded: fwd,
		RequestID: id, Cache: n.Cache(), Metrics: n.Registry(), Labels: map[string]string{"plugin": "tck", "version": "1"}, Logs: lg})
	if passed != harness {
		t.Errorf("%d checks passed in the node, %d in the harness", passed, harness)
	}
}
