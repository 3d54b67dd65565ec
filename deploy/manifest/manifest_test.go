package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var seed = bytes.Repeat([]byte{1}, ed25519.SeedSize)

// TestSigningPayload pins the bytes a signature covers: changing them
// would orphan every signed artifact in every registry.
func TestSigningPayload(t *testing.T) {
	got := string(SigningPayload("auth", "1.2.0", "ab"))
	if want := "wedge-plugin-v1\x00auth\x001.2.0\x00ab"; got != want {
		t.Fatalf("payload %q, want %q", got, want)
	}
	key := ed25519.NewKeyFromSeed(seed)
	a, err := Sign(key, "auth", "1.2.0", []byte("module"), "me")
	if err != nil {
		t.Fatal(err)
	}
	// Ed25519 is deterministic: the same key and payload, the same bytes.
	if want := ed25519.Sign(key, SigningPayload("auth", "1.2.0", Digest([]byte("module")))); !bytes.Equal(a.Sig, want) {
		t.Fatal("signature is not over SigningPayload")
	}
	if a.KeyID != KeyID(key.Public().(ed25519.PublicKey)) || len(a.KeyID) != 16 {
		t.Fatalf("key id %q", a.KeyID)
	}
	for _, bad := range [][2]string{{"Auth", "1"}, {"auth", "1+build"}, {"auth", ""}, {"a\x00b", "1"}} {
		if _, err := Sign(key, bad[0], bad[1], []byte("m"), ""); err == nil {
			t.Errorf("Sign(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// TestVerifyOrder checks that Verify names the first thing wrong.
func TestVerifyOrder(t *testing.T) {
	key := ed25519.NewKeyFromSeed(seed)
	trust := NewTrustStore(key.Public().(ed25519.PublicKey))
	bin := []byte("module")
	a, _ := Sign(key, "auth", "1", bin, "")
	if err := trust.Verify(a, bin, nil); err != nil {
		t.Fatal(err)
	}
	unsigned := *a
	unsigned.Sig = nil
	relabel := *a
	relabel.Name = "ratelimit"
	stranger := *a
	stranger.KeyID = "0000000000000000"
	revoked := map[string]Revocation{a.Digest: {Reason: "bad"}}
	for _, c := range []struct {
		a       *Artifact
		bin     []byte
		revoked map[string]Revocation
		want    error
	}{
		{&unsigned, bin, revoked, ErrUnsigned},
		{a, bin, revoked, ErrRevoked},
		{&stranger, bin, nil, ErrUnknownKey},
		{&relabel, bin, nil, ErrBadSignature},
		{a, []byte("other"), nil, ErrDigest},
	} {
		if err := trust.Verify(c.a, c.bin, c.revoked); !errors.Is(err, c.want) {
			t.Errorf("Verify = %v, want %v", err, c.want)
		}
	}
}

// TestParsePublicKeys: a trust file is read whole, every key of it, and a
// file with anything but Ed25519 public keys in PEM is refused, not read in
// part.
func TestParsePublicKeys(t *testing.T) {
	var pubs []ed25519.PublicKey
	var blocks []string
	for i := range 3 {
		s := bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)
		pub := ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
		der, _ := x509.MarshalPKIXPublicKey(pub)
		pubs = append(pubs, pub)
		blocks = append(blocks, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	}
	for _, tc := range []struct {
		name string
		file string
		want int // keys; 0: refused
	}{
		{"one", blocks[0], 1},
		{"three", blocks[0] + blocks[1] + blocks[2], 3},
		{"blank lines and CRLF around", "\r\n\n" + blocks[0] + "\n\t\n" + strings.ReplaceAll(blocks[1], "\n", "\r\n") + "\n\n", 2},
		{"no final newline", blocks[0] + strings.TrimSuffix(blocks[1], "\n"), 2},
		{"empty", "", 0},
		{"blank", " \n\n", 0},
		{"not PEM", "not pem", 0},
		{"text before", "# ops key\n" + blocks[0], 0},
		{"text between", blocks[0] + "junk\n" + blocks[1], 0},
		{"text after", blocks[0] + blocks[1] + "trailing", 0},
		{"private key block", blocks[0] + strings.ReplaceAll(blocks[1], "PUBLIC KEY", "PRIVATE KEY"), 0},
		{"certificate block", strings.ReplaceAll(blocks[0], "PUBLIC KEY", "CERTIFICATE"), 0},
		{"junk DER", blocks[0] + string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})), 0},
		{"PEM headers", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: pubs[0]})), 0},
		{"no END line", strings.Split(blocks[0], "-----END")[0], 0},
		// pem.Decode alone would skip a broken block and read the next.
		{"broken block, then a good one", "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n" + blocks[1], 0},
		{"truncated block, then a good one", strings.Split(blocks[0], "-----END")[0] + blocks[1], 0},
	} {
		got, err := ParsePublicKeys([]byte(tc.file))
		if tc.want == 0 {
			if err == nil || !strings.HasPrefix(err.Error(), "manifest: public keys: ") {
				t.Errorf("%s: %d keys, err %v; want refused", tc.name, len(got), err)
			}
			continue
		}
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: %d keys, %v; want %d", tc.name, len(got), err, tc.want)
			continue
		}
		for i, k := range got {
			if !k.Equal(pubs[i]) {
				t.Errorf("%s: key %d is not the file's", tc.name, i)
			}
		}
	}
}

