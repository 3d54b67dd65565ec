package main

import (
	"context"
	"errors"
	"go/format"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// fakeCheckout is a folder that findCheckout takes for a Wedge checkout.
func fakeCheckout(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module github.com/talowa/wedge\n\ngo 1.26.8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPluginNewRefuses(t *testing.T) {
	tmp := t.TempDir()
	full := filepath.Join(tmp, "full", "x")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	sdk := fakeCheckout(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"Hello"}, `name "Hello"`},
		{[]string{"1st"}, `name "1st"`},
		{[]string{"my_plugin"}, `name "my_plugin"`},
		{[]string{strings.Repeat("a", 33)}, "up to 31"},
		{[]string{}, "want NAME [PARENT/NAME]"},
		{[]string{"a", "b", "c"}, "want NAME [PARENT/NAME]"},
		{[]string{"--lang", "cobol", "x"}, "no template for --lang cobol"},
		{[]string{"--sdk", sdk, "x", full}, "is not empty"},
		{[]string{"--sdk", sdk, "x", filepath.Join(tmp, "y")}, "the folder must be named x"},
		{[]string{"--sdk", tmp, "x", filepath.Join(tmp, "x")}, "--sdk " + tmp + ": no go.mod of github.com/talowa/wedge"},
	} {
		err := run(context.Background(), append([]string{"plugin", "new"}, c.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("plugin new %q: %v, want an error with %q", c.args, err, c.want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(full, "notes.txt")); err != nil || string(b) != "mine" {
		t.Errorf("the non-empty folder was touched: %q %v", b, err)
	}
}

// TestPluginNewUndone: a plugin new that fails (here go mod tidy, with no
// module proxy and an empty module cache) removes what it wrote, so that
// the folder takes a second try: the folders it made, or what it wrote
// into an empty one.
func TestPluginNewUndone(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOMODCACHE", t.TempDir())
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "there", "x")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(tmp, "new", "parent", "x"), empty} {
		err := run(context.Background(), []string{"plugin", "new", "x", dir}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "go mod tidy") {
			t.Fatalf("plugin new x %s: %v, want go mod tidy's failure", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the folders plugin new made are left: %v", err)
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) > 0 {
		t.Errorf("the empty folder: %v %v, want it there and empty", entries, err)
	}
}

// TestPluginNewInCheckout: a plugin folder inside the checkout is a
// package of its module, so it gets no go.mod of its own.
func TestPluginNewInCheckout(t *testing.T) {
	sdk := fakeCheckout(t)
	dir := filepath.Join(sdk, "plugins", "my-plugin")
	out := new(strings.Builder)
	if err := run(context.Background(), []string{"plugin", "new", "--sdk", sdk, "my-plugin", dir}, out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"main.go", "plugin_test.go", "README.md"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "my-plugin") {
			t.Errorf("%s does not name the plugin:\n%s", f, b)
		}
		if !strings.Contains(out.String(), filepath.Join(dir, f)) {
			t.Errorf("plugin new did not print %s:\n%s", f, out)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("a plugin inside the checkout got a %s", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "README.md")); strings.Contains(string(b), "replace") {
		t.Errorf("the README of a plugin inside the checkout explains a replace:\n%s", b)
	}
}

// TestTemplatesRender renders every language's templates both ways: no
// missing data, Go files gofmt-clean, and the README in the sections the
// repository's plugins use.
func TestTemplatesRender(t *testing.T) {
	langs, err := fs.ReadDir(newPluginFS, "newplugin")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range langs {
		for _, inRepo := range []bool{false, true} {
			tree, err := fs.Sub(newPluginFS, "newplugin/"+lang.Name())
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			files, err := writeTemplates(tree, dir, templateData{Name: "my-plugin", Ident: "my_plugin", RepoRoot: "/src/wedge", InRepo: inRepo, GoVersion: "1.26.8"})
			if err != nil {
				t.Fatalf("%s: %v", lang.Name(), err)
			}
			// A Rust folder keeps its build output out of version control.
			if lang.Name() == "rust" && !slices.Contains(files, ".gitignore") {
				t.Errorf("rust: no .gitignore among %v", files)
			}
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "<no value>") || strings.HasSuffix(f, ".tmpl") {
					t.Errorf("%s/%s (in the checkout %t): not rendered:\n%s", lang.Name(), f, inRepo, b)
				}
				if strings.HasSuffix(f, ".go") {
					if formatted, err := format.Source(b); err != nil || string(formatted) != string(b) {
						t.Errorf("%s/%s is not gofmt-clean: %v", lang.Name(), f, err)
					}
				}
				if f == "README.md" {
					for _, section := range []string{"## Name", "## Description", "## Config", "## Examples"} {
						if !strings.Contains(string(b), "\n"+section+"\n") {
							t.Errorf("%s/README.md has no %q section", lang.Name(), section)
						}
					}
				}
			}
		}
	}
}

// TestPluginNewTests runs what plugin new wrote as its author would:
// `plugin run DIR /NAME`, the Wasm module in a runtime, and the template's
// own tests (for Go natively and as Wasm, for Rust natively with cargo
// test). The Wasm run goes first: without a Rust toolchain for Wasm it
// fails the test, or skips it where WEDGE_SKIP_RUST is set.
func TestPluginNewTests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests the new plugins")
	}
	for _, lang := range []string{"go", "rust"} {
		t.Run(lang, func(t *testing.T) {
			name := "tested-" + lang
			if lang == "go" {
				name = "main" // a name that cannot be a Go module path alone
			}
			dir := filepath.Join(t.TempDir(), name)
			ctx := context.Background()
			if err := run(ctx, []string{"plugin", "new", "--lang", lang, name, dir}, io.Discard); err != nil {
				t.Fatal(err)
			}
			out := new(testutil.SyncBuffer) // the module logs its close after run returns
			err := run(ctx, []string{"plugin", "run", dir, "/" + name}, out)
			if errors.Is(err, wasmbuild.ErrNoRust) && os.Getenv("WEDGE_SKIP_RUST") != "" {
				t.Skipf("WEDGE_SKIP_RUST is set: %v", err)
			}
			if err != nil {
				t.Fatalf("plugin run: %v\n%s", err, out)
			}
			for _, want := range []string{"-> 200 in ", "(answered by the plugin)", "X-" + name + ": 1\n", "\nHello from " + name + "!\n"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("plugin run printed no %q:\n%s", want, out)
				}
			}
			cmd := exec.Command("go", "test", "./...")
			if lang == "rust" {
				cmd = exec.Command("cargo", "test", "--offline")
			}
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s in %s: %v\n%s", cmd, dir, err, out)
			}
		})
	}
}

