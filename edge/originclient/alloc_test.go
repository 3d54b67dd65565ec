//go:build !race

package originclient

import (
	"net"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/wire"
)

const raceEnabled = false

// TestDoAllocs holds the steady-state exchange to zero allocations: the
// client pools its HTTP request, response and frame buffer, and a reused
// wire.Response decodes into its own capacity. The fake origin here is
// allocation-free too, so the count is the client's.
func TestDoAllocs(t *testing.T) {
	o := benchOrigin(t)
	c := newClient(t, o.addr, nil)
	req := benchRequest()
	var resp wire.Response
	do := func() {
		if err := c.Do(time.Now().Add(10*time.Second), req, &resp); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		do()
	}
	if n := testing.AllocsPerRun(500, do); n != 0 {
		t.Fatalf("%v allocations per exchange, want 0", n)
	}
	if resp.Status != 200 || string(resp.Body) != string(benchBody) {
		t.Fatalf("status %d body %q", resp.Status, resp.Body)
	}
}

// TestDoStreamWatchAllocs: watching the client's connection for a hang-up
// (connwatch.Hangup) adds no allocation to an exchange answered before
// the watch starts, as nearly all are.
func TestDoStreamWatchAllocs(t *testing.T) {
	o := benchOrigin(t)
	c := newClient(t, o.addr, nil)
	req := benchRequest()
	var resp wire.Response
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	client, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	count := func(client net.Conn) float64 {
		do := func() {
			b, err := c.DoStream(time.Now().Add(10*time.Second), req, nil, 10*time.Second, &resp, client)
			if err != nil || b != nil {
				t.Fatal(err, b)
			}
		}
		for range 10 {
			do()
		}
		return testing.AllocsPerRun(500, do)
	}
	if plain, watched := count(nil), count(client); watched != plain {
		t.Fatalf("%v allocations per watched exchange, %v unwatched", watched, plain)
	}
}
