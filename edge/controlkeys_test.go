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

// TestFleetControlKeys: a node on the control plane needs the
// controller's public keys (fleet.control_keys), read like a trust file
// and kept apart from the artifact keys, or an explicit
// insecure_unsigned_desired; without either the config is refused.
func TestFleetControlKeys(t *testing.T) {
	dir := t.TempDir()
	pemOf := func(seed byte) (ed25519.PublicKey, []byte) {
		pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	artifactPub, artifactPEM := pemOf(1)
	controlPub, controlPEM := pemOf(2)
	for name, b := range map[string][]byte{"signer.pub": artifactPEM, "controller.pub": controlPEM, "junk.pub": []byte("junk")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(fleet string) string {
		return fmt.Sprintf(`
pop: test1
region: eu-test
fleet: {nats: "nats://127.0.0.1:4222", trust: [signer.pub]%s}
origins:
  app: {addr: "127.0.0.1:1", key: %q}
routes:
  - {path: /, origin: app}
`, fleet, origintest.Key.Text())
	}
	c, err := edge.ParseConfig([]byte(cfg(", control_keys: [controller.pub]")), dir)
	if err != nil {
		t.Fatal(err)
	}
	control, trust := c.Fleet.ControlStore(), c.Fleet.TrustStore()
	if len(control) != 1 || !control[manifest.KeyID(controlPub)].Equal(controlPub) || control[manifest.KeyID(artifactPub)] != nil ||
		trust[manifest.KeyID(controlPub)] != nil {
		t.Fatalf("control keys %v, trust %v: want the controller's key alone as a control key", control, trust)
	}
	for fleet, want := range map[string]string{
		"":                                   "no control_keys",
		", control_keys: [junk.pub]":         "fleet: control_keys",
		", control_keys: [missing.pub]":      "fleet: control_keys",
		", insecure_unsigned_desired: false": "insecure_unsigned_desired: true",
		// Unsigned would win over the keys, silently.
		", control_keys: [controller.pub], insecure_unsigned_desired: true": "together",
		// One key for both would let the push role sign desired state.
		", control_keys: [signer.pub]": "in both trust and control_keys",
	} {
		if _, err := edge.ParseConfig([]byte(cfg(fleet)), dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fleet %q: %v, want an error with %q", fleet, err, want)
		}
	}
	// The names its credential is minted for (manifest.CheckName).
	for from, to := range map[string]string{"pop: test1": "pop: Test1", "region: eu-test": "region: eu.test"} {
		doc := strings.Replace(cfg(", control_keys: [controller.pub]"), from, to, 1)
		if _, err := edge.ParseConfig([]byte(doc), dir); err == nil || !strings.Contains(err.Error(), strings.Split(from, ":")[0]) {
			t.Errorf("%s: %v, want an error naming it", to, err)
		}
	}
	c, err = edge.ParseConfig([]byte(cfg(", insecure_unsigned_desired: true")), dir)
	if err != nil || len(c.Fleet.ControlStore()) != 0 || !c.Fleet.UnsignedDesired {
		t.Fatalf("insecure_unsigned_desired: %v", err)
	}
}
