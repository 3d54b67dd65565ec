package origin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
)

// streamBody seals a streamed request with body, in chunks of step bytes,
// as an edge sends it: the HTTP body and the edge's exchange after it.
func streamBody(t *testing.T, c *wire.Codec, body []byte, step int) ([]byte, wire.Exchange) {
	t.Helper()
	head, x, err := c.AppendRequestHead(nil, &wire.Request{Method: wire.Bytes("PUT"), Path: wire.Bytes("/up")})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.Write(wire.AppendHead(nil, head))
	w, err := c.NewBodyWriter(&out, &x)
	if err != nil {
		t.Fatal(err)
	}
	for p := body; len(p) > 0; p = p[min(step, len(p)):] {
		w.Write(p[:min(step, len(p))])
	}
	w.Close()
	return out.Bytes(), x
}

func postStream(t *testing.T, addr string, body []byte) (int, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.Path)
	req.Header.SetMethod("POST")
	req.Header.SetContentType(wire.StreamContentType)
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), bytes.Clone(resp.Body())
}

// TestServerStreamedRequest: a streamed request body reaches the handler
// whole, and the answer is bound to the end of the body; one altered in
// transit (a chunk tampered with, dropped, reordered, or the end cut off)
// is refused with the error saying which chunk and why, and never reaches
// the handler.
func TestServerStreamedRequest(t *testing.T) {
	ran := make(chan string, 16)
	h := HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		ran <- string(req.Path)
		resp.Body = fmt.Appendf(resp.Body, "%d %x", len(req.Body), sha256.Sum256(req.Body))
	})
	o := startOrigin(t, h, nil)
	body := bytes.Repeat([]byte("streamed "), 30000) // 270,000 bytes: 5 chunks of 64 KiB
	in, x := streamBody(t, o.codec, body, 1<<20)

	st, out := postStream(t, o.addr, in)
	if st != 200 {
		t.Fatalf("intact: %d %q", st, out)
	}
	var resp wire.Response
	if _, err := o.codec.DecodeResponse(out, x, &resp); err != nil {
		t.Fatalf("the answer does not verify against the end of the body: %v", err)
	}
	if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); string(resp.Body) != want {
		t.Fatalf("handler saw %q, want %q", resp.Body, want)
	}
	<-ran

	headLen := 4 + int(binary.BigEndian.Uint32(in))
	chunk := func(i int) (int, int) { // offsets of data chunk i (64 KiB each)
		s := headLen + i*(20+wire.MaxChunk)
		return s, s + 20 + wire.MaxChunk
	}
	cases := []struct {
		name   string
		edit   func([]byte) []byte
		status int
		msg    string
	}{
		{"tampered", func(b []byte) []byte { s, _ := chunk(2); b[s+100] ^= 1; return b }, 401, "chunk 2: bad MAC"},
		{"dropped", func(b []byte) []byte { s, e := chunk(1); return append(b[:s], b[e:]...) }, 401, "chunk 1: bad MAC"},
		{"reordered", func(b []byte) []byte {
			s0, e0 := chunk(0)
			_, e1 := chunk(1)
			c0 := bytes.Clone(b[s0:e0])
			copy(b[s0:], b[e0:e1])
			copy(b[s0+(e1-e0):], c0)
			return b
		}, 401, "chunk 0: bad MAC"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-20] }, 400, "without its end chunk"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, out := postStream(t, o.addr, tc.edit(bytes.Clone(in)))
			if st != tc.status || !strings.Contains(string(out), tc.msg) {
				t.Fatalf("got %d %q, want %d with %q", st, out, tc.status, tc.msg)
			}
			select {
			case p := <-ran:
				t.Fatalf("the handler ran (%s) on an altered body", p)
			default:
			}
		})
	}
}
