package wire

import "testing"

// TestExchangeSealed: both ends of an exchange read the same sealing time
// from the frame, the sender's clock to the millisecond, which is what an
// origin reckons a request's edge deadline from.
func TestExchangeSealed(t *testing.T) {
	c := newCodec(t, Config{})
	frame, sent, err := c.AppendRequest(nil, &Request{Method: Bytes("GET")})
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	got, err := c.DecodeRequest(frame, &r)
	if err != nil {
		t.Fatal(err)
	}
	if !sent.Sealed.Equal(testNow) || !got.Sealed.Equal(testNow) {
		t.Errorf("sealed at %v by the sender, %v by the receiver, want %v", sent.Sealed, got.Sealed, testNow)
	}
}
