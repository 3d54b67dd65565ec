package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedUpToDate fails when someone edits abi.Funcs (or this generator)
// without running `go generate ./wasm/abi`, or edits a generated file by hand.
func TestGeneratedUpToDate(t *testing.T) {
	root := filepath.Join("..", "..", "..", "..")
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatalf("%s: %v (run go generate ./wasm/abi)", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./wasm/abi", path)
		}
	}
}
