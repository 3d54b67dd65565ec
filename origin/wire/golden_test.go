package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the Go values in the tests")

// goldenEnvelopes are the envelope vectors: each name is a file in
// testdata/golden holding the value's CBOR in hex.
var goldenEnvelopes = []struct {
	name string
	v    any
}{
	{"request-minimal-get", &Request{Version: 1, Method: Bytes("GET"), Path: Bytes("/")}},
	{"request-header-heavy-get", &Request{
		Version: 1, ID: Bytes("01JGZ5T3K9"), Method: Bytes("GET"), Scheme: Bytes("https"),
		Host: Bytes("shop.example.com"), Path: Bytes("/products/42"), Query: Bytes("ref=home&utm_source=mail"),
		Header: []Field{
			{Name: Bytes("host"), Value: Bytes("shop.example.com")},
			{Name: Bytes("user-agent"), Value: Bytes("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")},
			{Name: Bytes("accept"), Value: Bytes("text/html")},
			{Name: Bytes("accept"), Value: Bytes("application/xhtml+xml;q=0.9")},
			{Name: Bytes("accept-language"), Value: Bytes("de-DE,de;q=0.9,en;q=0.8")},
			{Name: Bytes("cookie"), Value: Bytes("session=9f2c1e")},
			{Name: Bytes("cookie"), Value: Bytes("theme=dark")},
			{Name: Bytes("if-none-match"), Value: Bytes(`W/"5e1f"`)},
		},
		Client: Bytes("203.0.113.9"), POP: Bytes("fra1"), Region: Bytes("eu-central"), Timeout: 2_500_000,
	}},
	{"request-post-binary-body", &Request{
		Version: 1, ID: Bytes("01JGZ5T3KA"), Method: Bytes("POST"), Scheme: Bytes("https"),
		Host: Bytes("api.example.com"), Path: Bytes("/v1/upload"),
		Header: []Field{
			{Name: Bytes("content-type"), Value: Bytes("application/octet-stream")},
			{Name: Bytes("content-length"), Value: Bytes("38")},
		},
		// Every byte class: NUL, high bytes, invalid UTF-8.
		Body:   Bytes("\x00\x01\x02\x03\xff\xfe\xfd\xfc\x80\x81\xc0\xc1\xf5\xf8\x7f\x20binary\r\n\x00body\xde\xad\xbe\xef\x00\x00\x00\x00\x01"),
		Client: Bytes("2001:db8::17"), Timeout: 30_000_000,
	}},
	{"request-forwarded-values", &Request{
		Version: 1, Method: Bytes("GET"), Scheme: Bytes("https"), Host: Bytes("api.example.com"),
		Path:   Bytes("/v1/me"),
		Header: []Field{{Name: Bytes("authorization"), Value: Bytes("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")}},
		Client: Bytes("198.51.100.4"),
		Values: []Field{
			{Name: Bytes("Identity-Sub"), Value: Bytes("user-1234")},
			{Name: Bytes("Identity-Scopes"), Value: Bytes("read write")},
			{Name: Bytes("Identity-Scopes"), Value: Bytes("admin")},
		},
		Timeout: 1_000_000,
	}},
	{"response-minimal", &Response{Status: 204}},
	{"response-hints", &Response{
		Status: 200,
		Header: []Field{
			{Name: Bytes("content-type"), Value: Bytes("application/json")},
			{Name: Bytes("etag"), Value: Bytes(`"v7"`)},
			{Name: Bytes("set-cookie"), Value: Bytes("a=1; Path=/")},
			{Name: Bytes("set-cookie"), Value: Bytes("b=2; Path=/")},
		},
		Body:  Bytes(`{"id":42,"name":"widget"}`),
		Cache: Hints{TTL: 300, Stale: 60, Tags: []Bytes{Bytes("product-42"), Bytes("catalog")}, Shared: 3},
	}},
	{"response-early-hints", &Response{
		Status: 200,
		Header: []Field{{Name: Bytes("content-type"), Value: Bytes("text/html")}},
		Body:   Bytes("<!doctype html>"),
		Interim: []Interim{
			{Status: 102},
			{Status: 103, Header: []Field{
				{Name: Bytes("link"), Value: Bytes("</style.css>; rel=preload; as=style")},
				{Name: Bytes("link"), Value: Bytes("</app.js>; rel=preload; as=script")},
			}},
		},
	}},
	{"response-origin-504", &Response{
		Status: 504,
		Header: []Field{{Name: Bytes("content-type"), Value: Bytes("text/plain; charset=utf-8")}},
		Body:   Bytes("upstream timeout\n"),
		Error:  Bytes("upstream timeout"),
	}},
	{"response-origin-unavailable", &Response{
		Status: 503,
		Header: []Field{{Name: Bytes("content-type"), Value: Bytes("text/plain; charset=utf-8")}},
		Body:   Bytes("no healthy upstream\n"),
		Error:  Bytes("no healthy upstream"),
		Scope:  ScopeOrigin,
	}},
}