func FuzzParsePublicKeys(f *testing.F) {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	block := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	f.Add(block)
	f.Add(append(append([]byte{}, block...), block...))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParsePublicKeys(data)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		for _, k := range keys {
			if len(k) != ed25519.PublicKeySize {
				t.Fatalf("key of %d bytes", len(k))
			}
		}
	})
}

// TestLoadTrustFiles: every key of every file is trusted.
func TestLoadTrustFiles(t *testing.T) {
	dir := t.TempDir()
	var pubs []ed25519.PublicKey
	var paths []string
	for i := range 3 {
		var file []byte
		for j := range i + 1 {
			pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(10*i + j)}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
			der, _ := x509.MarshalPKIXPublicKey(pub)
			file = append(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
			pubs = append(pubs, pub)
		}
		p := filepath.Join(dir, fmt.Sprint("k", i, ".pub"))
		if err := os.WriteFile(p, file, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	trust, err := LoadTrustFiles(paths...)
	if err != nil || len(trust) != len(pubs) {
		t.Fatalf("LoadTrustFiles: %d keys, %v; want %d", len(trust), err, len(pubs))
	}
	for _, k := range pubs {
		if !trust[KeyID(k)].Equal(k) {
			t.Errorf("key %s not trusted", KeyID(k))
		}
	}
	bad := filepath.Join(dir, "bad.pub")
	os.WriteFile(bad, []byte("junk"), 0o644)
	for _, ps := range [][]string{nil, {bad}, {paths[0], bad}, {filepath.Join(dir, "nope.pub")}} {
		if _, err := LoadTrustFiles(ps...); err == nil || !strings.HasPrefix(err.Error(), "manifest: ") {
			t.Errorf("LoadTrustFiles(%q): %v, want an error", ps, err)
		}
	}
}

func validDesired(t testing.TB) []byte {
	key := ed25519.NewKeyFromSeed(seed)
	a, _ := Sign(key, "auth", "2", []byte("v2"), "")
	b, _ := Sign(key, "auth", "3", []byte("v3"), "")
	d := Desired{Plugins: map[string]Release{
		"auth":     {Artifact: *a, Config: json.RawMessage(`{"realm":"x"}`)},
		"api/auth": {Canary: &Canary{Artifact: *b, Share: 10}},
	}}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseDesired(t *testing.T) {
	good := validDesired(t)
	d, err := ParseDesired(good)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Plugins["auth"].Config) != `{"realm":"x"}` || d.Plugins["api/auth"].Canary.Share != 10 {
		t.Fatalf("parsed %+v", d)
	}
	// Config travels as JSON, not base64, so ops can read it in the KV.
	if !strings.Contains(string(good), `"config":{"realm":"x"}`) {
		t.Fatalf("config not inline JSON: %s", good)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"not JSON", `{`, `[`, "desired state"},
		{"wrong plugin", `"name":"auth","version":"2"`, `"name":"cache","version":"2"`, "in the slot of"},
		{"bad version", `"version":"2"`, `"version":"2+x"`, "version"},
		{"bad digest", Digest([]byte("v2")), "XYZ", "digest"},
		{"share zero", `"share":10`, `"share":0`, "share"},
		{"share over", `"share":10`, `"share":101`, "share"},
		{"bad key", `"api/auth"`, `"api/Auth!"`, "plugin"},
	} {
		bad := strings.Replace(string(good), c.from, c.to, 1)
		if bad == string(good) {
			t.Fatalf("%s: the replacement changed nothing", c.name)
		}
		if _, err := ParseDesired([]byte(bad)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
}

func TestMerge(t *testing.T) {
	region := &Desired{Plugins: map[string]Release{"auth": {Config: json.RawMessage(`1`)}, "cache": {Config: json.RawMessage(`2`)}}}
	pop := &Desired{Plugins: map[string]Release{"auth": {Config: json.RawMessage(`3`)}}}
	m := Merge(region, pop)
	if string(m["auth"].Config) != "3" || string(m["cache"].Config) != "2" || len(m) != 2 {
		t.Fatalf("Merge = %+v", m)
	}
	if len(Merge(nil, nil)) != 0 {
		t.Fatal("Merge of nothing is not empty")
	}
}

func TestQuantile(t *testing.T) {
	b := make([]uint64, len(LatencyBounds)+1)
	if Quantile(0.99, b) != 0 {
		t.Fatal("no requests: want 0")
	}
	b[0], b[4] = 98, 2 // 98 under 1ms, 2 in (10ms, 25ms]
	if q := Quantile(0.98, b); q != time.Millisecond {
		t.Fatalf("p98 = %s, want 1ms", q)
	}
	if q := Quantile(0.99, b); q != 17500*time.Microsecond {
		t.Fatalf("p99 = %s, want 17.5ms: halfway into (10ms, 25ms], as histogram_quantile has it", q)
	}
	// One request of 70 in (25ms, 50ms]: p99 is under 50ms (it was
	// reported as 50ms, and a gate "p99<50ms" rolled a good version back).
	c := make([]uint64, len(LatencyBounds)+1)
	c[0], c[5] = 69, 1
	if q := Quantile(0.99, c); q != 32500*time.Microsecond {
		t.Fatalf("p99 of 69 fast and 1 in (25ms, 50ms] = %s, want 32.5ms", q)
	}
	b[len(b)-1] = 1000
	if q := Quantile(0.5, b); q != 5*time.Second {
		t.Fatalf("p50 in +Inf = %s, want 5s", q)
	}
}

// FuzzParseDesired feeds arbitrary bytes where an edge reads the control
// plane's desired state: it must refuse or return a state whose every
// release passes its own checks, and never panic.
func FuzzParseDesired(f *testing.F) {
	f.Add(validDesired(f))
	f.Add([]byte(`{"plugins":{}}`))
	f.Add([]byte(`{"plugins":{"/":{}}}`))
	f.Add([]byte(`{"plugins":{"a":{"canary":null,"config":null}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDesired(b)
		if err != nil {
			return
		}
		for k, r := range d.Plugins {
			if err := r.check(k); err != nil {
				t.Fatalf("accepted %q with %v", k, err)
			}
		}
	})
}
