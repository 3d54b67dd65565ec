package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// reqFrame signs payload as a request frame with the test key and clock, so
// a hostile payload gets past the MAC to the decoders behind it.
func reqFrame(flags byte, payload []byte) []byte {
	return signFrame(testKey(), flags, testNow, payload, nil)
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// checkErr asserts err is sentinel with a message that names the problem.
func checkErr(t *testing.T, err, sentinel error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q (kind %s), want %v", err, Kind(err), sentinel)
	}
	if !strings.HasPrefix(err.Error(), "wire: ") || !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q, want one saying %q", err, msg)
	}
}

// checkStillWorks runs a whole exchange through c: a refused frame must
// leave nothing behind in the pooled encoders, decoders and MACs.
func checkStillWorks(t *testing.T, c *Codec) {
	t.Helper()
	want := goldenEnvelope("request-header-heavy-get").(*Request)
	frame, x, err := c.AppendRequest(nil, want)
	if err != nil {
		t.Fatal(err)
	}
	var got Request
	ox, err := c.DecodeRequest(frame, &got)
	if err != nil {
		t.Fatalf("valid exchange after a refused frame: %v", err)
	}
	if !sameRequest(&got, want) {
		t.Fatalf("decoded %+v", got)
	}
	wantResp := goldenEnvelope("response-hints").(*Response)
	rf, _, err := c.AppendResponse(nil, ox, wantResp)
	if err != nil {
		t.Fatal(err)
	}
	var gotResp Response
	if _, err := c.DecodeResponse(rf, x, &gotResp); err != nil {
		t.Fatalf("valid response after a refused frame: %v", err)
	}
	if !sameResponse(&gotResp, wantResp) {
		t.Fatalf("decoded %+v", gotResp)
	}
}