// goldenFile renders a vector the way testdata/golden holds it: comment
// lines, then the bytes in hex, 16 to a line. Readable diffs are the point.
func goldenFile(comments []string, b []byte) []byte {
	var s strings.Builder
	for _, c := range comments {
		s.WriteString("# " + c + "\n")
	}
	for i := 0; i < len(b); i += 16 {
		line := b[i:min(i+16, len(b))]
		for j, c := range line {
			if j > 0 {
				s.WriteByte(' ')
			}
			fmt.Fprintf(&s, "%02x", c)
		}
		s.WriteByte('\n')
	}
	return []byte(s.String())
}

// parseHex reads hex text, skipping '#' comment lines and white space.
func parseHex(tb testing.TB, text []byte) []byte {
	tb.Helper()
	var h strings.Builder
	for line := range strings.Lines(string(text)) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		h.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(h.String())
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func diag(tb testing.TB, b []byte) string {
	tb.Helper()
	dm, err := cbor.DiagOptions{ByteStringText: true}.DiagMode()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := dm.Diagnose(b)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// checkGolden compares want with testdata/golden/name, or writes it under
// -update, and returns the bytes the file holds.
func checkGolden(t *testing.T, name string, want []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".hex")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the code makes now:\n--- file\n%s--- now\n%s", path, got, want)
	}
	return parseHex(t, got)
}

func TestGoldenEnvelopes(t *testing.T) {
	for _, g := range goldenEnvelopes {
		t.Run(g.name, func(t *testing.T) {
			b := mustMarshal(t, g.v)
			file := checkGolden(t, g.name, goldenFile([]string{
				g.name + ": wire.Marshal of the value in golden_test.go",
				diag(t, b),
			}, b))
			if !bytes.Equal(file, b) {
				t.Fatalf("file holds %x, Marshal gives %x", file, b)
			}
			switch want := g.v.(type) {
			case *Request:
				var got Request
				if err := Unmarshal(file, &got); err != nil {
					t.Fatal(err)
				}
				if !sameRequest(&got, want) {
					t.Fatalf("decoded\n%+v\nwant\n%+v", got, *want)
				}
			case *Response:
				var got Response
				if err := Unmarshal(file, &got); err != nil {
					t.Fatal(err)
				}
				if !sameResponse(&got, want) {
					t.Fatalf("decoded\n%+v\nwant\n%+v", got, *want)
				}
			}
		})
	}
}

func goldenEnvelope(name string) any {
	for _, g := range goldenEnvelopes {
		if g.name == name {
			return g.v
		}
	}
	panic("no golden envelope " + name)
}

