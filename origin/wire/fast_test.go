package wire

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// encMode is the reflective encoder the envelope types' struct tags define:
// core deterministic encoding (RFC 8949 §4.2.1), nil slices out empty rather
// than as null. appendRequest and appendResponse must write exactly what it
// writes.
var encMode, _ = func() cbor.EncOptions {
	o := cbor.CoreDetEncOptions()
	o.NilContainers = cbor.NilContainerAsEmpty
	return o
}().EncMode()

// fastCases are envelopes with every entry, and the edge values of each:
// integers at each argument width, nil members in arrays, hints with one
// entry, interim responses without fields.
func fastCases() []any {
	var out []any
	for _, g := range goldenEnvelopes {
		out = append(out, g.v)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for range 20 {
		out = append(out, browserRequest(rng), browserResponse(rng))
	}
	for _, n := range []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		out = append(out,
			&Request{Version: n, Method: Bytes("GET"), Timeout: n, Body: make(Bytes, n%300),
				Header: []Field{{}, {Name: Bytes("a")}, {Value: Bytes("b")}}},
			&Response{Status: n, Scope: n, Cache: Hints{Shared: n}, Interim: []Interim{{Status: n}}},
			&Response{Status: 200, Cache: Hints{Tags: []Bytes{nil, Bytes("t")}}},
			&Response{Status: 200, Cache: Hints{TTL: n}, Error: Bytes("e")},
		)
	}
	many := &Request{Version: 1, Method: Bytes("GET")}
	for range MaxFields {
		many.AddHeader([]byte("x"), bytes.Repeat([]byte("y"), 300))
		many.AddValue([]byte("v"), nil)
	}
	// peer, the last key: an edge that took its client from a trusted
	// proxy's X-Forwarded-For.
	peer := &Request{Version: 1, Method: Bytes("GET"), Client: Bytes("198.51.100.1"), Timeout: 1, Peer: Bytes("10.0.0.5")}
	return append(out, many, peer, &Request{}, &Response{})
}

// TestFastEncode: the encoder without reflection writes the reflective
// encoder's bytes, and the fast decoder reads them back (without falling
// back to the reflective one).
func TestFastEncode(t *testing.T) {
	for i, v := range fastCases() {
		want, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got := appendEnvelope(nil, v)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: %+v\nfast       %x\nreflective %x", i, v, got, want)
		}
		switch v := v.(type) {
		case *Request:
			var r Request
			if !decodeRequest(got, &r) || !sameRequest(&r, v) {
				t.Fatalf("case %d: fast decoder read %+v from %x", i, r, got)
			}
		case *Response:
			var r Response
			if !decodeResponse(got, &r) || !sameResponse(&r, v) {
				t.Fatalf("case %d: fast decoder read %+v from %x", i, r, got)
			}
		}
	}
}

// TestFastDecodeFallback: envelopes of shapes the fast decoder leaves to the
// reflective one still decode as before, and what the reflective decoder
// refuses is refused.
func TestFastDecodeFallback(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		fast      bool // whether the fast decoder reads it itself
	}{
		{"extension key", "a3 01 01 03 43 474554 18 63 82 01 02", false},
		{"text extension key", "a3 01 01 03 43 474554 61 78 00", false},
		{"null entry", "a3 01 01 03 43 474554 06 f6", false},
		{"key in a long form", "a2 18 01 01 03 43 474554", false},
		{"integer in a long form", "a2 01 1b 0000000000000001 03 43 474554", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := unhex(tc.hex)
			var fast Request
			if decodeRequest(b, &fast) != tc.fast {
				t.Fatalf("the fast decoder's verdict on %x: %v", b, !tc.fast)
			}
			var r Request
			if err := Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if want := (Request{Version: 1, Method: Bytes("GET")}); !sameRequest(&r, &want) {
				t.Fatalf("decoded %+v", r)
			}
		})
	}
	for _, h := range hostileCBOR {
		b := unhex(h)
		var r Request
		if decodeRequest(b, &r) {
			t.Errorf("the fast decoder took hostile %x", b)
		}
		if err := decMode.Unmarshal(b, new(Request)); err == nil {
			continue
		}
		if err := Unmarshal(b, &r); err == nil || Kind(err) != "envelope" {
			t.Errorf("%x: %v", b, err)
		}
	}
}