func TestHostileRequests(t *testing.T) {
	minimal := mustMarshal(t, goldenEnvelope("request-minimal-get"))
	tooMany := &Request{Version: 1, Method: Bytes("GET")}
	for range MaxFields + 1 {
		tooMany.AddHeader([]byte("a"), []byte("b"))
	}
	manyPairs := []byte{0xb8, 66, 0x01, 0x01, 0x03, 0x43, 'G', 'E', 'T'}
	for k := range 64 {
		manyPairs = append(manyPairs, 0x18, byte(100+k), 0x00)
	}
	deep := unhex("a3 01 01 03 43 474554 18 63") // {1: 1, 3: 'GET', 99: [[[...]]]}
	deep = append(append(deep, bytes.Repeat([]byte{0x81}, 9)...), 0x00)
	header := minimal[:0:0]
	header = append(header, signFrame(testKey(), flagZstd, testNow, zstdFrame(t, minimal), nil)[:headerLen]...)

	cases := []struct {
		name  string
		frame []byte
		err   error
		msg   string
	}{
		{"empty", nil, ErrFrame, "0 bytes, shorter than the 26-byte header"},
		{"header only, no MAC match", header, ErrAuth, "bad MAC"},
		{"unknown flag bit 3", reqFrame(0x08, minimal), ErrFrame, "unknown flags 0x8"},
		{"tunnel handshake as a request", reqFrame(0x04, minimal), ErrAuth, "a tunnel's handshake where a request was expected"},
		{"stream head as a whole request", reqFrame(0x02, minimal), ErrFrame, "a streamed exchange's head where a whole envelope was expected"},
		{"unknown flag bit 7", reqFrame(0x81, minimal), ErrFrame, "unknown flags 0x81"},
		{"unknown key id", signFrame(otherKey(), 0, testNow, minimal, nil), ErrAuth, "unknown key 9"},
		{"wrong secret", signFrame(Key{ID: 7, Secret: bytes.Repeat([]byte{0x43}, 32)}, 0, testNow, minimal, nil), ErrAuth, "bad MAC for key 7"},
		{"signed as a response", signFrame(testKey(), 0, testNow, minimal, make([]byte, macLen)), ErrAuth, "bad MAC"},
		{"stale", signFrame(testKey(), 0, testNow.Add(-61*time.Second), minimal, nil), ErrAuth, "1m1s off this clock, more than 1m0s"},
		{"future", signFrame(testKey(), 0, testNow.Add(61*time.Second), minimal, nil), ErrAuth, "-1m1s off this clock"},
		{"timestamp far future", signFrame(testKey(), 0, time.UnixMilli(1<<62), minimal, nil), ErrAuth, "off this clock"},
		{"garbage CBOR", reqFrame(0, []byte("GET / HTTP/1.1\r\n")), ErrEnvelope, "cbor"},
		{"garbage CBOR compressed", reqFrame(flagZstd, zstdFrame(t, []byte{0xff, 0xff, 0xff})), ErrEnvelope, "cbor"},
		{"not a map", reqFrame(0, unhex("83 01 02 03")), ErrEnvelope, "cannot unmarshal array"},
		{"truncated CBOR", reqFrame(0, minimal[:len(minimal)-1]), ErrEnvelope, "unexpected EOF"},
		{"trailing bytes", reqFrame(0, append(bytes.Clone(minimal), 0x00)), ErrEnvelope, "extraneous data"},
		{"indefinite-length map", reqFrame(0, unhex("bf 01 01 03 43 474554 ff")), ErrEnvelope, "indefinite-length"},
		{"indefinite-length byte string", reqFrame(0, unhex("a2 01 01 03 5f 41 47 42 4554 ff")), ErrEnvelope, "indefinite-length"},
		{"tag on a value", reqFrame(0, unhex("a2 01 01 03 d8 18 43 474554")), ErrEnvelope, "tag"},
		{"tag on the envelope", reqFrame(0, unhex("d9 d9f7 a2 01 01 03 43 474554")), ErrEnvelope, "tag"},
		{"duplicate key", reqFrame(0, unhex("a3 01 01 03 43 474554 03 44 504f5354")), ErrEnvelope, "duplicate map key 3"},
		{"duplicate unknown key", reqFrame(0, unhex("a4 01 01 03 43 474554 18 63 00 18 63 00")), ErrEnvelope, "duplicate map key 99"},
		{"nesting too deep", reqFrame(0, deep), ErrEnvelope, "exceeded max nested level 8"},
		{"too many headers", reqFrame(flagZstd, zstdFrame(t, mustMarshal(t, tooMany))), ErrEnvelope, "exceeded max number of elements 1024"},
		{"too many map pairs", reqFrame(0, manyPairs), ErrEnvelope, "exceeded max number of key-value pairs 64"},
		{"text string for a byte string", reqFrame(0, unhex("a2 01 01 03 63 474554")), ErrEnvelope, "cannot unmarshal UTF-8 text string"},
		{"field of three", reqFrame(0, unhex("a3 01 01 03 43 474554 08 81 83 41 61 41 62 41 63")), ErrEnvelope, "different number of elements"},
		{"negative version", reqFrame(0, unhex("a2 01 20 03 43 474554")), ErrEnvelope, "negative integer"},
		{"byte-string key", reqFrame(0, unhex("a3 01 01 03 43 474554 41 78 00")), ErrEnvelope, "map key"},
		{"unknown version", reqFrame(0, unhex("a2 01 02 03 43 474554")), ErrVersion, "unsupported protocol version 2 (this side speaks 1)"},
		{"no version", reqFrame(0, unhex("a1 03 43 474554")), ErrVersion, "version 0"},
		{"no method", reqFrame(0, unhex("a2 01 01 06 41 2f")), ErrEnvelope, "request without a method"},
		{"empty method", reqFrame(0, unhex("a2 01 01 03 40")), ErrEnvelope, "request without a method"},
		{"zstd flag on raw CBOR", reqFrame(flagZstd, minimal), ErrCompression, "zstd header"},
		{"two zstd frames", reqFrame(flagZstd, append(zstdFrame(t, minimal), zstdFrame(t, minimal)...)), ErrCompression, "bytes after the zstd frame"},
		{"bytes after the zstd frame", reqFrame(flagZstd, append(zstdFrame(t, minimal), 0)), ErrCompression, "1 bytes after the zstd frame"},
		{"truncated zstd frame", reqFrame(flagZstd, zstdFrame(t, minimal)[:10]), ErrCompression, "zstd frame truncated"},
		{"skippable zstd frame", reqFrame(flagZstd, unhex("50 2a 4d 18 01000000 00")), ErrCompression, "skippable"},
		{"reserved zstd block type", reqFrame(flagZstd, unhex("28 b5 2f fd 00 00 07 00 00")), ErrCompression, "reserved zstd block type"},
		{"zstd content size lies", reqFrame(flagZstd, lyingFCS(t, minimal)), ErrCompression, "bad compressed payload"},
		{"unknown dictionary", reqFrame(flagZstd, zstdFrame(t, minimal, zstd.WithEncoderDict(testDict(t)))), ErrCompression, "unknown dictionary 22341"},
	}
	c := newCodec(t, Config{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			_, err := c.DecodeRequest(tc.frame, &r)
			checkErr(t, err, tc.err, tc.msg)
			checkStillWorks(t, c)
		})
	}
}

