package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
	"github.com/valyala/fasthttp"
)

// sign builds a request frame around an arbitrary payload, following the
// frame layout in origin/wire/README.md: what an attacker who holds the key,
// or a buggy edge, could send. It lets hostile payloads get past the MAC to
// the decompressor and the CBOR decoder.
func sign(k wire.Key, flags byte, payload []byte) []byte {
	f := make([]byte, 26, 26+len(payload))
	f[0], f[1] = flags, k.ID
	binary.BigEndian.PutUint64(f[2:], uint64(time.Now().UnixMilli()))
	f = append(f, payload...)
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte("wedge/1 request\x00"))
	m.Write(f[:10])
	m.Write(f[26:])
	copy(f[10:26], m.Sum(nil))
	return f
}

// post sends a raw body to the origin the way the edge would.
func post(tb testing.TB, addr string, body []byte) (int, string) {
	tb.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.Path)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/wedge")
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		tb.Fatalf("origin did not answer: %v", err)
	}
	return resp.StatusCode(), string(resp.Body())
}

func cborOf(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := wire.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func zstdOf(tb testing.TB, b []byte) []byte {
	tb.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// TestHostileFrames sends the origin service what a broken or malicious
// peer would, and wants each refused with its own status and a readable
// reason, counted by kind, with the service answering a good exchange
// after each.
func TestHostileFrames(t *testing.T) {
	const maxFrame = 1 << 20
	s := newStack(t, stackOpts{maxFrame: maxFrame,
		proxy: func() (c originProxy) { c.Upstreams = []string{echoUpstream(t)}; return }()})
	good := cborOf(t, &wire.Request{Version: wire.Version, Method: wire.Bytes("GET"), Path: wire.Bytes("/")})
	valid := sign(origintest.Key, 1, zstdOf(t, good))
	wrongKey := wire.Key{ID: origintest.Key.ID, Secret: bytes.Repeat([]byte{1}, 32)}
	unknownKey := wire.Key{ID: 99, Secret: origintest.Key.Secret}
	tampered := bytes.Clone(valid)
	tampered[len(tampered)-1] ^= 1
	unsigned := bytes.Clone(valid)
	clear(unsigned[10:26])
	v2 := cborOf(t, &wire.Request{Method: wire.Bytes("GET"), Path: wire.Bytes("/")})
	v2[2] = 2 // {1: 1, ...} -> {1: 2, ...}: the version is the first key
	bomb := zstdOf(t, make([]byte, 64<<20))
	deep := bytes.Repeat([]byte{0x81}, 200) // [[[[...
	cases := []struct {
		name   string
		body   []byte
		status int
		reason string
		kind   string
	}{
		{"empty", nil, 400, "malformed frame", "frame"},
		{"truncated header", valid[:20], 400, "malformed frame", "frame"},
		{"unknown flags", sign(origintest.Key, 0x80, good), 400, "unknown flags", "frame"},
		{"missing signature", unsigned, 401, "bad MAC", "auth"},
		{"wrong key", sign(wrongKey, 1, zstdOf(t, good)), 401, "bad MAC", "auth"},
		{"unknown key", sign(unknownKey, 1, zstdOf(t, good)), 401, "unknown key", "auth"},
		{"tampered payload", tampered, 401, "bad MAC", "auth"},
		{"truncated payload", valid[:len(valid)-3], 401, "bad MAC", "auth"},
		{"garbage zstd", sign(origintest.Key, 1, []byte("definitely not zstd")), 400, "compressed payload", "compression"},
		{"truncated zstd", sign(origintest.Key, 1, zstdOf(t, good)[:8]), 400, "compressed payload", "compression"},
		{"garbage cbor", sign(origintest.Key, 0, []byte{0xff, 0xfe, 0x00}), 400, "malformed envelope", "envelope"},
		{"truncated cbor", sign(origintest.Key, 0, good[:len(good)-2]), 400, "malformed envelope", "envelope"},
		{"cbor nested too deep", sign(origintest.Key, 0, deep), 400, "malformed envelope", "envelope"},
		{"cbor not a map", sign(origintest.Key, 0, []byte{0x63, 'G', 'E', 'T'}), 400, "malformed envelope", "envelope"},
		{"unknown version", sign(origintest.Key, 1, zstdOf(t, v2)), 400, "unsupported protocol version 2", "version"},
		{"zstd bomb", sign(origintest.Key, 1, bomb), 413, "too large", "too_large"},
		{"oversized frame", sign(origintest.Key, 0, make([]byte, 2*maxFrame)), 413, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := wasmtest.Metric(t, s.originReg, "wedge_origin_errors_total", map[string]string{"kind": c.kind})
			auth := wasmtest.Metric(t, s.originReg, "wedge_origin_auth_failures_total", nil)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap := ms.HeapAlloc
			status, body := post(t, s.originAddr, c.body)
			if status != c.status || !strings.Contains(body, c.reason) {
				t.Errorf("got %d %q, want %d with %q", status, body, c.status, c.reason)
			}
			if c.kind != "" {
				if got := wasmtest.Metric(t, s.originReg, "wedge_origin_errors_total", map[string]string{"kind": c.kind}); got != before+1 {
					t.Errorf("errors_total{kind=%q} went %v -> %v", c.kind, before, got)
				}
			}
			if got := wasmtest.Metric(t, s.originReg, "wedge_origin_auth_failures_total", nil); (c.status == 401) != (got == auth+1) {
				t.Errorf("auth_failures_total went %v -> %v for a %d", auth, got, c.status)
			}
			runtime.ReadMemStats(&ms)
			if grew := int64(ms.HeapAlloc) - int64(heap); grew > 64<<20 {
				t.Errorf("heap grew %d MiB on one frame", grew>>20)
			}
			resp := s.do(t, 5*time.Second, newRequest("GET", "/after"))
			if resp.Status != 200 {
				t.Fatalf("after %s the origin answers %d %q", c.name, resp.Status, resp.Error)
			}
		})
	}
}

// TestHostileTransport covers what is not a frame at all.
func TestHostileTransport(t *testing.T) {
	s := newStack(t, stackOpts{proxy: func() (c originProxy) { c.Upstreams = []string{echoUpstream(t)}; return }()})
	for _, c := range []struct {
		method, path string
		status       int
	}{{"GET", wire.Path, 405}, {"POST", "/", 404}, {"POST", "/_wedge/2", 404}} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + s.originAddr + c.path)
		req.Header.SetMethod(c.method)
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode(), c.status)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	// Malformed HTTP gets a 400 from the server and a closed connection,
	// and the next edge request is served.
	conn := dialRaw(t, s.originAddr)
	conn.Write([]byte("POST /_wedge/1 HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"))
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 400") {
		t.Errorf("malformed HTTP answered %q", buf[:n])
	}
	if resp := s.do(t, 5*time.Second, newRequest("GET", "/")); resp.Status != 200 {
		t.Fatalf("then %d", resp.Status)
	}
}
