package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const guestDir = "../../../wasm/internal/testguests/noop"

// TestPluginBuildReproducible builds the same plugin twice, the second time
// with an empty Go build cache so that everything is compiled afresh, and
// wants the same bytes and the printed sha256 of them.
func TestPluginBuildReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the Go runtime for wasm from scratch")
	}
	dir := t.TempDir()
	build := func(name string) ([]byte, string) {
		var out bytes.Buffer
		file := filepath.Join(dir, name)
		if err := run(context.Background(), []string{"plugin", "build", guestDir, "-o", file}, &out); err != nil {
			t.Fatal(err)
		}
		bin, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return bin, out.String()
	}
	first, printed := build("first.wasm")
	t.Setenv("GOCACHE", t.TempDir())
	second, _ := build("second.wasm")
	if !bytes.Equal(first, second) {
		t.Fatalf("two builds of one source differ: %d and %d bytes", len(first), len(second))
	}
	sum := sha256.Sum256(first)
	if !strings.HasPrefix(printed, "sha256:"+hex.EncodeToString(sum[:])+"  ") {
		t.Fatalf("printed %q, want the sha256 of the module", printed)
	}
}

func TestPluginBuildRefusesNonPlugins(t *testing.T) {
	// A main package that builds for wasip1 but is no plugin.
	err := run(context.Background(), []string{"plugin", "build", "-o", filepath.Join(t.TempDir(), "x.wasm"),
		"../../../wasm/abi/internal/abigen"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not a usable plugin") || !strings.Contains(err.Error(), "wedge_abi_v1") {
		t.Fatalf("got %v, want a refusal naming the missing ABI marker", err)
	}
	if err := run(context.Background(), []string{"plugin", "build"}, &bytes.Buffer{}); err == nil {
		t.Fatal("plugin build without a directory succeeded")
	}
	if err := run(context.Background(), []string{"plugin", "build", "/nonexistent"}, &bytes.Buffer{}); err == nil {
		t.Fatal("plugin build of a missing directory succeeded")
	}
}
