package edge

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm/host"
)

// These tests run tunnels over net.Pipe: a write blocks until the other
// end reads, which is a client or an application that stopped reading, at
// any point the test chooses.

var switchHead = []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")

func newTestTunnels(t *testing.T, lim WebSocketLimits) *tunnels {
	lim.setDefaults()
	ts := new(tunnels)
	ts.init(lim, prometheus.NewRegistry())
	t.Cleanup(ts.wg.Wait) // after the pipes closed
	return ts
}

// openPipeTunnel runs a tunnel between two pipes and returns their other
// ends, the 101 read off the client's: the client's and the origin's.
func openPipeTunnel(t *testing.T, ts *tunnels) (client, origin net.Conn) {
	t.Helper()
	c, client := net.Pipe()
	o, origin := net.Pipe()
	if ts.reserve(netip.Addr{}) >= 0 {
		t.Fatal("no slot")
	}
	go ts.run(nil, netip.Addr{}, c, o, switchHead)
	if _, err := io.ReadFull(client, make([]byte, len(switchHead))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		origin.Close()
	})
	return client, origin
}

// only is the one open tunnel, once run registered it.
func only(t *testing.T, ts *tunnels) *tunnel {
	t.Helper()
	var tun *tunnel
	testutil.Eventually(t, time.Minute, "the tunnel open", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for x := range ts.open {
			tun = x
		}
		return tun != nil
	})
	return tun
}

// TestTunnelDrainDoesNotWait: a drain asks every tunnel for its close
// frames and returns; it does not write them, one tunnel after another,
// to clients that do not read (each would hold it drain_timeout).
func TestTunnelDrainDoesNotWait(t *testing.T) {
	ts := newTestTunnels(t, WebSocketLimits{DrainTimeout: Duration(time.Hour)})
	const tunnels = 3
	var clients, origins []net.Conn
	for range tunnels {
		c, o := openPipeTunnel(t, ts)
		clients, origins = append(clients, c), append(origins, o)
	}
	testutil.Eventually(t, time.Minute, "the tunnels open", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.open) == tunnels
	})
	done := make(chan struct{})
	go func() {
		ts.drain(nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the drain waits on clients that do not read")
	}
	// The close frames go as the ends read: 1001 both ways.
	for i := range tunnels {
		b := make([]byte, 4)
		if _, err := io.ReadFull(clients[i], b); err != nil || !bytes.Equal(b, []byte{0x88, 2, 0x03, 0xe9}) {
			t.Fatalf("to the client: % x, %v; want close 1001", b, err)
		}
		b = make([]byte, 8)
		if _, err := io.ReadFull(origins[i], b); err != nil || b[0] != 0x88 || b[1] != 0x82 ||
			b[6]^b[2] != 0x03 || b[7]^b[3] != 0xe9 {
			t.Fatalf("to the origin: % x, %v; want masked close 1001", b, err)
		}
	}
}

// TestTunnelTooBigWhileMidFrame: a client's message over the limit, while
// the origin is in the middle of a frame to the client, still gets the
// client its close 1009: the origin is closed once that frame ended and the
// close frame went, not at once.
func TestTunnelTooBigWhileMidFrame(t *testing.T) {
	ts := newTestTunnels(t, WebSocketLimits{MaxMessageBytes: 1024, DrainTimeout: Duration(time.Hour)})
	client, origin := openPipeTunnel(t, ts)
	tun := only(t, ts)
	// Half a 100-byte binary frame from the application, on its way to
	// the client.
	frame := append([]byte{0x82, 100}, make([]byte, 100)...)
	go origin.Write(frame[:52])
	if _, err := io.ReadFull(client, make([]byte, 52)); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	// A client frame claiming 1025 bytes: refused at its header.
	if _, err := client.Write([]byte{0x82, 0x80 | 126, 0x04, 0x01, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, "the tunnel stopped", tun.isStopped)
	if _, err := origin.Write(frame[52:]); err != nil {
		t.Fatalf("the rest of the frame in flight: %v (the origin closed before the client's close frame)", err)
	}
	// Then the origin's connection is closed.
	if _, err := origin.Read(make([]byte, 16)); err != io.EOF {
		t.Fatalf("the origin's end reads %v, want EOF", err)
	}
	client.Close()
	b := <-got
	want := append(frame[52:], 0x88, 2, 0x03, 0xf1) // close 1009
	if !bytes.Equal(b, want) {
		t.Fatalf("the client got % x, want the rest of the frame then close 1009", b)
	}
}

// TestTunnelHijackSkipped: when fasthttp never runs the hijack handler
// (it could not write what it held for the connection), the origin's
// connection is closed and the slot released all the same.
func TestTunnelHijackSkipped(t *testing.T) {
	n := &Node{srv: &fasthttp.Server{WriteTimeout: time.Millisecond}}
	n.tun.init(WebSocketLimits{MaxTunnels: 1, MaxTunnelsPerClient: 1, DrainTimeout: Duration(time.Millisecond)}, prometheus.NewRegistry())
	if n.tun.reserve(netip.Addr{}) >= 0 {
		t.Fatal("no slot")
	}
	rt := &route{origin: &origin{}}
	o, origin := net.Pipe()
	defer origin.Close()
	var ctx fasthttp.RequestCtx
	n.startTunnel(&ctx, &requestChain{rt: rt, tun: o}, &host.Response{Status: fasthttp.StatusSwitchingProtocols})
	// ctx is never served: its hijack handler never runs.
	origin.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := origin.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the origin's end reads %v, want EOF", err)
	}
	testutil.Eventually(t, time.Minute, "the slot released", func() bool { return n.tun.reserve(netip.Addr{}) < 0 })
}

