package e2e

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// gatedListener accepts nothing until its gate opens: an origin service
// that has stalled while the kernel still completes connections and takes
// the frames edges write.
type gatedListener struct {
	net.Listener
	gate <-chan struct{}
}

func (l gatedListener) Accept() (net.Conn, error) {
	<-l.gate
	return l.Listener.Accept()
}

// TestStalledOriginDropsExpiredFrames: a request the edge gave up on while
// the origin was stalled is not run by the application when the origin
// resumes and reads its frame; the edge already answered its client 504,
// and a POST run now would be one the client was told failed.
func TestStalledOriginDropsExpiredFrames(t *testing.T) {
	var hits atomic.Int32
	app := listen(t)
	serve(t, app, func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		ctx.SetBodyString("ran")
	})
	gate := make(chan struct{})
	var once sync.Once
	resume := func() { once.Do(func() { close(gate) }) }
	s := newStack(t, stackOpts{
		proxy:    originProxy{Upstreams: []string{"http://" + app.Addr().String()}, HealthInterval: -1},
		listener: func(ln net.Listener) net.Listener { return gatedListener{ln, gate} },
	})
	t.Cleanup(resume) // before the origin's shutdown, which waits for Serve

	resp := new(wire.Response)
	err := s.client.Do(time.Now().Add(300*time.Millisecond), newRequest("POST", "/orders"), resp)
	if !errors.Is(err, originclient.ErrTimeout) {
		t.Fatalf("during the stall: %v, want a timeout", err)
	}
	resume()
	// The origin now reads the frame the edge left; wait for its answer.
	answered := func() float64 {
		n := 0.0
		for _, code := range []string{"2xx", "5xx"} {
			n += wasmtest.Metric(t, s.originReg, "wedge_origin_exchanges_total", map[string]string{"code": code})
		}
		return n
	}
	testutil.Eventually(t, 10*time.Second, "the origin to answer the stalled frame", func() bool { return answered() == 1 })
	if n := hits.Load(); n != 0 {
		t.Fatalf("the application ran %d request(s) the edge had given up on", n)
	}
	if n := wasmtest.Metric(t, s.originReg, "wedge_origin_errors_total", map[string]string{"kind": "expired"}); n != 1 {
		t.Errorf("expired frames counted %v, want 1", n)
	}
	// The origin serves on.
	if resp := s.do(t, 5*time.Second, newRequest("POST", "/orders")); resp.Status != 200 || string(resp.Body) != "ran" {
		t.Fatalf("after the stall: %d %q %q", resp.Status, resp.Body, resp.Error)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("application ran %d requests, want 1", n)
	}
}
