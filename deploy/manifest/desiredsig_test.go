package manifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// testDesired is a desired state with every kind of field a signature
// covers: a release with a config, a canary with its own config and split.
func testDesired() *Desired {
	art := Artifact{Name: "auth", Version: "v1", Digest: strings.Repeat("a", 64), KeyID: "k", Sig: []byte{1}}
	can := art
	can.Version = "v2"
	return &Desired{Plugins: map[string]Release{
		"auth": {Artifact: art, Config: json.RawMessage(`{ "public": ["/health"],
			"note": "<&>" }`), Canary: &Canary{Artifact: can, Config: json.RawMessage(`{"public":[]}`), Share: 12.5, Split: "header:X-User"}},
		"app/cache": {Config: json.RawMessage(`null`)},
	}, Why: "test", By: "controller"}
}

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func TestSignedDesiredVerifies(t *testing.T) {
	key := testKey(1)
	keys := NewTrustStore(key.Public().(ed25519.PublicKey))
	issued := time.Date(2026, 12, 6, 8, 0, 0, 123456789, time.FixedZone("x", 3600))
	b, err := SignDesired(key, RegionKey("eu"), issued, testDesired())
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseSignedDesired(b, RegionKey("eu"), keys)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !d.Issued.Equal(issued) || d.For != "region.eu" || string(d.Plugins["auth"].Config) != `{"public":["/health"],"note":"\u003c\u0026\u003e"}` {
		t.Fatalf("decoded %+v", d)
	}
	// Whitespace a tool adds around or inside the record is not a change.
	var pretty bytes.Buffer
	json.Indent(&pretty, b, "", "  ")
	pd, err := ParseSignedDesired(pretty.Bytes(), RegionKey("eu"), keys)
	if err != nil {
		t.Fatalf("indented: %v", err)
	}
	// What is handed on is the signed form, not the indented bytes.
	if got, want := string(pd.Plugins["auth"].Config), string(d.Plugins["auth"].Config); got != want {
		t.Fatalf("indented record's config %q, want the signed form %q", got, want)
	}
	// The payload is the record's canonical form: the same for the record
	// signed and as read back, and without the signature.
	p, err := DesiredPayload(d)
	if err != nil || !bytes.HasPrefix(p, []byte("wedge-desired-v1\x00{")) || bytes.Contains(p, []byte(`"sig"`)) || bytes.Contains(p, []byte(`"key_id":"`+d.KeyID+`"`)) {
		t.Fatalf("payload %q, %v", p, err)
	}
}

// A record that does not encode has no payload: an error, not a
// signature over an empty one.
func TestDesiredPayloadError(t *testing.T) {
	d := &Desired{Plugins: map[string]Release{"auth": {Config: json.RawMessage(`{`)}}}
	if p, err := DesiredPayload(d); err == nil {
		t.Fatalf("payload %q of a config that is not JSON", p)
	}
	if _, err := SignDesired(testKey(1), RegionKey("eu"), time.Now(), d); err == nil {
		t.Fatal("signed a config that is not JSON")
	}
}

