package origintest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestStart exchanges an envelope with a started origin as an edge does,
// sealed under Key, then closes it twice: the port is free afterwards.
func TestStart(t *testing.T) {
	o := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.Body = append(resp.Body, req.Path...)
	}))
	c, err := originclient.New(originclient.Config{Addr: o.Addr, Codec: origintest.NewCodec(t, wire.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	req := &wire.Request{Method: wire.Bytes("GET"), Scheme: wire.Bytes("https"), Host: wire.Bytes("app.example"),
		Path: wire.Bytes("/hello")}
	resp := new(wire.Response)
	// Bounds a hang, not a measure.
	if err := c.Do(time.Now().Add(time.Minute), req, resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != "/hello" {
		t.Fatalf("answer %d %q, want 200 /hello", resp.Status, resp.Body)
	}
	o.Close()
	o.Close()
	if c, err := net.Dial("tcp4", o.Addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts after Close", o.Addr)
	}
}

// TestStartConfigListener serves on the listener the test gives, with
// the test's codec: an edge under another key is refused.
func TestStartConfigListener(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := wire.Key{ID: 2, Secret: make([]byte, 32)}
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: origintest.OK,
		Codec: origintest.NewCodec(t, wire.Config{Keys: []wire.Key{other}})}, ln)
	if o.Addr != ln.Addr().String() {
		t.Fatalf("Addr %s, want the listener's %s", o.Addr, ln.Addr())
	}
	c, err := originclient.New(originclient.Config{Addr: o.Addr, Codec: origintest.NewCodec(t, wire.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	req := &wire.Request{Method: wire.Bytes("GET"), Scheme: wire.Bytes("https"), Host: wire.Bytes("app.example"), Path: wire.Bytes("/")}
	if err := c.Do(time.Now().Add(time.Minute), req, new(wire.Response)); err == nil {
		t.Fatal("an edge under Key was answered by an origin under another key")
	}
}
