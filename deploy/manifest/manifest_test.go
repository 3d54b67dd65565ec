package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
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

func TestParsePublicKey(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	got, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("ParsePublicKey = %v, %v", got, err)
	}
	for _, bad := range []string{"", "not pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))} {
		if _, err := ParsePublicKey([]byte(bad)); err == nil {
			t.Errorf("ParsePublicKey(%.20q) accepted", bad)
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
	if q := Quantile(0.99, b); q != 25*time.Millisecond {
		t.Fatalf("p99 = %s, want 25ms", q)
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