// withoutFCS rewrites the header of zstd frame f to what a streaming
// encoder writes: no content size, an 8 MiB window.
func withoutFCS(t *testing.T, f []byte) []byte {
	var h zstd.Header
	if err := h.Decode(f); err != nil || h.HasCheckSum || h.DictionaryID != 0 {
		t.Fatalf("unexpected zstd header %+v (%v)", h, err)
	}
	out := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, (23 - 10) << 3}, f[h.HeaderSize:]...)
	if err := h.Decode(out); err != nil || h.HasFCS || h.WindowSize != 8<<20 {
		t.Fatalf("rewritten zstd header %+v (%v)", h, err)
	}
	return out
}

// lyingFCS is b compressed into a frame whose header claims less content
// than its blocks hold.
func lyingFCS(t *testing.T, b []byte) []byte {
	f := zstdFrame(t, bytes.Repeat(b, 100)) // > 1 KiB: single segment, 2-byte content size
	var h zstd.Header
	if err := h.Decode(f); err != nil || !h.HasFCS || !h.SingleSegment || h.HeaderSize != 7 {
		t.Fatalf("unexpected zstd header %+v (%v)", h, err)
	}
	f[5], f[6] = 0, 0 // content size 256
	return f
}

func TestHostileBoundaries(t *testing.T) {
	c := newCodec(t, Config{})
	minimal := mustMarshal(t, goldenEnvelope("request-minimal-get"))
	var r Request
	// Just inside the skew either way is accepted, so the stale and future
	// cases above fail for the timestamp alone.
	for _, d := range []time.Duration{-60 * time.Second, 60 * time.Second} {
		if _, err := c.DecodeRequest(signFrame(testKey(), 0, testNow.Add(d), minimal, nil), &r); err != nil {
			t.Fatalf("timestamp %v off: %v", d, err)
		}
	}
	// MaxFields itself is fine.
	full := &Request{Method: Bytes("GET")}
	for range MaxFields {
		full.AddHeader([]byte("a"), []byte("b"))
	}
	frame, _, err := c.AppendRequest(nil, full)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecodeRequest(frame, &r); err != nil || len(r.Header) != MaxFields {
		t.Fatalf("%d headers: %v", len(r.Header), err)
	}
	// One more is refused on the sending side too.
	full.AddHeader([]byte("a"), []byte("b"))
	if _, _, err := c.AppendRequest(nil, full); !errors.Is(err, ErrEnvelope) || !strings.Contains(err.Error(), "1025 header fields, limit 1024") {
		t.Fatalf("AppendRequest with %d headers: %v", len(full.Header), err)
	}
	// Unknown keys, integer or text, are skipped within a version.
	ext := reqFrame(0, unhex("a5 01 01 03 43 474554 18 63 82 01 a1 01 02 20 f5 63 6e6577 40"))
	if _, err := c.DecodeRequest(ext, &r); err != nil || string(r.Method) != "GET" {
		t.Fatalf("unknown keys: %v", err)
	}
	// Other encoders may leave the content size out.
	heavy := goldenEnvelope("request-header-heavy-get").(*Request)
	if _, err := c.DecodeRequest(reqFrame(flagZstd, withoutFCS(t, zstdFrame(t, mustMarshal(t, heavy)))), &r); err != nil || !sameRequest(&r, heavy) {
		t.Fatalf("zstd frame without content size: %v", err)
	}
	// Other encoders may write one segment where this one would not: a
	// window of the content size, here 9 MiB.
	big := &Request{Version: 1, Method: Bytes("POST"), Body: bytes.Repeat([]byte("wedge "), 9<<20/6)}
	if _, err := c.DecodeRequest(reqFrame(flagZstd, zstdFrame(t, mustMarshal(t, big), zstd.WithSingleSegment(true))), &r); err != nil || len(r.Body) != len(big.Body) {
		t.Fatalf("single-segment zstd frame of %d bytes: %v", len(big.Body), err)
	}
	// Other encoders may add the zstd checksum; the MAC makes it redundant,
	// not wrong.
	if _, err := c.DecodeRequest(reqFrame(flagZstd, zstdFrame(t, minimal, zstd.WithEncoderCRC(true))), &r); err != nil {
		t.Fatalf("zstd frame with checksum: %v", err)
	}
	checkStillWorks(t, c)
}

