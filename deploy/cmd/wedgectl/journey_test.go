package main

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
)

// TestJourney is issue 15's plugin author, from an empty folder outside
// the repository to their plugin changing in a running edge, in each
// language: `plugin new`, `up --plugin`, the plugin's answer, a saved
// change answered with no restart, and a change that does not compile:
// its error printed and the previous version still serving. It logs the
// times the issue asks about (first answer under 60 s on a warm build
// cache, a change seen within 5 s); they are not asserted, as a busy
// machine would break that.
//
// The templates' contract it relies on: the plugin answers GET /NAME
// with "Hello from NAME!", from a source file that says "Hello from ".
func TestJourney(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins and runs the local stack")
	}
	for _, lang := range []string{"go", "rust"} {
		t.Run(lang, func(t *testing.T) { journey(t, lang, "my-first-"+lang) })
	}
}

func journey(t *testing.T, lang, name string) {
	// Outside the checkout, as an author's folder is: plugin new finds the
	// checkout from the test binary's source path, as from wedgectl's.
	t.Chdir(t.TempDir())
	// Empty caches of built and compiled plugins, and Go's build cache
	// kept: the times logged are those of an author's new plugin on a warm
	// build cache, not of a module built by an earlier run.
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	start := time.Now()
	out := new(testutil.SyncBuffer)
	if err := run(context.Background(), []string{"plugin", "new", "--lang", lang, name}, out); err != nil {
		t.Fatalf("plugin new: %v\n%s", err, out)
	}
	t.Logf("plugin new:\n%s", out)
	if lang == "go" {
		for _, f := range []string{"go.mod", "README.md"} {
			if !strings.Contains(readFile(t, filepath.Join(name, f)), "replace github.com/talowa/wedge => ") {
				t.Fatalf("%s of a plugin outside the checkout does not give the replace:\n%s", f, readFile(t, filepath.Join(name, f)))
			}
		}
	}

	u := startUp(t, "--plugin", name, "--listen", "127.0.0.1:0", "--nats", "127.0.0.1:0", "--status", "")
	out = u.out
	defer func() { t.Logf("up printed:\n%s", out) }()
	addr := u.await(t, "up printing its edge", regexp.MustCompile(`edge http://(\S+) `))[1]
	// The body, and the versions that served it (up turns the edge's
	// served_header on).
	get := func() (string, string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/" + name)
		if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		return string(resp.Body()), string(resp.Header.Peek("Wedge-Served"))
	}
	if body, served := get(); body != "Hello from "+name+"!\n" || served != name+"@dev-1" {
		t.Fatalf("GET /%s: %q served by %q, want the plugin's answer by %s@dev-1\n%s", name, body, served, name, out)
	}
	t.Logf("plugin new -> first answer: %v", time.Since(start).Round(100*time.Millisecond))

	// A saved change: answered by the same edge, swapped in as dev-2.
	src := greetingSource(t, name)
	edit(t, src, func(s string) string { return strings.Replace(s, `"Hello from `, `"Hi from `, 1) })
	saved := time.Now()
	testutil.Eventually(t, hangGuard, "the changed answer", func() bool {
		body, served := get()
		return body == "Hi from "+name+"!\n" && served == name+"@dev-2"
	})
	t.Logf("save -> changed answer: %v", time.Since(saved).Round(10*time.Millisecond))
	// The edge may serve dev-2 before up has printed it.
	testutil.Eventually(t, hangGuard, "up printing the rebuild", func() bool {
		return strings.Contains(out.String(), "rebuilt "+name+" (dev-2) in ")
	})

	// A change that does not compile: the error printed, dev-2 serving.
	edit(t, src, func(s string) string { return s + "\nfn broken(\n" })
	testutil.Eventually(t, hangGuard, "the build failure printed", func() bool {
		return strings.Contains(out.String(), name+": build failed; still serving dev-2:")
	})
	if o := out.String(); !strings.Contains(o[strings.Index(o, "build failed"):], filepath.Base(src)) {
		t.Errorf("the build failure does not show the compiler's error in %s:\n%s", filepath.Base(src), o)
	}
	if body, served := get(); body != "Hi from "+name+"!\n" || served != name+"@dev-2" {
		t.Fatalf("after a failed build: %q served by %q, want dev-2's answer still", body, served)
	}

	// A change that builds but does not load (its configure fails): the
	// error printed, dev-2 serving.
	edit(t, src, func(s string) string {
		s, _, _ = strings.Cut(s, "\nfn broken(")
		if lang == "go" {
			return strings.Replace(s, "Configure(cfg []byte) error {", "Configure(cfg []byte) error {\n\treturn errors.New(\"not today\")", 1)
		}
		return strings.Replace(s, "-> Result<Features, Error> {", "-> Result<Features, Error> {\n        if true {\n            return Err(Error::Msg(\"not today\"));\n        }", 1)
	})
	testutil.Eventually(t, hangGuard, "the load failure printed", func() bool {
		return strings.Contains(out.String(), name+" (dev-3) does not load; still serving dev-2:")
	})
	if body, served := get(); body != "Hi from "+name+"!\n" || served != name+"@dev-2" {
		t.Fatalf("after a failed load: %q served by %q, want dev-2's answer still", body, served)
	}
	// Every save built a module, into up's own folder: none in the build
	// cache, which would grow with each.
	if built, _ := filepath.Glob(filepath.Join(cache, "wedge", "plugins", name+"-*")); len(built) > 0 {
		t.Errorf("up built %s into the build cache: %v", name, built)
	}
}

// greetingSource is the template's source file holding the greeting.
func greetingSource(t *testing.T, dir string) string {
	var found string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && found == "" && (strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".rs")) &&
			!strings.HasSuffix(path, "_test.go") && strings.Contains(readFile(t, path), `"Hello from `) {
			found = path
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no source file in %s says \"Hello from ", dir)
	}
	return found
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit saves a change to path as an editor does: the whole file written.
func edit(t *testing.T, path string, change func(string) string) {
	if err := os.WriteFile(path, []byte(change(readFile(t, path))), 0o644); err != nil {
		t.Fatal(err)
	}
}