// FuzzFastDecode holds the fast decoder to the reflective one on the same
// input: whatever the fast path accepts, the reflective decoder accepts too,
// with the same envelope, and the fast encoder writes that envelope as the
// reflective encoder does.
func FuzzFastDecode(f *testing.F) {
	for _, b := range goldenSeeds(f, "") {
		f.Add(b)
	}
	for _, h := range hostileCBOR {
		f.Add(unhex(h))
	}
	for _, v := range fastCases()[:40] {
		f.Add(appendEnvelope(nil, v))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr, rr Request
		fastOK := decodeRequest(data, &fr)
		refErr := decMode.Unmarshal(data, &rr)
		if fastOK {
			if refErr != nil {
				t.Fatalf("fast decoder took %x, reflective refused it: %v", data, refErr)
			}
			if !sameRequest(&fr, &rr) {
				t.Fatalf("%x: fast %+v, reflective %+v", data, fr, rr)
			}
			if got, want := appendRequest(nil, &fr), mustEnc(t, &rr); !bytes.Equal(got, want) {
				t.Fatalf("encoded %x, reflective %x", got, want)
			}
		}
		var fs, rs Response
		fastOK = decodeResponse(data, &fs)
		refErr = decMode.Unmarshal(data, &rs)
		if fastOK {
			if refErr != nil {
				t.Fatalf("fast decoder took %x, reflective refused it: %v", data, refErr)
			}
			if !sameResponse(&fs, &rs) {
				t.Fatalf("%x: fast %+v, reflective %+v", data, fs, rs)
			}
			if got, want := appendResponse(nil, &fs), mustEnc(t, &rs); !bytes.Equal(got, want) {
				t.Fatalf("encoded %x, reflective %x", got, want)
			}
		}
	})
}

func mustEnc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkEnvelope is the CBOR alone for the small exchange's request and
// response (about 1 KB together): fast and reflective, encode and decode.
func BenchmarkEnvelope(b *testing.B) {
	tc := exchangeCases()[0]
	reqCBOR, respCBOR := appendEnvelope(nil, tc.req), appendEnvelope(nil, tc.resp)
	b.Run("fast", func(b *testing.B) {
		var buf []byte
		var req Request
		var resp Response
		b.SetBytes(int64(len(reqCBOR) + len(respCBOR)))
		b.ReportAllocs()
		for b.Loop() {
			buf = appendEnvelope(buf[:0], tc.req)
			buf = appendEnvelope(buf[:0], tc.resp)
			if unmarshal(reqCBOR, &req) != nil || unmarshal(respCBOR, &resp) != nil {
				b.Fatal("decode failed")
			}
		}
	})
	b.Run("reflective", func(b *testing.B) {
		var buf bytes.Buffer
		um, _ := func() cbor.EncOptions {
			o := cbor.CoreDetEncOptions()
			o.NilContainers = cbor.NilContainerAsEmpty
			return o
		}().UserBufferEncMode()
		var req Request
		var resp Response
		b.SetBytes(int64(len(reqCBOR) + len(respCBOR)))
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			_ = um.MarshalToBuffer(tc.req, &buf)
			buf.Reset()
			_ = um.MarshalToBuffer(tc.resp, &buf)
			req.Reset()
			resp.Reset()
			if decMode.Unmarshal(reqCBOR, &req) != nil || decMode.Unmarshal(respCBOR, &resp) != nil {
				b.Fatal("decode failed")
			}
		}
	})
}

// TestMinCompress: envelopes under MinCompress go out uncompressed unless a
// dictionary applies, larger ones compressed, and a peer that compresses
// everything (the zero Config) reads both and answers in kind.
func TestMinCompress(t *testing.T) {
	d := testDict(t)
	small := goldenEnvelope("request-header-heavy-get").(*Request)
	big := &Request{Version: 1, Method: Bytes("POST"), Body: jsonBody(DefaultMinCompress)}
	plain := newCodec(t, Config{Dicts: [][]byte{d}})
	for _, tc := range []struct {
		name  string
		cfg   Config
		req   *Request
		flags byte // the request's
		resp  byte // the small response's
	}{
		{"small", Config{MinCompress: DefaultMinCompress}, small, 0, 0},
		{"large", Config{MinCompress: DefaultMinCompress}, big, flagZstd, 0},
		{"small with a dictionary", Config{MinCompress: DefaultMinCompress, Dicts: [][]byte{d}, Dict: testDictID}, small, flagZstd, flagZstd},
		{"zero config", Config{}, small, flagZstd, flagZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCodec(t, tc.cfg)
			frame, x, err := c.AppendRequest(nil, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if frame[offFlags] != tc.flags {
				t.Fatalf("flags %#x, want %#x", frame[offFlags], tc.flags)
			}
			var got Request
			ox, err := plain.DecodeRequest(frame, &got)
			if err != nil || !sameRequest(&got, tc.req) {
				t.Fatalf("peer decoded %+v, %v", got, err)
			}
			resp := &Response{Status: 200, Body: Bytes("ok")}
			rf, _, err := c.AppendResponse(nil, ox, resp)
			if err != nil {
				t.Fatal(err)
			}
			if rf[offFlags] != tc.resp {
				t.Fatalf("response flags %#x", rf[offFlags])
			}
			var gotResp Response
			if _, err := c.DecodeResponse(rf, x, &gotResp); err != nil || !sameResponse(&gotResp, resp) {
				t.Fatalf("decoded %+v, %v", gotResp, err)
			}
		})
	}
	if _, err := NewCodec(Config{Keys: []Key{testKey()}, MinCompress: -1}); err == nil {
		t.Fatal("negative MinCompress accepted")
	}
}
