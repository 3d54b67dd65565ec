package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// goldenSeeds returns the CBOR of the golden envelopes whose names start
// with prefix, read from testdata/golden so the seeds are what the spec
// pins.
func goldenSeeds(f *testing.F, prefix string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "golden", prefix+"*.hex"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no golden %s vectors: %v", prefix, err)
	}
	var out [][]byte
	for _, p := range paths {
		text, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, parseHex(f, text))
	}
	return out
}

// hostileCBOR seeds the shapes the decoders must refuse.
var hostileCBOR = []string{
	"bf 01 01 03 43 474554 ff",        // indefinite map
	"a2 01 01 03 5f 41 47 42 4554 ff", // indefinite byte string
	"a2 01 01 03 d8 18 43 474554",     // tag
	"a3 01 01 03 43 474554 03 41 47",  // duplicate key
	"a2 01 01 03 63 474554",           // text string method
	"a3 01 01 03 43 474554 08 81 83 41 61 41 62 41 63",
	"a2 01 01 03 f6",                      // null method
	"a4 01 18 c8 02 f7 04 a1 03 80 05 40", // response with undefined header
}

func FuzzUnmarshalRequest(f *testing.F)  { fuzzUnmarshal(f, "request-", sameRequest) }
func FuzzUnmarshalResponse(f *testing.F) { fuzzUnmarshal(f, "response-", sameResponse) }

// fuzzUnmarshal checks that whatever decodes as a T re-encodes, decodes to
// the same envelope and encodes deterministically.
func fuzzUnmarshal[T Request | Response](f *testing.F, prefix string, same func(a, b *T) bool) {
	for _, b := range goldenSeeds(f, prefix) {
		f.Add(b)
	}
	for _, h := range hostileCBOR {
		f.Add(unhex(h))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r T
		if err := Unmarshal(data, &r); err != nil {
			if Kind(err) != "envelope" {
				t.Fatalf("error %q classed as %s", err, Kind(err))
			}
			return
		}
		b, err := Marshal(&r)
		if err != nil {
			t.Fatalf("decoded %+v, cannot encode it: %v", r, err)
		}
		var again T
		if err := Unmarshal(b, &again); err != nil {
			t.Fatalf("re-encoded %x does not decode: %v", b, err)
		}
		if !same(&r, &again) {
			t.Fatalf("decoded %+v, then %+v", r, again)
		}
		if b2, _ := Marshal(&again); !bytes.Equal(b, b2) {
			t.Fatalf("encoding not deterministic: %x then %x", b, b2)
		}
	})
}

// FuzzDecodeRequest feeds whole frames through a Codec. The fuzzer picks the
// flags byte and the payload; the harness signs them with the test key, so
// mutations reach the zstd and CBOR decoders instead of dying at the MAC.
// A frame opens as a request or as a tunnel's handshake as its tunnel flag
// says, never as both: the other decoder refuses it as not signed for it.
func FuzzDecodeRequest(f *testing.F) {
	d := testDict(f)
	c := newCodec(f, Config{Dicts: [][]byte{d}, MaxEnvelope: 1 << 20})
	for _, b := range goldenSeeds(f, "request-") {
		f.Add(byte(0), b)
		f.Add(byte(flagZstd), zstdFrame(f, b))
		f.Add(byte(flagZstd), zstdFrame(f, b, zstd.WithEncoderDict(d)))
		f.Add(byte(flagZstd), zstdFrame(f, b, zstd.WithEncoderCRC(true), zstd.WithEncoderLevel(zstd.SpeedFastest)))
		f.Add(byte(flagTunnel), b)
		f.Add(byte(flagTunnel|flagZstd), zstdFrame(f, b))
		f.Add(byte(flagTunnel|flagStream), b)
	}
	for _, h := range hostileCBOR {
		f.Add(byte(0), unhex(h))
	}
	f.Add(byte(flagZstd), unhex("50 2a 4d 18 01000000 00"))       // skippable frame
	f.Add(byte(flagZstd), unhex("28 b5 2f fd 00 68 07 00 00"))    // reserved block
	f.Add(byte(flagZstd), unhex("28 b5 2f fd 00 68 03 00 10 00")) // RLE, no content size
	f.Add(byte(0x80), []byte{0xa0})

	f.Fuzz(func(t *testing.T, flags byte, payload []byte) {
		frame := signFrame(testKey(), flags, testNow, payload, nil)
		decode, other, appendReq := c.DecodeRequest, c.DecodeTunnelRequest, c.AppendRequest
		if flags&flagTunnel != 0 {
			decode, other, appendReq = c.DecodeTunnelRequest, c.DecodeRequest, c.AppendTunnelRequest
		}
		var r Request
		if _, err := other(frame, &r); err == nil || (flags&^knownFlags == 0 && Kind(err) != "auth") {
			t.Fatalf("flags %#x opened by the other kind's decoder: %v", flags, err)
		}
		x, err := decode(frame, &r)
		if err != nil {
			if k := Kind(err); k == "other" || k == "auth" {
				t.Fatalf("signed frame refused with %q (kind %s)", err, k)
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Fatalf("error %q", err)
			}
			return
		}
		if r.Version != Version || len(r.Method) == 0 || (x.Dict != 0 && x.Dict != testDictID) {
			t.Fatalf("accepted %+v with exchange %+v", r, x)
		}
		// What was accepted goes out again and comes back the same, and the
		// exchange can be answered.
		again, _, err := appendReq(nil, &r)
		if err != nil {
			t.Fatalf("accepted %+v, cannot send it: %v", r, err)
		}
		var r2 Request
		if _, err := decode(again, &r2); err != nil || !sameRequest(&r, &r2) {
			t.Fatalf("re-sent %+v, got %+v (%v)", r, r2, err)
		}
		if _, _, err := c.AppendResponse(nil, x, &Response{Status: 200}); err != nil {
			t.Fatalf("cannot answer %+v: %v", x, err)
		}
	})
}
