package main

import (
	"context"
	"go/format"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	full := filepath.Join(tmp, "full")
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
		{[]string{}, "want NAME [DIR]"},
		{[]string{"a", "b", "c"}, "want NAME [DIR]"},
		{[]string{"--lang", "cobol", "x"}, "no template for --lang cobol"},
		{[]string{"--sdk", sdk, "x", full}, "is not empty"},
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