func TestTamperedFrames(t *testing.T) {
	c := newCodec(t, Config{})
	frame, _, err := c.AppendRequest(nil, goldenEnvelope("request-header-heavy-get").(*Request))
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	for n := range len(frame) {
		_, err := c.DecodeRequest(frame[:n], &r)
		if n < headerLen {
			checkErr(t, err, ErrFrame, "shorter than the 26-byte header")
		} else {
			checkErr(t, err, ErrAuth, "bad MAC")
		}
	}
	for i := range frame {
		for _, bit := range []byte{0x01, 0x80} {
			f := bytes.Clone(frame)
			f[i] ^= bit
			_, err := c.DecodeRequest(f, &r)
			switch {
			case i == offFlags && bit == flagZstd:
				checkErr(t, err, ErrAuth, "bad MAC for key 7")
			case i == offFlags:
				checkErr(t, err, ErrFrame, "unknown flags")
			case i == offKey:
				checkErr(t, err, ErrAuth, "unknown key")
			default: // timestamp, MAC, payload
				checkErr(t, err, ErrAuth, "bad MAC for key 7")
			}
		}
	}
	checkStillWorks(t, c)
}

func TestHostileResponses(t *testing.T) {
	c := newCodec(t, Config{Keys: []Key{testKey(), otherKey()}})
	req := goldenEnvelope("request-minimal-get").(*Request)
	f1, x1, err := c.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return testNow.Add(time.Millisecond) }
	_, x2, err := c.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return testNow }
	resp := mustMarshal(t, goldenEnvelope("response-minimal"))
	r1, _, err := c.AppendResponse(nil, x1, goldenEnvelope("response-hints").(*Response))
	if err != nil {
		t.Fatal(err)
	}
	withStatus := func(s string) []byte { return signFrame(testKey(), 0, testNow, unhex(s), x1.mac[:]) }
	x1other := x1
	x1other.Key = otherKey().ID
	cases := []struct {
		name  string
		frame []byte
		x     Exchange
		err   error
		msg   string
	}{
		{"replayed onto another request", r1, x2, ErrAuth, "bad MAC"},
		{"request frame as a response", f1, x1, ErrAuth, "bad MAC"},
		{"signed with the other key", signFrame(otherKey(), 0, testNow, resp, x1.mac[:]), x1, ErrAuth, "response signed with key 9, request with 7"},
		{"key of the exchange changed", r1, x1other, ErrAuth, "response signed with key 7, request with 9"},
		{"status 99", withStatus("a1 01 18 63"), x1, ErrEnvelope, "status 99"},
		{"status 600", withStatus("a1 01 19 0258"), x1, ErrEnvelope, "status 600"},
		{"no status", withStatus("a1 03 41 78"), x1, ErrEnvelope, "status 0"},
		{"hints not a map", withStatus("a2 01 18 c8 04 01"), x1, ErrEnvelope, "cannot unmarshal"},
		{"tag not a byte string", withStatus("a2 01 18 c8 04 a1 03 81 61 78"), x1, ErrEnvelope, "UTF-8 text string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			_, err := c.DecodeResponse(tc.frame, tc.x, &r)
			checkErr(t, err, tc.err, tc.msg)
			checkStillWorks(t, c)
		})
	}
	var r Request
	if _, err := c.DecodeRequest(r1, &r); !errors.Is(err, ErrAuth) {
		t.Fatalf("response frame as a request: %v", err)
	}
	if _, _, err := c.AppendResponse(nil, x1, &Response{Status: 1000}); !errors.Is(err, ErrEnvelope) {
		t.Fatalf("sending status 1000: %v", err)
	}
	if _, _, err := c.AppendResponse(nil, Exchange{Key: 3}, &Response{Status: 200}); !errors.Is(err, ErrAuth) {
		t.Fatalf("answering with a key this side lacks: %v", err)
	}
}

type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.n)]
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

const bombSize = 1 << 30

// bombs are 1 GiB of zeros in one zstd frame of about 100 KiB, with and
// without the content size in the frame header, built once per test binary
// with the streaming encoder, which leaves the size out unless told it.
var bombs = sync.OnceValues(func() (withSize, withoutSize []byte) {
	build := func(size int64) []byte {
		var buf bytes.Buffer
		e, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err)
		}
		e.ResetContentSize(&buf, size)
		if _, err := io.Copy(e, &zeroReader{bombSize}); err != nil {
			panic(err)
		}
		if err := e.Close(); err != nil {
			panic(err)
		}
		return buf.Bytes()
	}
	return build(bombSize), build(-1)
})

