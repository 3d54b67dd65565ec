package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	c := newCodec(t, Config{})
	req := &Request{Method: Bytes("GET"), Path: Bytes("/x"), Timeout: 5000}
	req.AddHeader([]byte("Accept"), []byte("a"))
	req.AddHeader([]byte("Accept"), []byte("b"))
	frame, x, err := c.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Version != Version {
		t.Fatalf("AppendRequest left Version %d", req.Version)
	}
	var got Request
	x2, err := c.DecodeRequest(frame, &got)
	if err != nil {
		t.Fatal(err)
	}
	if x2 != x || !sameRequest(&got, req) {
		t.Fatalf("got %+v %+v, want %+v %+v", got, x2, req, x)
	}
	if raw := mustMarshal(t, req); x.Size != len(raw) {
		t.Fatalf("Exchange.Size %d, CBOR is %d bytes", x.Size, len(raw))
	}
	resp := &Response{Status: 200, Body: Bytes("hi"), Cache: Hints{TTL: 3, Tags: []Bytes{Bytes("a")}}}
	rf, n, err := c.AppendResponse(nil, x2, resp)
	if err != nil {
		t.Fatal(err)
	}
	var gr Response
	m, err := c.DecodeResponse(rf, x, &gr)
	if err != nil {
		t.Fatal(err)
	}
	if n != m || n != len(mustMarshal(t, resp)) || !sameResponse(&gr, resp) {
		t.Fatalf("got %+v (%d, %d bytes)", gr, n, m)
	}
}

// TestAppendKeepsDst checks the Append contract: what dst held stays, and a
// refused envelope leaves dst as it was.
func TestAppendKeepsDst(t *testing.T) {
	c := newCodec(t, Config{})
	prefix := []byte("prefix")
	frame, x, err := c.AppendRequest(bytes.Clone(prefix), goldenEnvelope("request-minimal-get").(*Request))
	if err != nil || !bytes.HasPrefix(frame, prefix) {
		t.Fatalf("%q %v", frame, err)
	}
	var r Request
	if _, err := c.DecodeRequest(frame[len(prefix):], &r); err != nil {
		t.Fatal(err)
	}
	out, _, err := c.AppendResponse(bytes.Clone(prefix), x, &Response{Status: 0})
	if err == nil || !bytes.Equal(out, prefix) {
		t.Fatalf("refused response left %q (%v)", out, err)
	}
}

// TestKeyRotation walks the rotation README.md describes: the origin holds
// old and new key, edges move to the new one, responses follow each
// request's key, then the old key goes.
func TestKeyRotation(t *testing.T) {
	old, next := testKey(), otherKey()
	origin := newCodec(t, Config{Keys: []Key{old, next}})
	oldEdge := newCodec(t, Config{Keys: []Key{old}})
	newEdge := newCodec(t, Config{Keys: []Key{next, old}})
	req := goldenEnvelope("request-minimal-get").(*Request)
	for _, edge := range []*Codec{oldEdge, newEdge} {
		frame, x, err := edge.AppendRequest(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		var r Request
		ox, err := origin.DecodeRequest(frame, &r)
		if err != nil {
			t.Fatal(err)
		}
		if ox.Key != x.Key || frame[offKey] != x.Key {
			t.Fatalf("origin saw key %d, edge signed with %d", ox.Key, x.Key)
		}
		rf, _, err := origin.AppendResponse(nil, ox, &Response{Status: 200})
		if err != nil {
			t.Fatal(err)
		}
		if rf[offKey] != x.Key {
			t.Fatalf("response signed with key %d, request with %d", rf[offKey], x.Key)
		}
		var gr Response
		if _, err := edge.DecodeResponse(rf, x, &gr); err != nil {
			t.Fatal(err)
		}
	}
	// Old key retired at the origin: old edges are refused by key id.
	retired := newCodec(t, Config{Keys: []Key{next}})
	frame, _, err := oldEdge.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	_, err = retired.DecodeRequest(frame, &r)
	checkErr(t, err, ErrAuth, "unknown key 7")
}

func TestParseKey(t *testing.T) {
	k, err := ParseKey(" 7:" + strings.Repeat("42", 32) + "\n")
	if err != nil || k.ID != 7 || !bytes.Equal(k.Secret, testKey().Secret) {
		t.Fatalf("%v %v", k, err)
	}
	if back, err := ParseKey(k.Text()); err != nil || back.ID != k.ID || !bytes.Equal(back.Secret, k.Secret) {
		t.Fatalf("Text does not round-trip: %v %v", back, err)
	}
	if s := fmt.Sprintf("%v %+v", k, Config{Keys: []Key{k}}); strings.Contains(s, "4242") {
		t.Fatalf("formatting a key shows its secret: %s", s)
	}
	if k, err := ParseKey("255:" + strings.Repeat("AB", 64)); err != nil || k.ID != 255 {
		t.Fatalf("%v %v", k, err)
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "key must look like ID:HEX"},
		{strings.Repeat("42", 32), "key must look like ID:HEX"},
		{"256:" + strings.Repeat("42", 32), `key id "256": must be 0-255`},
		{"-1:" + strings.Repeat("42", 32), `key id "-1": must be 0-255`},
		{"x:" + strings.Repeat("42", 32), `key id "x"`},
		{"1:zz" + strings.Repeat("42", 31), "key secret: encoding/hex: invalid byte"},
		{"1:" + strings.Repeat("42", 15), "key secret is 15 bytes, want 16 to 64"},
		{"1:" + strings.Repeat("42", 65), "key secret is 65 bytes, want 16 to 64"},
	} {
		_, err := ParseKey(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "wire: ") {
			t.Errorf("ParseKey(%q) = %v, want an error saying %q", tc.in, err, tc.msg)
		}
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind string
	}{
		{ErrFrame, "frame"}, {ErrAuth, "auth"}, {ErrTooLarge, "too_large"},
		{ErrCompression, "compression"}, {ErrEnvelope, "envelope"}, {ErrVersion, "version"},
		{fmt.Errorf("%w: detail", ErrTooLarge), "too_large"},
		{fmt.Errorf("origin: %w", fmt.Errorf("%w: x", ErrAuth)), "auth"},
		{errors.New("wire: something else"), "other"},
	} {
		if got := Kind(tc.err); got != tc.kind {
			t.Errorf("Kind(%v) = %q, want %q", tc.err, got, tc.kind)
		}
	}
}

