package edge

import (
	"testing"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/host"
)

// TestFromWire: the response takes the envelope's status and fields, as
// strings of its own that keep their text when the envelope's buffers are
// reused for the next exchange (a cached response outlives them).
func TestFromWire(t *testing.T) {
	for _, fields := range [][2]string{
		{},
		{"Content-Type", "text/html"},
		{"X-Empty", ""},
	} {
		var wresp wire.Response
		wresp.Status = 203
		wresp.AddHeader([]byte("Cache-Control"), []byte("no-store"))
		if fields[0] != "" {
			wresp.AddHeader([]byte(fields[0]), []byte(fields[1]))
		}
		resp := host.Response{Header: host.Header{Fields: []host.HeaderField{{Name: "Stale", Value: "field"}}}}
		fromWire(&wresp, &resp)
		for i := range wresp.Header {
			clear(wresp.Header[i].Name)
			clear(wresp.Header[i].Value)
		}
		want := []host.HeaderField{{Name: "Cache-Control", Value: "no-store"}}
		if fields[0] != "" {
			want = append(want, host.HeaderField{Name: fields[0], Value: fields[1]})
		}
		if resp.Status != 203 || len(resp.Header.Fields) != len(want) {
			t.Fatalf("%v: status %d, fields %q", fields, resp.Status, resp.Header.Fields)
		}
		for i, f := range resp.Header.Fields {
			if f != want[i] {
				t.Errorf("%v: field %d is %q, want %q", fields, i, f, want[i])
			}
		}
	}
}
