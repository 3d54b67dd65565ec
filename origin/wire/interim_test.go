package wire

import (
	"errors"
	"testing"
)

// TestInterim: informational responses travel in order with their fields,
// and both ends refuse what may not travel: 100 and 101, a status outside
// 1xx, more than MaxInterim.
func TestInterim(t *testing.T) {
	c := newCodec(t, Config{})
	frame, x, err := c.AppendRequest(nil, &Request{Method: Bytes("GET")})
	if err != nil {
		t.Fatal(err)
	}
	var want Response
	want.Status = 200
	want.AddInterim(102)
	in := want.AddInterim(103)
	in.AddHeader([]byte("Link"), []byte("</a.css>; rel=preload"))
	in.AddHeader([]byte("Link"), []byte("</b.js>; rel=preload"))
	out, _, err := c.AppendResponse(nil, x, &want)
	if err != nil {
		t.Fatal(err)
	}
	var got Response
	if _, err := c.DecodeResponse(out, x, &got); err != nil {
		t.Fatal(err)
	}
	if !sameResponse(&got, &want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	// Reuse: a second decode into the same Response keeps nothing of the
	// first beyond buffers.
	got.Reset()
	if len(got.Interim) != 0 {
		t.Fatalf("Reset left %d interim responses", len(got.Interim))
	}

	bad := func(mod func(r *Response)) error {
		var r Response
		r.Status = 200
		mod(&r)
		_, _, err := c.AppendResponse(nil, x, &r)
		if err == nil {
			t.Fatalf("sent %+v", r)
		}
		// The receiver refuses the same envelope sealed by a lax sender.
		raw := mustMarshal(t, &r)
		resp := signFrame(testKey(), 0, testNow, raw, frame[offMAC:headerLen])
		var d Response
		if _, derr := c.DecodeResponse(resp, x, &d); !errors.Is(derr, ErrEnvelope) {
			t.Fatalf("decoded %+v: %v", r, derr)
		}
		return err
	}
	for _, s := range []uint64{0, 100, 101, 200, 204} {
		if err := bad(func(r *Response) { r.AddInterim(s) }); !errors.Is(err, ErrEnvelope) {
			t.Errorf("interim %d: %v", s, err)
		}
	}
	if err := bad(func(r *Response) {
		for range MaxInterim + 1 {
			r.AddInterim(103)
		}
	}); !errors.Is(err, ErrEnvelope) {
		t.Errorf("%d interim responses: %v", MaxInterim+1, err)
	}
	// An interim response past the field bound would fail the edge's
	// decode, which its client counts against the origin.
	if err := bad(func(r *Response) {
		in := r.AddInterim(103)
		for range MaxFields + 1 {
			in.AddHeader([]byte("a"), []byte("b"))
		}
	}); !errors.Is(err, ErrEnvelope) {
		t.Errorf("%d fields in an interim response: %v", MaxFields+1, err)
	}
}