// TestRustTemplateAnswerNoAlloc: the Rust template's on_request, the
// pattern an author copies for the hot path, neither allocates (the answer
// is made in configure) nor logs on every request.
func TestRustTemplateAnswerNoAlloc(t *testing.T) {
	b, err := fs.ReadFile(newPluginFS, "newplugin/rust/src/lib.rs.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	_, hot, ok := strings.Cut(string(b), "fn on_request(")
	hot, _, _ = strings.Cut(hot, "\n    }\n")
	if !ok || !strings.Contains(hot, "answer_text") {
		t.Fatalf("no on_request answering in the Rust template:\n%s", b)
	}
	for _, bad := range []string{"clone()", "to_vec()", "push(", "vec!", "format!", "String", "Vec::", "wedge::debug", "wedge::log", "wedge::info"} {
		if strings.Contains(hot, bad) {
			t.Errorf("the Rust template's on_request has %s:\n%s", bad, hot)
		}
	}
}

// editedPlugin makes a Go plugin called name with plugin new, with old
// replaced by new in its main.go, and returns its folder; a template
// without old fails the test.
func editedPlugin(t *testing.T, name, old, new string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := run(context.Background(), []string{"plugin", "new", name, dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), old, new, 1)
	if edited == string(src) {
		t.Fatalf("the template changed: no %q in its main.go", old)
	}
	if err := os.WriteFile(main, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inOrder fails the test unless out holds each of want, in that order.
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Errorf("no %q after byte %d of:\n%s", w, at, out)
			return
		}
		at += i + len(w)
	}
}

// TestPluginRunFailure: `plugin run` on a plugin that panics says the host
// answered, not the plugin, and prints the error, then the Go panic and
// its stack, then the wasm stack trace, as up's log does. Before, it said
// "(answered by the plugin)" and glued the panic after the trace.
func TestPluginRunFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	dir := editedPlugin(t, "crashing", "\tp.answered.Record(1)\n", "\tpanic(\"crashing on purpose\")\n")
	out := new(testutil.SyncBuffer)
	if err := run(context.Background(), []string{"plugin", "run", dir, "/crashing"}, out); err == nil {
		t.Fatalf("plugin run of a plugin that panics: no error\n%s", out)
	}
	got := out.String()
	if strings.Contains(got, "answered by the plugin") || !strings.Contains(got, "(the plugin failed; the host answered)") {
		t.Errorf("plugin run says the plugin answered, or not that it failed:\n%s", got)
	}
	inOrder(t, got, "# error (trap): wasm: plugin crashing@dev: request: trap", "panic: crashing on purpose", "wasm stack trace:")
}

