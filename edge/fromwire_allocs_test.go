//go:build !race

package edge

import (
	"testing"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/host"
)

// TestFromWireAllocs holds copying an origin answer's header fields to one
// allocation per response, however many fields it has.
func TestFromWireAllocs(t *testing.T) {
	var wresp wire.Response
	for _, f := range [][2]string{
		{"Content-Type", "application/json"}, {"Cache-Control", "no-store"},
		{"Etag", `"abc"`}, {"Vary", "Accept-Encoding"}, {"X-Request-Id", "r-42"},
	} {
		wresp.AddHeader([]byte(f[0]), []byte(f[1]))
	}
	var resp host.Response
	fromWire(&wresp, &resp)
	if n := testing.AllocsPerRun(200, func() { fromWire(&wresp, &resp) }); n > 1 {
		t.Errorf("%v allocations per response, want 1", n)
	}
}
