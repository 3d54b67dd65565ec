package wasmbuild

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceHash(t *testing.T) {
	ctx := context.Background()
	hash := func(dir string) string {
		t.Helper()
		h, err := SourceHash(ctx, filepath.Join("..", "internal", "testguests", dir))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if a, b := hash("noop"), hash("noop"); a != b {
		t.Fatal("the hash of unchanged sources changed")
	}
	if hash("noop") == hash("hs256") {
		t.Fatal("two plugins hash the same")
	}
	if _, err := SourceHash(ctx, t.TempDir()); err == nil {
		t.Fatal("hashed a directory without a Go package")
	}
}

func TestCachedBuildsOnce(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join("..", "internal", "testguests", "noop")
	first, err := Cached(context.Background(), dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Cached(context.Background(), dir, cache)
	if err != nil || second != first {
		t.Fatalf("second build: %q %v, want the cached %q", second, err, first)
	}
	if st2, _ := os.Stat(second); !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("the cached module was rebuilt")
	}
}

// TestCachedOneBuildPerFolder builds one plugin folder spelled two ways, as
// a plugin's own tests (".") and other packages' tests (a path to it) do:
// one build, one file, named after the folder.
func TestCachedOneBuildPerFolder(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join("..", "internal", "testguests", "noop")
	first, err := Cached(context.Background(), dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	second, err := Cached(context.Background(), ".", cache)
	if err != nil {
		t.Fatal(err)
	}
	if second != first || !strings.HasPrefix(filepath.Base(first), "noop-") {
		t.Fatalf("the same folder built as %q and %q, want one file named after it", first, second)
	}
}

// TestRustBuild builds a Rust crate through the same entry points as a Go
// package: a module that imports only the ABI, a hash that is stable, and
// one that follows a change of a path dependency (the SDK) too.
func TestRustBuild(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join("..", "internal", "testguests", "rustnoop")
	if _, err := rustToolchain(); err != nil && os.Getenv("WEDGE_SKIP_RUST") != "" {
		t.Skipf("WEDGE_SKIP_RUST is set: %v", err)
	}
	cache := t.TempDir()
	path, err := Cached(ctx, dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(bin, []byte("\x00asm")) || len(bin) > 64<<10 {
		t.Fatalf("built %d bytes starting %q, want a small Wasm module", len(bin), bin[:min(len(bin), 4)])
	}
	again, err := Cached(ctx, dir, cache)
	if err != nil || again != path {
		t.Fatalf("second build %q %v, want the cached %q", again, err, path)
	}
	// Files of a local dependency count: copy the crate and the SDK, and
	// touch the SDK's copy.
	tmp := t.TempDir()
	copyTree(t, dir, filepath.Join(tmp, "wasm", "internal", "testguests", "rustnoop"))
	copyTree(t, filepath.Join("..", "..", "sdk", "rust"), filepath.Join(tmp, "sdk", "rust"))
	crate := filepath.Join(tmp, "wasm", "internal", "testguests", "rustnoop")
	before, err := SourceHash(ctx, crate)
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(tmp, "sdk", "rust", "src", "lib.rs")
	src, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, append(src, "\n// changed\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if after, err := SourceHash(ctx, crate); err != nil || after == before {
		t.Fatalf("hash after changing the SDK: %v (same: %v)", err, after == before)
	}
}

// TestRustBuildError shows the compiler's message.
func TestRustBuildError(t *testing.T) {
	if _, err := rustToolchain(); err != nil && os.Getenv("WEDGE_SKIP_RUST") != "" {
		t.Skipf("WEDGE_SKIP_RUST is set: %v", err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte("[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[lib]\ncrate-type = [\"cdylib\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src", "lib.rs"), []byte("pub fn f() -> i32 { \"not a number\" }\n"), 0o644)
	err := Build(context.Background(), dir, filepath.Join(dir, "out.wasm"))
	if err == nil || !strings.Contains(err.Error(), "mismatched types") {
		t.Fatalf("err = %v, want the compiler's mismatched types", err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	files, err := packageFiles(from, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRustSourceHashInputs changes, one at a time, inputs of a build that
// live outside the crate's own sources or look like build output: each
// must change the hash, or a rebuild would serve the old module.
func TestRustSourceHashInputs(t *testing.T) {
	if _, err := rustToolchain(); err != nil && os.Getenv("WEDGE_SKIP_RUST") != "" {
		t.Skipf("WEDGE_SKIP_RUST is set: %v", err)
	}
	sdk, err := filepath.Abs(filepath.Join("..", "..", "sdk", "rust"))
	if err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	crate := filepath.Join(ws, "plug")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(ws, "Cargo.toml"), "[workspace]\nmembers = [\"plug\"]\n")
	write(filepath.Join(crate, "Cargo.toml"), "[package]\nname = \"plug\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[lib]\ncrate-type = [\"cdylib\"]\n[dependencies]\nwedge = { path = \""+sdk+"\" }\n")
	write(filepath.Join(crate, "src", "lib.rs"), "mod target;\n")
	write(filepath.Join(crate, "src", "target", "mod.rs"), "pub fn f() {}\n")
	hash := func() string {
		t.Helper()
		h, err := SourceHash(context.Background(), crate)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	prev := hash()
	for _, change := range []struct{ what, path, content string }{
		{"the workspace's manifest", filepath.Join(ws, "Cargo.toml"), "[workspace]\nmembers = [\"plug\"]\n[profile.release]\nopt-level = 1\n"},
		{"a source folder named target", filepath.Join(crate, "src", "target", "mod.rs"), "pub fn g() {}\n"},
		{"a cargo configuration above the crate", filepath.Join(ws, ".cargo", "config.toml"), "[build]\nrustflags = []\n"},
	} {
		write(change.path, change.content)
		if h := hash(); h == prev {
			t.Errorf("changing %s left the hash as it was", change.what)
		} else {
			prev = h
		}
	}
}
