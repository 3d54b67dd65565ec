//go:build !race

package wire

import "testing"

// TestAllocs is the allocation budget of the codec path: with buffers and
// envelopes reused, a whole exchange allocates nothing, at any body size.
// (Under -race, sync.Pool drops items at random, so this runs without it.)
func TestAllocs(t *testing.T) {
	for _, tc := range exchangeCases() {
		for _, dict := range []bool{false, true} {
			e := newExchanger(t, dict)
			e.run(t, tc)
			if n := testing.AllocsPerRun(50, func() { e.run(t, tc) }); n != 0 {
				t.Errorf("%s (dictionary %v): %v allocations per exchange", tc.name, dict, n)
			}
		}
	}
	// Decoding into a reused envelope reuses its byte strings and field
	// lists: Bytes.UnmarshalBinary appends into the existing capacity.
	req := exchangeCases()[0].req
	b := mustMarshal(t, req)
	var r Request
	if err := Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Unmarshal(b, &r) }); n != 0 {
		t.Errorf("Unmarshal into a reused Request: %v allocations", n)
	}
	if !sameRequest(&r, req) {
		t.Fatalf("decoded %+v", r)
	}
	resp := mustMarshal(t, exchangeCases()[0].resp)
	var gr Response
	if err := Unmarshal(resp, &gr); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Unmarshal(resp, &gr) }); n != 0 {
		t.Errorf("Unmarshal into a reused Response: %v allocations", n)
	}
	// A fresh Request allocates: the reuse above is real, not a quirk of
	// the measurement.
	if n := testing.AllocsPerRun(100, func() { var fresh Request; _ = Unmarshal(b, &fresh) }); n == 0 {
		t.Error("Unmarshal into a fresh Request reported no allocations")
	}
}