// TestPluginRunShowsTheOrigin: `plugin run` prints the request the origin
// got, after the plugin rewrote it, and how a forwarded value reaches the
// application; a plugin whose Configure panics fails to load with the
// panic before the wasm stack trace. Before, a rewrite could not be seen
// without an application of one's own, and a load failure was one line
// with the panic glued after the trace.
func TestPluginRunShowsTheOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins")
	}
	ctx := context.Background()
	dir := editedPlugin(t, "rewriter", "\tif req.Method() != \"GET\" || req.Path() != \"/rewriter\" {\n",
		"\tif req.Path() == \"/v1/x\" {\n\t\treq.SetPath(\"/api/x\")\n\t\treq.Header().Set(\"X-Seen\", \"1\")\n\t\treq.Forward(\"user\", \"alice\")\n\t}\n"+
			"\tif req.Method() != \"GET\" || req.Path() != \"/rewriter\" {\n")
	out := new(testutil.SyncBuffer)
	if err := run(ctx, []string{"plugin", "run", dir, "/v1/x?a=1"}, out); err != nil {
		t.Fatalf("plugin run: %v\n%s", err, out)
	}
	for _, want := range []string{"# the origin got: GET /api/x?a=1 (host localhost)\n", "#   X-Seen: 1\n",
		"# value user = alice (the application gets it as the header Wedge-Value-user)\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plugin run printed no %q:\n%s", want, out)
		}
	}

	dir = editedPlugin(t, "unloadable", "\tp.greeting = \"Hello from unloadable\"\n", "\tpanic(\"configure on purpose\")\n")
	out = new(testutil.SyncBuffer)
	if err := run(ctx, []string{"plugin", "run", dir, "/x"}, out); err == nil || !strings.Contains(err.Error(), "failed to load") {
		t.Fatalf("plugin run of a plugin whose Configure panics: %v\n%s", err, out)
	}
	inOrder(t, out.String(), "# error (trap): ", "panic: configure on purpose", "wasm stack trace:")
}

// TestPluginRunArgs: `plugin run` runs a module built before, given its
// .wasm file (it ran `go build` in it, and said "not a directory"), and
// refuses a method that is not one and a path without its /.
func TestPluginRunArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	ctx := context.Background()
	bin, err := wasmbuild.Cached(ctx, "../../../plugins/cache", wasmbuild.DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	out := new(testutil.SyncBuffer)
	if err := run(ctx, []string{"plugin", "run", bin, "/a"}, out); err != nil || !strings.Contains(out.String(), "-> 200 in ") {
		t.Fatalf("plugin run of a .wasm file: %v\n%s", err, out)
	}
	for _, args := range [][]string{{bin, "GET /a", "/a"}, {bin, "a"}} {
		if err := run(ctx, append([]string{"plugin", "run"}, args...), io.Discard); err == nil || !strings.Contains(err.Error(), "want DIR [METHOD] PATH") {
			t.Errorf("plugin run %q: %v", args, err)
		}
	}
}
