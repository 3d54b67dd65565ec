package edge_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin/origintest"
)

// TestFleetTrustFile: a trust file with several keys has every one
// trusted, as the registry reads it, and a file with anything else in it
// fails the config rather than being read in part.
func TestFleetTrustFile(t *testing.T) {
	dir := t.TempDir()
	var file []byte
	var pubs []ed25519.PublicKey
	for i := range 3 {
		pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		file = append(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
		pubs = append(pubs, pub)
	}
	write := func(name string, b []byte) string {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	cfg := func(trust string) string {
		return fmt.Sprintf(`
pop: test1
region: eu-test
fleet: {nats: "nats://127.0.0.1:4222", trust: [%q], insecure_unsigned_desired: true}
origins:
  app: {addr: "127.0.0.1:1", key: %q}
routes:
  - {path: /, origin: app}
`, trust, origintest.Key.Text())
	}
	c, err := edge.ParseConfig([]byte(cfg(write("ops.pub", file))), dir)
	if err != nil {
		t.Fatal(err)
	}
	trust := c.Fleet.TrustStore()
	for i, k := range pubs {
		if !trust[manifest.KeyID(k)].Equal(k) {
			t.Errorf("key %d of the trust file is not trusted", i)
		}
	}
	if len(trust) != len(pubs) {
		t.Errorf("%d keys trusted, want %d", len(trust), len(pubs))
	}
	for name, bad := range map[string][]byte{
		"junk.pub":    append(bytes.Clone(file), "junk"...),
		"private.pub": append(bytes.Clone(file), bytes.ReplaceAll(file[:len(file)/3], []byte("PUBLIC"), []byte("PRIVATE"))...),
		"empty.pub":   nil,
	} {
		if _, err := edge.ParseConfig([]byte(cfg(write(name, bad))), dir); err == nil || !strings.Contains(err.Error(), "fleet: trust") {
			t.Errorf("%s: %v, want the config refused", name, err)
		}
	}
}
