package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The fixed key, second key and clock every test and golden vector uses.
func testKey() Key  { return Key{ID: 7, Secret: bytes.Repeat([]byte{0x42}, 32)} }
func otherKey() Key { return Key{ID: 9, Secret: bytes.Repeat([]byte{0x17}, 32)} }

var testNow = time.UnixMilli(1767225600000) // 2026-01-01T00:00:00Z

// newCodec builds a Codec on the fixed clock (unless cfg.Keys is empty, it
// keeps cfg's keys) and closes it when the test ends.
func newCodec(tb testing.TB, cfg Config) *Codec {
	tb.Helper()
	if cfg.Keys == nil {
		cfg.Keys = []Key{testKey()}
	}
	c, err := NewCodec(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c.now = func() time.Time { return testNow }
	tb.Cleanup(c.Close)
	return c
}

// signFrame builds a frame the way README.md describes it, independently of
// Codec.seal: header, then payload as given, then the MAC over both. bind is
// the MAC of the request a response answers; nil makes a request frame.
func signFrame(k Key, flags byte, ts time.Time, payload, bind []byte) []byte {
	f := make([]byte, 26, 26+len(payload))
	f[0] = flags
	f[1] = k.ID
	binary.BigEndian.PutUint64(f[2:10], uint64(ts.UnixMilli()))
	f = append(f, payload...)
	m := hmac.New(sha256.New, k.Secret)
	if bind == nil {
		m.Write([]byte("wedge/1 request\x00"))
	} else {
		m.Write([]byte("wedge/1 response"))
		m.Write(bind)
	}
	m.Write(f[:10])
	m.Write(f[26:])
	copy(f[10:26], m.Sum(nil))
	return f
}

// zstdFrame compresses b the way a Codec with the default level does (one
// frame, no checksum).
func zstdFrame(tb testing.TB, b []byte, opts ...zstd.EOption) []byte {
	tb.Helper()
	e, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedFastest)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	return e.EncodeAll(b, nil)
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// normRequest and normResponse copy an envelope with empty slices made nil:
// a decoder reusing buffers leaves empty non-nil slices where a literal has
// nil, and the two mean the same envelope.
func normRequest(r *Request) Request {
	n := *r
	n.ID, n.Method, n.Scheme, n.Host = nb(n.ID), nb(n.Method), nb(n.Scheme), nb(n.Host)
	n.Path, n.Query, n.Body, n.Client = nb(n.Path), nb(n.Query), nb(n.Body), nb(n.Client)
	n.POP, n.Region, n.Peer = nb(n.POP), nb(n.Region), nb(n.Peer)
	n.Header, n.Values = nf(n.Header), nf(n.Values)
	return n
}

func normResponse(r *Response) Response {
	n := *r
	n.Header, n.Body, n.Error = nf(n.Header), nb(n.Body), nb(n.Error)
	if len(n.Interim) == 0 {
		n.Interim = nil
	} else {
		in := make([]Interim, len(n.Interim))
		for i, x := range n.Interim {
			in[i] = Interim{Status: x.Status, Header: nf(x.Header)}
		}
		n.Interim = in
	}
	if len(n.Cache.Tags) == 0 {
		n.Cache.Tags = nil
	} else {
		tags := make([]Bytes, len(n.Cache.Tags))
		for i, t := range n.Cache.Tags {
			tags[i] = nb(t)
		}
		n.Cache.Tags = tags
	}
	return n
}

func nb(b Bytes) Bytes {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nf(fs []Field) []Field {
	if len(fs) == 0 {
		return nil
	}
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = Field{Name: nb(f.Name), Value: nb(f.Value)}
	}
	return out
}

func sameRequest(a, b *Request) bool {
	x, y := normRequest(a), normRequest(b)
	return reflect.DeepEqual(x, y)
}

func sameResponse(a, b *Response) bool {
	x, y := normResponse(a), normResponse(b)
	return reflect.DeepEqual(x, y)
}

// browserRequest is a header-heavy GET of the kind a dictionary is for, with
// the per-request parts (IDs, cookies, paths) varying with rng.
func browserRequest(rng *rand.Rand) *Request {
	paths := []string{"/", "/products", "/products/42", "/cart", "/api/v1/items", "/static/app.js", "/search", "/account/orders"}
	agents := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	}
	langs := []string{"en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "ja-JP,ja;q=0.9"}
	r := &Request{
		ID:      Bytes(fmt.Sprintf("%016x", rng.Uint64())),
		Method:  Bytes("GET"),
		Scheme:  Bytes("https"),
		Host:    Bytes("shop.example.com"),
		Path:    Bytes(paths[rng.IntN(len(paths))]),
		Client:  Bytes(fmt.Sprintf("203.0.113.%d", rng.IntN(254)+1)),
		POP:     Bytes("fra1"),
		Region:  Bytes("eu-central"),
		Timeout: uint64(2_000_000 + rng.IntN(1000)),
	}
	if rng.IntN(3) == 0 {
		r.Query = Bytes("q=" + strconv.Itoa(rng.IntN(100000)) + "&page=" + strconv.Itoa(rng.IntN(9)+1))
	}
	h := func(n, v string) { r.AddHeader([]byte(n), []byte(v)) }
	h("host", "shop.example.com")
	h("user-agent", agents[rng.IntN(len(agents))])
	h("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8")
	h("accept-language", langs[rng.IntN(len(langs))])
	h("accept-encoding", "gzip, deflate, br, zstd")
	h("sec-fetch-dest", "document")
	h("sec-fetch-mode", "navigate")
	h("sec-fetch-site", "same-origin")
	h("sec-ch-ua", `"Chromium";v="131", "Not_A Brand";v="24"`)
	h("sec-ch-ua-mobile", "?0")
	h("sec-ch-ua-platform", `"Windows"`)
	h("upgrade-insecure-requests", "1")
	h("referer", "https://shop.example.com"+paths[rng.IntN(len(paths))])
	h("cookie", fmt.Sprintf("session=%032x", rng.Uint64()))
	h("cookie", fmt.Sprintf("_ga=GA1.2.%d.%d", rng.Uint32(), 1700000000+rng.IntN(1e7)))
	h("x-forwarded-proto", "https")
	if rng.IntN(2) == 0 {
		h("if-none-match", fmt.Sprintf(`W/"%08x"`, rng.Uint32()))
	}
	r.AddValue([]byte("identity-sub"), []byte("user-"+strconv.Itoa(rng.IntN(5000))))
	return r
}

// browserResponse is the header-heavy answer to a browserRequest.
func browserResponse(rng *rand.Rand) *Response {
	r := &Response{Status: 200, Body: Bytes(`{"ok":true,"n":` + strconv.Itoa(rng.IntN(1000)) + `}`),
		Cache: Hints{TTL: 60, Stale: 30, Tags: []Bytes{Bytes("product-" + strconv.Itoa(rng.IntN(100)))}}}
	h := func(n, v string) { r.AddHeader([]byte(n), []byte(v)) }
	h("content-type", "application/json; charset=utf-8")
	h("cache-control", "public, max-age=60, stale-while-revalidate=30")
	h("etag", fmt.Sprintf(`W/"%08x"`, rng.Uint32()))
	h("vary", "Accept-Encoding, Accept-Language")
	h("date", testNow.Add(time.Duration(rng.IntN(3600))*time.Second).UTC().Format(time.RFC1123))
	h("x-content-type-options", "nosniff")
	h("strict-transport-security", "max-age=63072000; includeSubDomains; preload")
	return r
}

// jsonBody is n bytes of API-like JSON, the same for the same n.
func jsonBody(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	b := []byte(`{"items":[`)
	for i := 0; len(b) < n-64; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"id":%d,"sku":"SKU-%06d","name":"item %x","price":%d.%02d,"stock":%d,"tags":["t%d","t%d"]}`,
			i, rng.IntN(1e6), rng.Uint32(), rng.IntN(500), rng.IntN(100), rng.IntN(80), rng.IntN(20), rng.IntN(20))
	}
	b = append(b, "]}"...)
	return b
}

// samples are envelopes (CBOR) to train dictionaries on: what an edge
// collects from real traffic, generated.
func samples(n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([][]byte, 0, n)
	for i := range n {
		var v any = browserRequest(rng)
		if i%2 == 1 {
			v = browserResponse(rng)
		}
		b, err := Marshal(v)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

const testDictID = 0x5745 // "WE"

var trained = sync.OnceValues(func() ([]byte, error) { return TrainDict(samples(400, 1), testDictID, 16<<10) })

// testDict is a dictionary trained on generated samples, built once per
// test binary.
func testDict(tb testing.TB) []byte {
	tb.Helper()
	d, err := trained()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
