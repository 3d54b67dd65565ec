package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/internal/testutil"
)

// TestUpPluginFlagsRefused: up checks its plugin flags before it starts
// anything.
func TestUpPluginFlagsRefused(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "one", "greeter"), filepath.Join(tmp, "two", "greeter")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--plugin", filepath.Join(tmp, "missing")}, "not a folder"},
		{[]string{"--plugin", file}, "not a folder"},
		{[]string{"--plugin", a, "--plugin", b}, "both are named greeter"},
		{[]string{"--plugin", a, "--chain", "cache"}, "-chain leaves out greeter"},
		{[]string{"--plugin", a, "--chain", "greeter,nope"}, `unknown plugin "nope"`},
		{[]string{"--plugin", a, "--plugin-config", "greeter"}, "want NAME=JSON"},
		{[]string{"--plugin", a, "--plugin-config", "other={}"}, "no plugin other in the chain"},
		{[]string{"--plugin", a, "--plugin-config", "greeter={"}, "--plugin-config greeter:"},
		{[]string{"--plugin", a, "--regions", "eu-west,us-east"}, "leave out one of them"},
		{[]string{"--plugin", a, "--log-level", "loud"}, `--log-level "loud"`},
	} {
		err := run(context.Background(), append([]string{"up", "--nats", "127.0.0.1:0"}, c.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("up %q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}

func TestIgnored(t *testing.T) {
	for _, c := range []struct {
		path       string
		rust, want bool
	}{
		{"/p/greeter", true, false},
		{"/p/greeter/main.go", false, false},
		{"/p/greeter/src/lib.rs", true, false},
		{"/p/greeter/src/target/x.rs", true, false}, // only the crate's own target/
		{"/p/greeter/target/debug/x", true, true},
		{"/p/greeter/target", true, true},
		{"/p/greeter/target", false, false}, // a Go plugin's package
		{"/p/greeter/target/target.go", false, false},
		{"/p/greeter/.git/index", false, true},
		{"/p/greeter/.main.go.swp", false, true},
		{"/p/greeter/src/.#lib.rs", true, true},
		{"/p/greeter/internal/x/util.go", false, false},
	} {
		p := &chainPlugin{dir: filepath.FromSlash("/p/greeter"), rust: c.rust}
		if got := p.ignored(filepath.FromSlash(c.path)); got != c.want {
			t.Errorf("ignored(%s) in a Rust crate %t = %t, want %t", c.path, c.rust, got, c.want)
		}
	}
}

// TestBuildSameModule: a save that leaves the module as it was (a
// comment) is no new version, though its source hash, and so the build
// cache's file, is new.
func TestBuildSameModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin twice")
	}
	dir := filepath.Join(t.TempDir(), "same")
	ctx := context.Background()
	if err := run(ctx, []string{"plugin", "new", "same", dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	p := &chainPlugin{name: "same", dir: dir, dev: true, cache: cache}
	if changed, err := p.build(ctx); err != nil || !changed || p.version != "dev-1" {
		t.Fatalf("first build: changed %t, %s, %v; want dev-1", changed, p.version, err)
	}
	edit(t, filepath.Join(dir, "main.go"), func(s string) string {
		return strings.Replace(s, "func main() {}", "func main() {} // a plugin is a library", 1)
	})
	if changed, err := p.build(ctx); err != nil || changed || p.version != "dev-1" {
		t.Errorf("a comment: changed %t, %s, %v; want dev-1 still", changed, p.version, err)
	}
	if built, _ := filepath.Glob(filepath.Join(cache, "same-*.wasm")); len(built) != 2 {
		t.Errorf("builds in the cache: %v, want one per source", built)
	}
}

// TestWatchNewFolder: a folder made while up runs is watched too, and a
// change to a package in it rebuilds the plugin. The edge is left out:
// reload records the chains it is handed.
func TestWatchNewFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin three times")
	}
	dir := filepath.Join(t.TempDir(), "watched")
	ctx := context.Background()
	if err := run(ctx, []string{"plugin", "new", "watched", dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	p := &chainPlugin{name: "watched", dir: dir, dev: true, config: "{}"}
	if _, err := p.build(ctx); err != nil {
		t.Fatal(err)
	}
	var reloads testutil.SyncBuffer
	reload := func(chain []*chainPlugin) error {
		fmt.Fprintln(&reloads, chain[0].version)
		return nil
	}
	out := new(testutil.SyncBuffer)
	stop, err := watchPlugins(ctx, []*chainPlugin{p}, reload, out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// main.go uses a package in a new folder: dev-2.
	write(filepath.Join(dir, "greet", "greet.go"), "package greet\n\nconst Word = \"Hello\"\n")
	edit(t, filepath.Join(dir, "main.go"), func(s string) string {
		s = strings.Replace(s, "import (\n", "import (\n\t\"plugins/watched/greet\"\n", 1)
		return strings.Replace(s, `p.greeting = "Hello from `, `p.greeting = greet.Word + " from `, 1)
	})
	testutil.Eventually(t, hangGuard, "dev-2", func() bool { return strings.Contains(out.String(), "rebuilt watched (dev-2)") })
	// A change in the new folder alone: dev-3.
	write(filepath.Join(dir, "greet", "greet.go"), "package greet\n\nconst Word = \"Hi\"\n")
	testutil.Eventually(t, hangGuard, "dev-3", func() bool { return strings.Contains(out.String(), "rebuilt watched (dev-3)") })
	if got := reloads.String(); got != "dev-2\ndev-3\n" {
		t.Errorf("reloads: %q, want dev-2 then dev-3\nup printed:\n%s", got, out)
	}
}
