package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/talowa/wedge/origin/wire"
)

// writeSamples writes n header-heavy request envelopes, the kind `origin
// -samples` records, into dir.
func writeSamples(t *testing.T, dir string, n int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	agents := []string{"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "okhttp/4.12.0", "MyShopApp/7.4.1 (Android 15; Pixel 8)"}
	for i := range n {
		req := &wire.Request{Version: wire.Version, Method: wire.Bytes("GET"), Scheme: wire.Bytes("https"),
			Host: wire.Bytes("shop.example.com"), Path: fmt.Appendf(nil, "/api/v2/orders/%d", r.IntN(1e6))}
		req.AddHeader([]byte("User-Agent"), []byte(agents[r.IntN(len(agents))]))
		req.AddHeader([]byte("Accept"), []byte("application/json, text/plain, */*"))
		req.AddHeader([]byte("Accept-Language"), []byte("en-US,en;q=0.9"))
		req.AddHeader([]byte("Cookie"), fmt.Appendf(nil, "session=%016x%016x; theme=dark", r.Uint64(), r.Uint64()))
		req.AddHeader([]byte("X-Request-Id"), fmt.Appendf(nil, "%016x", r.Uint64()))
		req.AddValue([]byte("sub"), fmt.Appendf(nil, "user-%d", r.IntN(5000)))
		b, err := wire.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".req.cbor"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOriginTrainDict(t *testing.T) {
	samples, out := t.TempDir(), filepath.Join(t.TempDir(), "d.dict")
	writeSamples(t, samples, 400, 1)
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"origin", "train-dict", "-id", "42", "-o", out, samples}, &stdout); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\(([0-9.]+)x smaller\)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no savings line in %q", stdout.String())
	}
	if ratio, _ := strconv.ParseFloat(m[1], 64); ratio < 1.5 {
		t.Errorf("dictionary saves only %.2fx on its samples: %s", ratio, stdout.String())
	}
	dict, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := wire.DictID(dict); err != nil || id != 42 {
		t.Fatalf("DictID = %d, %v; want 42", id, err)
	}
	// Both ends load it by ID: an edge compressing with it talks to an
	// origin that holds it.
	key := wire.Key{ID: 1, Secret: bytes.Repeat([]byte{1}, 32)}
	edge, err := wire.NewCodec(wire.Config{Keys: []wire.Key{key}, Dicts: [][]byte{dict}, Dict: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer edge.Close()
	origin, err := wire.NewCodec(wire.Config{Keys: []wire.Key{key}, Dicts: [][]byte{dict}})
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	frame, _, err := edge.AppendRequest(nil, &wire.Request{Method: wire.Bytes("GET"), Path: wire.Bytes("/api/v2/orders/1")})
	if err != nil {
		t.Fatal(err)
	}
	x, err := origin.DecodeRequest(frame, new(wire.Request))
	if err != nil || x.Dict != 42 {
		t.Fatalf("origin decoded with dictionary %d, %v; want 42", x.Dict, err)
	}
}

func TestOriginTrainDictRefusesNonEnvelopes(t *testing.T) {
	samples := t.TempDir()
	writeSamples(t, samples, 10, 2)
	if err := os.WriteFile(filepath.Join(samples, "access.log"), []byte("GET / HTTP/1.1\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"origin", "train-dict", "-o", filepath.Join(t.TempDir(), "d"), samples}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "access.log is not a CBOR envelope") {
		t.Fatalf("err = %v, want a refusal naming access.log", err)
	}
}

// TestOriginTrainDictNoSamples: an empty samples directory says so, and
// how to fill it (it said "train dictionary from 0 samples: no input
// provided").
func TestOriginTrainDictNoSamples(t *testing.T) {
	empty := t.TempDir()
	err := run(context.Background(), []string{"origin", "train-dict", "-o", filepath.Join(t.TempDir(), "d"), empty}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "no samples in "+empty+": run the origin service with -samples DIR") {
		t.Fatalf("err = %v, want one saying the directory holds no samples", err)
	}
}

func TestOriginKeygen(t *testing.T) {
	var a, b bytes.Buffer
	for _, out := range []*bytes.Buffer{&a, &b} {
		if err := run(context.Background(), []string{"origin", "keygen", "-id", "3"}, out); err != nil {
			t.Fatal(err)
		}
	}
	k, err := wire.ParseKey(a.String())
	if err != nil || k.ID != 3 || len(k.Secret) != 32 {
		t.Fatalf("keygen printed %q: %+v, %v", a.String(), k, err)
	}
	if a.String() == b.String() {
		t.Fatal("two keys are the same")
	}
}
