package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// streamed seals a streamed request with body (split into writes of step
// bytes) and returns the HTTP body and the sender's Exchange after it.
func streamed(t testing.TB, c *Codec, body []byte, step int) ([]byte, Exchange) {
	t.Helper()
	head, x, err := c.AppendRequestHead(nil, &Request{Method: Bytes("PUT"), Path: Bytes("/up")})
	if err != nil {
		t.Fatal(err)
	}
	out := AppendHead(nil, head)
	var buf bytes.Buffer
	w, err := c.NewBodyWriter(&buf, &x)
	if err != nil {
		t.Fatal(err)
	}
	for p := body; len(p) > 0; p = p[min(step, len(p)):] {
		if _, err := w.Write(p[:min(step, len(p))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return append(out, buf.Bytes()...), x
}

// receive opens a streamed request and reads its body.
func receive(c *Codec, in []byte) ([]byte, Exchange, error) {
	r := bytes.NewReader(in)
	head, err := c.ReadHead(r, nil)
	if err != nil {
		return nil, Exchange{}, err
	}
	var req Request
	x, err := c.DecodeRequestHead(head, &req)
	if err != nil {
		return nil, x, err
	}
	br, err := c.NewBodyReader(r, &x)
	if err != nil {
		return nil, x, err
	}
	defer br.Close()
	body, err := io.ReadAll(br)
	return body, x, err
}

func TestStreamRoundTrip(t *testing.T) {
	c := newCodec(t, Config{})
	body := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320,000 bytes: several full chunks
	in, sent := streamed(t, c, body, 100000)
	got, x, err := receive(c, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("body: got %d bytes, want %d", len(got), len(body))
	}
	if x.mac != sent.mac {
		t.Fatal("receiver's chain ends elsewhere than the sender's")
	}

	// The answer, streamed too, is bound to the end of the request body.
	head, n, err := c.AppendResponseHead(nil, &x, &Response{Status: 200})
	if err != nil || n == 0 {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := c.NewBodyWriter(&buf, &x)
	w.Write([]byte("done"))
	w.Close()
	var resp Response
	if _, err := c.DecodeResponseHead(head, &sent, &resp); err != nil {
		t.Fatal(err)
	}
	br, _ := c.NewBodyReader(&buf, &sent)
	if b, err := io.ReadAll(br); err != nil || string(b) != "done" {
		t.Fatalf("response body %q, %v", b, err)
	}

	// A response head answers only the request body it was sealed after.
	_, other := streamed(t, c, []byte("another body"), 10)
	if _, err := c.DecodeResponseHead(head, &other, &resp); !errors.Is(err, ErrAuth) {
		t.Fatalf("response head for another request body: %v, want ErrAuth", err)
	}
}

// TestStreamRefusesAltered: every way of changing a streamed body in transit
// is refused with a clear error, never read as a shorter or other body.
func TestStreamRefusesAltered(t *testing.T) {
	c := newCodec(t, Config{})
	body := bytes.Repeat([]byte{'x'}, 3*10)
	in, _ := streamed(t, c, body, 10) // three data chunks of 10 bytes, then the end
	headLen := 4 + int(in[0])<<24 | int(in[1])<<16 | int(in[2])<<8 | int(in[3])
	chunk := func(i int) (int, int) { // offsets of chunk i
		start := headLen + i*(chunkHeadLen+10)
		return start, start + chunkHeadLen + 10
	}
	cases := []struct {
		name string
		edit func(b []byte) []byte
		want error
		text string
	}{
		{"tampered data", func(b []byte) []byte { s, _ := chunk(1); b[s+chunkHeadLen] ^= 1; return b }, ErrAuth, "chunk 1: bad MAC"},
		{"tampered length", func(b []byte) []byte { s, _ := chunk(0); b[s+3] = 9; return b }, ErrAuth, "chunk 0: bad MAC"},
		{"reordered", func(b []byte) []byte {
			s0, e0 := chunk(0)
			s1, e1 := chunk(1)
			c0, c1 := bytes.Clone(b[s0:e0]), bytes.Clone(b[s1:e1])
			copy(b[s0:], c1)
			copy(b[s0+len(c1):], c0)
			return b
		}, ErrAuth, "chunk 0: bad MAC"},
		{"dropped chunk", func(b []byte) []byte { s, e := chunk(1); return append(b[:s], b[e:]...) }, ErrAuth, "chunk 1: bad MAC"},
		{"no end chunk", func(b []byte) []byte { _, e := chunk(2); return b[:e] }, ErrFrame, "without its end chunk"},
		{"cut in a chunk", func(b []byte) []byte { s, _ := chunk(2); return b[:s+5] }, ErrFrame, "chunk 2: unexpected EOF"},
		{"unknown type", func(b []byte) []byte { s, _ := chunk(0); b[s] = 7; return b }, ErrFrame, "unknown type 7"},
		{"oversized", func(b []byte) []byte { s, _ := chunk(0); b[s+1] = 0xff; return b }, ErrFrame, "want 1 to 65536"},
		{"empty data chunk", func(b []byte) []byte { s, _ := chunk(0); b[s+3] = 0; return b }, ErrFrame, "0 bytes of data"},
		{"head cut", func(b []byte) []byte { return b[:headLen-1] }, ErrFrame, "stream head"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := receive(c, tc.edit(bytes.Clone(in)))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err %v, want %v containing %q", err, tc.want, tc.text)
			}
			if len(got) > 0 && !bytes.Equal(got, body[:len(got)]) {
				t.Fatalf("passed on altered bytes %q", got)
			}
		})
	}

	t.Run("spliced from another exchange", func(t *testing.T) {
		// The same body in another exchange (sealed a millisecond later).
		c.now = func() time.Time { return testNow.Add(time.Millisecond) }
		defer func() { c.now = func() time.Time { return testNow } }()
		other, _ := streamed(t, c, body, 10)
		b := bytes.Clone(in)
		s, e := chunk(1)
		copy(b[s:e], other[s:e])
		if _, _, err := receive(c, b); !errors.Is(err, ErrAuth) {
			t.Fatalf("err %v, want ErrAuth", err)
		}
	})
}

// TestStreamHeadIsNotWhole: a head is never read as a whole envelope (its
// body dropped) nor a whole envelope as a head.
func TestStreamHeadIsNotWhole(t *testing.T) {
	c := newCodec(t, Config{})
	head, _, err := c.AppendRequestHead(nil, &Request{Method: Bytes("POST")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecodeRequest(head, new(Request)); !errors.Is(err, ErrFrame) {
		t.Fatalf("head as a whole request: %v, want ErrFrame", err)
	}
	whole, x, err := c.AppendRequest(nil, &Request{Method: Bytes("POST")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecodeRequestHead(whole, new(Request)); !errors.Is(err, ErrFrame) {
		t.Fatalf("whole request as a head: %v, want ErrFrame", err)
	}
	rhead, _, err := c.AppendResponseHead(nil, &x, &Response{Status: 200})
	if err != nil {
		t.Fatal(err)
	}
	x2, _ := c.DecodeRequest(whole, new(Request))
	if _, err := c.DecodeResponse(rhead, x2, new(Response)); !errors.Is(err, ErrFrame) {
		t.Fatalf("response head as a whole response: %v, want ErrFrame", err)
	}
	if _, _, err := c.AppendRequestHead(nil, &Request{Method: Bytes("POST"), Body: Bytes("b")}); !errors.Is(err, ErrEnvelope) {
		t.Fatalf("head with a body: %v, want ErrEnvelope", err)
	}
	big := AppendHead(nil, make([]byte, 20<<20))
	if _, err := c.ReadHead(bytes.NewReader(big[:4]), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("head past MaxEnvelope: %v, want ErrTooLarge", err)
	}
}

// FuzzBodyReader feeds chunk sequences to a body reader: it never panics,
// and whatever it returns before an error is a prefix of data a key holder
// sent (here: nothing, since the fuzzer cannot forge MACs, unless the
// input is the seed's own chunks).
func FuzzBodyReader(f *testing.F) {
	c := newCodec(f, Config{})
	in, _ := streamed(f, c, []byte("hello, streamed world"), 5)
	f.Add(in)
	f.Add(in[:len(in)-3])
	f.Add([]byte{0, 0, 0, 1})
	f.Add(append(bytes.Clone(in[:30]), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := receive(c, data)
		if err == nil && !bytes.Equal(got, []byte("hello, streamed world")) {
			t.Fatalf("accepted a forged body %q", got)
		}
		if err != nil && !errors.Is(err, ErrFrame) && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrTooLarge) &&
			!errors.Is(err, ErrEnvelope) && !errors.Is(err, ErrCompression) && !errors.Is(err, ErrVersion) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
	})
}

// BenchmarkBodyStream seals and checks a body in chunks: the CPU a
// streamed body costs each side per byte (two HMAC-SHA256 passes).
func BenchmarkBodyStream(b *testing.B) {
	c := newCodec(b, Config{})
	_, x, err := c.AppendRequestHead(nil, &Request{Method: Bytes("PUT")})
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte{'x'}, MaxChunk)
	var buf bytes.Buffer
	b.SetBytes(MaxChunk)
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		sx, rx := x, x
		w, _ := c.NewBodyWriter(&buf, &sx)
		w.Write(data)
		w.Close()
		r, _ := c.NewBodyReader(&buf, &rx)
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// TestReadHeadClaim: a head's length is a claim until the frame is
// authenticated: a peer that claims the largest head and sends a few bytes
// makes ReadHead hold about what it sent, and the cut-off head is an
// ErrFrame.
func TestReadHeadClaim(t *testing.T) {
	c := newCodec(t, Config{})
	in := binary.BigEndian.AppendUint32(nil, uint32(c.MaxEnvelope()))
	in = append(in, make([]byte, 100)...)
	buf, err := c.ReadHead(bytes.NewReader(in), nil)
	if !errors.Is(err, ErrFrame) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut-off head: %v, want ErrFrame and io.ErrUnexpectedEOF", err)
	}
	if cap(buf) > 64<<10 {
		t.Fatalf("cut-off head of 100 bytes held %d bytes", cap(buf))
	}
}

// FuzzReadHead: ReadHead never panics, and a head it returns is the bytes
// after the length prefix, as long as it says.
func FuzzReadHead(f *testing.F) {
	c := newCodec(f, Config{})
	f.Add(AppendHead(nil, []byte("head")))
	f.Add([]byte{0, 0, 0, 9, 1, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		head, err := c.ReadHead(bytes.NewReader(in), nil)
		if err != nil {
			return
		}
		if n := binary.BigEndian.Uint32(in); int64(n) != int64(len(head)) || !bytes.Equal(head, in[4:4+n]) {
			t.Fatalf("head %x from input %x", head, in)
		}
	})
}
