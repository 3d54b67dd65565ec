//go:build !race

package originclient

import (
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