func TestZstdBomb(t *testing.T) {
	withSize, withoutSize := bombs()
	c := newCodec(t, Config{})
	for _, tc := range []struct {
		name    string
		payload []byte
		fcs     bool
		msg     string
	}{
		{"with content size", withSize, true, "zstd frame content size 1073741824, limit 16777216"},
		{"without content size", withoutSize, false, "zstd frame without content size may decompress to 1073741824 bytes, limit 16777216"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h zstd.Header
			if err := h.Decode(tc.payload); err != nil || h.HasFCS != tc.fcs {
				t.Fatalf("bomb header %+v: %v", h, err)
			}
			if len(tc.payload) > 256<<10 {
				t.Fatalf("bomb is %d bytes, not a bomb", len(tc.payload))
			}
			frame := reqFrame(flagZstd, tc.payload)
			var r Request
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := c.DecodeRequest(frame, &r)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			checkErr(t, err, ErrTooLarge, tc.msg)
			// TotalAlloc counts every byte allocated, freed or not.
			if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
				t.Errorf("decoding the bomb allocated %d bytes", d)
			}
			if took > 2*time.Second {
				t.Errorf("refusing the bomb took %v", took)
			}
			checkStillWorks(t, c)
		})
	}
}

func TestTooLarge(t *testing.T) {
	c := newCodec(t, Config{MaxEnvelope: MinMaxEnvelope})
	var r Request
	big := reqFrame(0, make([]byte, 4096))
	_, err := c.DecodeRequest(big, &r)
	checkErr(t, err, ErrTooLarge, "frame of 4122 bytes, limit 4096")

	// Small compressed, too big decompressed: stopped by the content size.
	body := &Request{Version: 1, Method: Bytes("POST"), Body: make([]byte, 8192)}
	_, err = c.DecodeRequest(reqFrame(flagZstd, zstdFrame(t, mustMarshal(t, body))), &r)
	checkErr(t, err, ErrTooLarge, "zstd frame content size 8205, limit 4096")

	// A window larger than the limit cannot be filled within it.
	nofcs := withoutFCS(t, zstdFrame(t, mustMarshal(t, goldenEnvelope("request-minimal-get"))))
	_, err = c.DecodeRequest(reqFrame(flagZstd, nofcs), &r)
	checkErr(t, err, ErrTooLarge, "zstd window 8388608, limit 4096")

	// Without a content size, the block headers bound it: a 4 KiB window
	// and three RLE blocks of 2 KiB.
	rle := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, (12 - 10) << 3}
	for i := range 3 {
		bh := 2048<<3 | 1<<1 // RLE
		if i == 2 {
			bh |= 1 // last
		}
		rle = append(rle, byte(bh), byte(bh>>8), byte(bh>>16), 'a')
	}
	_, err = c.DecodeRequest(reqFrame(flagZstd, rle), &r)
	checkErr(t, err, ErrTooLarge, "zstd frame without content size may decompress to 6144 bytes, limit 4096")
	_, err = c.DecodeRequest(reqFrame(flagZstd, rle[:len(rle)-4]), &r) // two blocks: within the bound
	checkErr(t, err, ErrCompression, "zstd frame truncated")
	rle[len(rle)-8] |= 1 // make the second block the last
	_, err = c.DecodeRequest(reqFrame(flagZstd, rle[:len(rle)-4]), &r)
	checkErr(t, err, ErrEnvelope, "cbor")

	// The smallest envelopes go without a content size; their 1 KiB window
	// keeps them within the bound of the smallest MaxEnvelope.
	small := goldenEnvelope("request-minimal-get").(*Request)
	frame, _, err := c.AppendRequest(nil, small)
	if err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(frame[headerLen:]); err != nil || h.HasFCS || h.WindowSize != 1<<10 {
		t.Fatalf("small frame header %+v (%v): README.md says no content size, 1 KiB window", h, err)
	}
	if _, err := c.DecodeRequest(frame, &r); err != nil || !sameRequest(&r, small) {
		t.Fatalf("small frame at MaxEnvelope %d: %v", MinMaxEnvelope, err)
	}

	// The sender refuses what the receiver would.
	_, _, err = c.AppendRequest(nil, body)
	checkErr(t, err, ErrTooLarge, "envelope of 8205 bytes, limit 4096")
	noise := make([]byte, 4000)
	for i := range noise {
		noise[i] = byte(i*7919 + i>>3*31)
	}
	body.Body = noise
	_, _, err = c.AppendRequest(nil, body)
	if err != nil && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("incompressible envelope near the limit: %v", err)
	}
	checkStillWorks(t, c)
}