// TestGoldenFrames pins whole frames: the fixed key and clock make the
// header and MAC fixed, and klauspost/compress's zstd output is fixed for a
// given version and level. If a zstd upgrade changes the compressed bytes,
// this test says so; the frames stay decodable either way, which the second
// half checks.
func TestGoldenFrames(t *testing.T) {
	c := newCodec(t, Config{})
	req := goldenEnvelope("request-header-heavy-get").(*Request)
	resp := goldenEnvelope("response-hints").(*Response)

	reqFrame, x, err := c.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	respFrame, _, err := c.AppendResponse(nil, x, resp)
	if err != nil {
		t.Fatal(err)
	}
	// The same frames built independently, from README.md's description.
	if want := signFrame(testKey(), flagZstd, testNow, zstdFrame(t, mustMarshal(t, req)), nil); !bytes.Equal(reqFrame, want) {
		t.Fatalf("request frame\n%x\nbuilt from the spec\n%x", reqFrame, want)
	}
	if want := signFrame(testKey(), flagZstd, testNow, zstdFrame(t, mustMarshal(t, resp)), reqFrame[offMAC:headerLen]); !bytes.Equal(respFrame, want) {
		t.Fatalf("response frame\n%x\nbuilt from the spec\n%x", respFrame, want)
	}
	rawFrame := signFrame(testKey(), 0, testNow, mustMarshal(t, goldenEnvelope("request-minimal-get")), nil)
	// A tunnel's handshake: a request frame with the tunnel flag.
	tunnelFrame := signFrame(testKey(), flagTunnel, testNow, mustMarshal(t, goldenEnvelope("request-minimal-get")), nil)
	if got, _, err := newCodec(t, Config{MinCompress: 1 << 20}).AppendTunnelRequest(nil, goldenEnvelope("request-minimal-get").(*Request)); err != nil ||
		!bytes.Equal(got, tunnelFrame) {
		t.Fatalf("handshake frame\n%x\nbuilt from the spec\n%x (%v)", got, tunnelFrame, err)
	}

	frames := []struct {
		name  string
		frame []byte
		about string
	}{
		{"frame-request-zstd", reqFrame, "request-header-heavy-get sealed by a Codec"},
		{"frame-response-zstd", respFrame, "response-hints answering frame-request-zstd"},
		{"frame-request-raw", rawFrame, "request-minimal-get, uncompressed (flags 0)"},
		{"frame-tunnel-raw", tunnelFrame, "request-minimal-get as a tunnel's handshake, uncompressed (flags 04)"},
	}
	files := map[string][]byte{}
	for _, f := range frames {
		files[f.name] = checkGolden(t, f.name, goldenFile([]string{
			f.name + ": " + f.about,
			fmt.Sprintf("key %s, clock %s", testKey().Text(), testNow.UTC().Format("2006-01-02T15:04:05.000Z")),
			fmt.Sprintf("flags %02x | key id %02x | timestamp %x | mac %x | payload %d bytes",
				f.frame[0], f.frame[1], f.frame[offTime:offMAC], f.frame[offMAC:headerLen], len(f.frame)-headerLen),
		}, f.frame))
	}

	// Whatever the encoder does now, the stored frames must open.
	var gotReq Request
	gx, err := c.DecodeRequest(files["frame-request-zstd"], &gotReq)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRequest(&gotReq, req) {
		t.Fatalf("decoded %+v", gotReq)
	}
	var gotResp Response
	if _, err := c.DecodeResponse(files["frame-response-zstd"], gx, &gotResp); err != nil {
		t.Fatal(err)
	}
	if !sameResponse(&gotResp, resp) {
		t.Fatalf("decoded %+v", gotResp)
	}
	if _, err := c.DecodeRequest(files["frame-request-raw"], &gotReq); err != nil {
		t.Fatal(err)
	}
	if !sameRequest(&gotReq, goldenEnvelope("request-minimal-get").(*Request)) {
		t.Fatalf("decoded %+v", gotReq)
	}
	if _, err := c.DecodeTunnelRequest(files["frame-tunnel-raw"], &gotReq); err != nil {
		t.Fatal(err)
	}
	if !sameRequest(&gotReq, goldenEnvelope("request-minimal-get").(*Request)) {
		t.Fatalf("decoded %+v", gotReq)
	}
	if _, err := c.DecodeRequest(files["frame-tunnel-raw"], &gotReq); !errors.Is(err, ErrAuth) {
		t.Fatalf("handshake frame opened as a request: %v", err)
	}
	if _, err := c.DecodeTunnelRequest(files["frame-request-raw"], &gotReq); !errors.Is(err, ErrAuth) {
		t.Fatalf("request frame opened as a handshake: %v", err)
	}
}