// TestTunnelDeafClient: a client that stops reading but keeps sending
// does not hold its tunnel forever: the write to it waits idle_timeout at
// most, then the tunnel stops. Its sending kept the tunnel from ever
// looking idle, and the write waited until the drain bound, an hour here.
func TestTunnelDeafClient(t *testing.T) {
	ts := newTestTunnels(t, WebSocketLimits{IdleTimeout: Duration(100 * time.Millisecond), DrainTimeout: Duration(time.Hour)})
	client, origin := openPipeTunnel(t, ts)
	tun := only(t, ts)
	go io.Copy(io.Discard, origin)
	// A message from the application the client never reads.
	go origin.Write([]byte{0x82, 4, 1, 2, 3, 4})
	ping := []byte{0x89, 0x80, 1, 2, 3, 4} // a masked, empty ping
	gaveUp := func() bool {
		if !tun.down.mu.TryLock() {
			return false // writing
		}
		defer tun.down.mu.Unlock()
		return tun.down.shut
	}
	for deadline := time.Now().Add(time.Minute); !gaveUp(); {
		if time.Now().After(deadline) {
			t.Fatal("the write to a client that reads nothing but sends still waits")
		}
		if _, err := client.Write(ping); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, time.Minute, "the tunnel stopped", tun.isStopped)
	if why := tun.why.Load(); why != closeIdle {
		t.Fatalf("closed for %s, want idle", closeReasons[why])
	}
}

// TestTunnelOriginGone: an origin that goes away without a close frame
// (an application restarting) leaves the client a close 1001, between two
// frames; the client saw its connection drop (1006). Gone in the middle of
// a frame, it leaves the client the frame's bytes it sent and no close
// frame inside it.
func TestTunnelOriginGone(t *testing.T) {
	ts := newTestTunnels(t, WebSocketLimits{DrainTimeout: Duration(time.Millisecond)})
	for _, c := range []struct{ sent, want []byte }{
		{[]byte{0x82, 2, 7, 7}, []byte{0x82, 2, 7, 7, 0x88, 2, 0x03, 0xe9}},
		{[]byte{0x82, 4, 7, 7}, []byte{0x82, 4, 7, 7}},
	} {
		client, origin := openPipeTunnel(t, ts)
		go func() {
			origin.Write(c.sent)
			origin.Close()
		}()
		// The client's end is closed after drain_timeout.
		if b, _ := io.ReadAll(client); !bytes.Equal(b, c.want) {
			t.Fatalf("the origin sent % x and went away; the client got % x, want % x", c.sent, b, c.want)
		}
	}
}

// TestTunnelClientReleased: a drained tunnel gives its client's slot
// back, and a client with none left is no longer in the count, which
// would otherwise hold every address that ever opened a tunnel.
func TestTunnelClientReleased(t *testing.T) {
	ts := newTestTunnels(t, WebSocketLimits{MaxTunnelsPerClient: 1, DrainTimeout: Duration(time.Millisecond)})
	client, origin := openPipeTunnel(t, ts)
	go io.Copy(io.Discard, client)
	go io.Copy(io.Discard, origin)
	only(t, ts)
	if why := ts.reserve(netip.Addr{}); why != closeClientLimit {
		t.Fatalf("a second tunnel from the client: reserve %d, want closeClientLimit", why)
	}
	ts.drain(nil)
	testutil.Eventually(t, time.Minute, "the client out of the count", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.open) == 0 && len(ts.per) == 0 && ts.slots == 0
	})
}

// TestTunnelClientKey: a client is its IPv4 address, in IPv6 form or
// not, and an IPv6 one's /64: each address of one host's network counted
// apart would let the host fill the node.
func TestTunnelClientKey(t *testing.T) {
	key := func(s string) netip.Addr { return tunnelClient(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s))) }
	for _, c := range []struct{ a, b string }{
		{"127.0.0.1:1", "127.0.0.1:2"},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1:2"},
		{"[2001:db8:1:2:3:4:5:6]:1", "[2001:db8:1:2::9]:2"},
	} {
		if key(c.a) != key(c.b) {
			t.Errorf("%s and %s: %v and %v, want one client", c.a, c.b, key(c.a), key(c.b))
		}
	}
	for _, c := range []struct{ a, b string }{
		{"127.0.0.1:1", "127.0.0.2:1"},
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1"},
	} {
		if key(c.a) == key(c.b) {
			t.Errorf("%s and %s: both %v, want two clients", c.a, c.b, key(c.a))
		}
	}
}
