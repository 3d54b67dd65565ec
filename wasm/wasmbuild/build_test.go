package wasmbuild

import (
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