// An unknown key ID is not echoed whole: it is unverified, and refusals
// end up in status reports of bounded size.
func TestUnknownKeyIDCut(t *testing.T) {
	long := strings.Repeat("k", 1<<20)
	_, err := ParseSignedDesired([]byte(`{"plugins":{},"sig":"AAAA","key_id":"`+long+`"}`), RegionKey("eu"), NewTrustStore(testKey(1).Public().(ed25519.PublicKey)))
	if !errors.Is(err, ErrUnknownKey) || len(err.Error()) > 200 {
		t.Fatalf("error of %d bytes: %.200v", len(err.Error()), err)
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{{"short", 10, "short"}, {"abcdefgh", 6, "abc…"}, {"ééééé", 7, "éé…"}} {
		if got := Clip(c.s, c.n); got != c.want || len(got) > c.n {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestSignedDesiredRefused(t *testing.T) {
	key, other := testKey(1), testKey(2)
	keys := NewTrustStore(key.Public().(ed25519.PublicKey))
	now := time.Now()
	signed, err := SignDesired(key, RegionKey("eu"), now, testDesired())
	if err != nil {
		t.Fatal(err)
	}
	byOther, _ := SignDesired(other, RegionKey("eu"), now, testDesired())
	unsigned, _ := json.Marshal(testDesired())
	edit := func(from, to string) []byte {
		if !bytes.Contains(signed, []byte(from)) {
			t.Fatalf("no %q in %s", from, signed)
		}
		return bytes.Replace(signed, []byte(from), []byte(to), 1)
	}
	for _, c := range []struct {
		name, key string
		b         []byte
		want      error
		reason    string
	}{
		{"unsigned", "region.eu", unsigned, ErrDesiredUnsigned, "unsigned"},
		{"other key", "region.eu", byOther, ErrUnknownKey, "unknown_key"},
		{"config edited", "region.eu", edit(`"public":["/health"]`, `"public":["/"]`), ErrDesiredSignature, "bad_signature"},
		{"canary share edited", "region.eu", edit(`"share":12.5`, `"share":100`), ErrDesiredSignature, "bad_signature"},
		{"split edited", "region.eu", edit(`header:X-User`, `header:X-Usr`), ErrDesiredSignature, "bad_signature"},
		{"why edited", "region.eu", edit(`"why":"test"`, `"why":"tset"`), ErrDesiredSignature, "bad_signature"},
		{"issued edited", "region.eu", edit(`"issued":"`+now.UTC().Format(time.RFC3339Nano), `"issued":"2099-01-01T00:00:00Z`), ErrDesiredSignature, "bad_signature"},
		{"binding edited", "region.us", edit(`"for":"region.eu"`, `"for":"region.us"`), ErrDesiredSignature, "bad_signature"},
		{"moved", "region.us", signed, ErrDesiredMoved, "wrong_key"},
		{"moved to a pop", "pop.eu", signed, ErrDesiredMoved, "wrong_key"},
		{"not json", "region.eu", []byte(`{"plugins":`), ErrDesiredInvalid, "invalid"},
	} {
		_, err := ParseSignedDesired(c.b, c.key, keys)
		if !errors.Is(err, c.want) || DesiredReason(err) != c.reason {
			t.Errorf("%s: got %v (%s), want %v (%s)", c.name, err, DesiredReason(err), c.want, c.reason)
		}
	}
	if DesiredReason(ErrDesiredStale) != "stale" {
		t.Error("stale has no reason of its own")
	}
}

// FuzzDesired feeds ParseSignedDesired arbitrary records: it must never
// panic, and what it accepts must verify again once re-encoded (the
// payload is canonical) and carry the key it was read under.
func FuzzDesired(f *testing.F) {
	key := testKey(1)
	keys := NewTrustStore(key.Public().(ed25519.PublicKey))
	signed, err := SignDesired(key, RegionKey("eu"), time.Unix(1, 0), testDesired())
	if err != nil {
		f.Fatal(err)
	}
	unsigned, _ := json.Marshal(testDesired())
	for _, s := range [][]byte{signed, unsigned, []byte(`{}`), []byte(`{"plugins":{},"sig":"AAAA","key_id":"x"}`), []byte(`null`),
		bytes.Replace(signed, []byte(`"share":12.5`), []byte(`"share":1.25e1`), 1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseSignedDesired(b, RegionKey("eu"), keys)
		if err != nil {
			if DesiredReason(err) == "stale" {
				t.Fatalf("parse cannot know staleness: %v", err)
			}
			return
		}
		if d.For != RegionKey("eu") {
			t.Fatalf("accepted a record for %q", d.For)
		}
		again, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSignedDesired(again, RegionKey("eu"), keys); err != nil {
			t.Fatalf("re-encoded record refused: %v", err)
		}
	})
}
