package main

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
)

// The controller's key: required without --embedded; made once in the
// auth directory otherwise, the same for members starting at once on it,
// with the public key POPs list beside it.
func TestControllerKey(t *testing.T) {
	if _, err := loadControllerKey("", "", io.Discard); err == nil || !strings.Contains(err.Error(), "--controller-key FILE is required") {
		t.Fatalf("no key and no directory: %v", err)
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	keys := make([]ed25519.PrivateKey, 4)
	outs := make([]bytes.Buffer, len(keys))
	for i := range keys {
		wg.Go(func() {
			var err error
			if keys[i], err = loadControllerKey("", dir, &outs[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	made := 0
	for i, k := range keys {
		if !k.Equal(keys[0]) {
			t.Fatalf("member %d has another controller key", i)
		}
		if strings.Contains(outs[i].String(), "made the controller key") {
			made++
		}
	}
	if made != 1 {
		t.Fatalf("%d members say they made the key, want 1", made)
	}
	pubs, err := manifest.LoadTrustFiles(filepath.Join(dir, "controller.pub"))
	if err != nil || pubs[manifest.KeyID(keys[0].Public().(ed25519.PublicKey))] == nil {
		t.Fatalf("controller.pub: %v, %v: want the key's public half", pubs, err)
	}
	// The public half follows the key: made again when missing (a member
	// stopped between the two), replaced when it is another key's.
	pubFile := filepath.Join(dir, "controller.pub")
	_, stale, err := registry.GenerateKey(t.TempDir(), "stale")
	if err != nil {
		t.Fatal(err)
	}
	staleBytes, err := os.ReadFile(stale)
	if err != nil {
		t.Fatal(err)
	}
	for what, setup := range map[string]func() error{
		"missing": func() error { return os.Remove(pubFile) },
		"stale":   func() error { return os.WriteFile(pubFile, staleBytes, 0o644) },
	} {
		if err := setup(); err != nil {
			t.Fatal(err)
		}
		if _, err := loadControllerKey("", dir, io.Discard); err != nil {
			t.Fatal(err)
		}
		if pubs, err := manifest.LoadTrustFiles(pubFile); err != nil || len(pubs) != 1 || pubs[manifest.KeyID(keys[0].Public().(ed25519.PublicKey))] == nil {
			t.Fatalf("%s controller.pub: %v, %v: want the key's public half", what, pubs, err)
		}
	}
	// An explicit key file wins.
	priv, _, err := registry.GenerateKey(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	other, err := loadControllerKey(priv, dir, io.Discard)
	if err != nil || other.Equal(keys[0]) {
		t.Fatalf("--controller-key: %v", err)
	}
}