func TestGetAndEqual(t *testing.T) {
	fs := []Field{{Name: Bytes("Accept"), Value: Bytes("a")}, {Name: Bytes("accept"), Value: Bytes("b")}, {Name: Bytes("X-Y"), Value: nil}}
	if v, ok := Get(fs, "ACCEPT"); !ok || string(v) != "a" {
		t.Fatalf("Get = %q %v, want the first one", v, ok)
	}
	if _, ok := Get(fs, "x-y"); !ok {
		t.Fatal("empty value not found")
	}
	if _, ok := Get(fs, "accept-"); ok {
		t.Fatal("prefix matched")
	}
	if _, ok := Get(fs, "x_y"); ok {
		t.Fatal("'-' folded to '_'")
	}
	if !Equal(fs, fs[:3:3]) || Equal(fs, fs[:2]) || Equal(fs[:1], fs[1:2]) {
		t.Fatal("Equal")
	}
}

// TestReuse checks that a reused Request holds no leftovers from the last
// envelope: Reset empties every field, and decoding sets only what is there.
func TestReuse(t *testing.T) {
	c := newCodec(t, Config{})
	var r Request
	for _, name := range []string{"request-header-heavy-get", "request-minimal-get", "request-forwarded-values", "request-minimal-get"} {
		want := goldenEnvelope(name).(*Request)
		frame, _, err := c.AppendRequest(nil, want)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DecodeRequest(frame, &r); err != nil {
			t.Fatal(err)
		}
		if !sameRequest(&r, want) {
			t.Fatalf("%s: decoded into a reused Request: %+v", name, r)
		}
	}
	var resp Response
	for _, name := range []string{"response-hints", "response-minimal", "response-origin-504"} {
		want := goldenEnvelope(name).(*Response)
		if err := Unmarshal(mustMarshal(t, want), &resp); err != nil {
			t.Fatal(err)
		}
		if !sameResponse(&resp, want) {
			t.Fatalf("%s: decoded into a reused Response: %+v", name, resp)
		}
	}
	if err := Unmarshal(nil, &struct{}{}); err == nil {
		t.Fatal("Unmarshal into a struct of another type")
	}
	if _, err := Marshal(struct{}{}); err == nil {
		t.Fatal("Marshal of another type")
	}
}

func TestHopByHop(t *testing.T) {
	for name, want := range map[string]bool{
		"Connection": true, "keep-alive": true, "TE": true, "Trailer": true, "Transfer-Encoding": true,
		"UPGRADE": true, "Proxy-Authorization": true, "proxy-connection": true, "Proxy-Authenticate": true,
		// RFC 9209's Proxy-Status is for the client: no prefix rule.
		"Proxy-Status":   false,
		"Content-Length": false, "Host": false, "Te-X": false, "Proxy": false, "X-Proxy-Id": false, "": false,
	} {
		if HopByHop(name) != want || HopByHop([]byte(name)) != want {
			t.Errorf("HopByHop(%q) = %v, want %v", name, !want, want)
		}
	}
}
