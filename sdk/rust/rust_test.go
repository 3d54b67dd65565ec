// Package rust_test checks the Rust SDK from Go: its example plugin
// (examples/hello) against the Go plugin with the same logic
// (plugins/hello), as Wasm and in a live edge node, and that the crate
// and the example compile without warnings on every Rust toolchain of the
// machine.
package rust_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmbuild"
	"github.com/talowa/wedge/wasm/wasmtest"
)

const (
	goHello   = "../../plugins/hello"
	rustHello = "examples/hello"
)

// outcome is what a client sees of one request, plus the request value
// the plugin set.
type outcome struct {
	Status                   int
	Body, XHello, CType, Val string
}

// helloCases are requests with the outcome both plugins must give: the Go
// plugin is the reference, and the literal outcome keeps a test that
// compares two broken plugins from passing.
var helloCases = []struct {
	config, method, target string
	want                   outcome
}{
	{"", "GET", "/hello?name=Ada", outcome{200, "Hello, Ada!\n", "Hello", "text/plain; charset=utf-8", "Ada"}},
	{"", "GET", "/hello", outcome{200, "Hello, world!\n", "Hello", "text/plain; charset=utf-8", "world"}},
	{"", "GET", "/hello?name=", outcome{200, "Hello, world!\n", "Hello", "text/plain; charset=utf-8", "world"}},
	{"", "GET", "/hello?x=1&name=A%64a+L&name=B", outcome{200, "Hello, Ada L!\n", "Hello", "text/plain; charset=utf-8", "Ada L"}},
	{"", "GET", "/hello?n%61me=%C3%A9", outcome{200, "Hello, é!\n", "Hello", "text/plain; charset=utf-8", "é"}},
	{"", "GET", "/hello?name=Ada&bad=%zz", outcome{200, "Hello, world!\n", "Hello", "text/plain; charset=utf-8", "world"}},
	{"", "GET", "/hello?name=Ada;x", outcome{200, "Hello, world!\n", "Hello", "text/plain; charset=utf-8", "world"}},
	{`{"greeting":"Hej \u00e5"}`, "GET", "/hello?name=Ada", outcome{200, "Hej å, Ada!\n", "Hej å", "text/plain; charset=utf-8", "Ada"}},
	{`{"greeting":"Hej"}`, "GET", "/other", outcome{201, "origin", "Hej", "", ""}},
	{`{"greeting":"Hej"}`, "POST", "/hello", outcome{201, "origin", "Hej", "", ""}},
	{`{"greeting":"Hej"}`, "GET", "/hello/", outcome{201, "origin", "Hej", "", ""}},
}

func origin(*host.Request) host.Response { return host.Response{Status: 201, Body: []byte("origin")} }

func run(t *testing.T, p *wasmtest.Plugin, method, target string) outcome {
	t.Helper()
	req := host.Request{Method: method, Path: target}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		req.Path, req.RawQuery = target[:i], target[i+1:]
	}
	res := p.Do(req)
	if res.RequestErr != nil || res.ResponseErr != nil {
		t.Fatal(res.RequestErr, res.ResponseErr)
	}
	o := outcome{Status: res.Resp.Status, Body: string(res.Resp.Body)}
	o.XHello, _ = res.Resp.Header.Get("X-Hello")
	o.CType, _ = res.Resp.Header.Get("Content-Type")
	v, _ := res.Vals.Get([]byte("hello.name"))
	o.Val = string(v)
	return o
}

// TestHelloAsWasmMatchesGo runs every case through the Go and the Rust
// hello, each loaded as Wasm into a real runtime.
func TestHelloAsWasmMatchesGo(t *testing.T) {
	loaded := map[string]*wasmtest.Plugin{}
	load := func(dir, config string) *wasmtest.Plugin {
		if p := loaded[dir+config]; p != nil {
			return p
		}
		p := wasmtest.Load(t, dir, []byte(config))
		p.Origin = origin
		loaded[dir+config] = p
		return p
	}
	for _, c := range helloCases {
		gp, rp := load(goHello, c.config), load(rustHello, c.config)
		g, r := run(t, gp, c.method, c.target), run(t, rp, c.method, c.target)
		if g != c.want {
			t.Errorf("%s %s with %s: Go hello %+v, want %+v", c.method, c.target, c.config, g, c.want)
		}
		if r != g {
			t.Errorf("%s %s with %s: Rust hello %+v, Go hello %+v", c.method, c.target, c.config, r, g)
		}
	}
}

// FuzzHelloQuery feeds query strings, untrusted bytes the Rust hello
// decodes with the SDK's query reader, to both hellos and wants the same
// outcome: the Go one reads them with net/url. Queries past the Rust
// plugin's documented 400-byte budget are not compared.
func FuzzHelloQuery(f *testing.F) {
	for _, c := range helloCases {
		if i := strings.IndexByte(c.target, '?'); i >= 0 {
			f.Add(c.target[i+1:])
		}
	}
	for _, q := range []string{"", "name", "name=%", "name=%4", "name=%41%", "&&name=x&&", "name=a=b", "=x&name=y", "name=%00", "name=+%2B+", "NAME=x", "name=x&name=", "a;b=c&name=x"} {
		f.Add(q)
	}
	gp, rp := wasmtest.Load(f, goHello, nil), wasmtest.Load(f, rustHello, nil)
	f.Fuzz(func(t *testing.T, q string) {
		if len(q) > 400 {
			t.Skip()
		}
		g, r := run(t, gp, "GET", "/hello?"+q), run(t, rp, "GET", "/hello?"+q)
		if g != r {
			t.Fatalf("query %q: Rust hello %+v, Go hello %+v", q, r, g)
		}
	})
}

// TestHelloRefusesBadConfigAsGo loads both with configurations they
// refuse, and wants the same load error.
func TestHelloRefusesBadConfigAsGo(t *testing.T) {
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1))
	loadErr := func(dir, config string) string {
		m, err := rt.Load(context.Background(), wasm.Spec{Name: "hello", Version: "v", Binary: wasmtest.Build(t, dir), Config: []byte(config)})
		if err == nil {
			m.Close()
			t.Fatalf("%s accepted config %s", dir, config)
		}
		if !errors.Is(err, wasm.ErrConfigure) {
			t.Fatalf("%s with config %s: %v, not a configure error", dir, config, err)
		}
		return err.Error()
	}
	for config, want := range map[string]string{
		`[1]`:               "hello: config is not a JSON object",
		`{"greeting":""}`:   "hello: greeting must be a non-empty string",
		`{"greeting":7}`:    "hello: greeting must be a non-empty string",
		`{"greeting":"\x"}`: "hello: config is not a JSON object",
	} {
		g, r := loadErr(goHello, config), loadErr(rustHello, config)
		if !strings.Contains(g, want) || !strings.Contains(r, want) {
			t.Errorf("config %s: Go hello %q, Rust hello %q, want both to say %q", config, g, r, want)
		}
	}
}

// TestHelloInEdge serves the cases through two live edge nodes, one with
// each hello in its chain, over real sockets.
func TestHelloInEdge(t *testing.T) {
	originAddr := origintest.Start(t, origintest.OK).Addr
	start := func(dir, config string) *edgetest.Node {
		if config == "" {
			config = "{}"
		}
		return edgetest.Start(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - name: hello
    path: /
    origin: app
    chain:
      - {file: %q, config: %s}
`, originAddr, origintest.Key.Text(), edgetest.ModuleFile(t, dir), config))
	}
	client := &http.Client{Timeout: time.Minute} // a hang guard
	do := func(n *edgetest.Node, method, target string) outcome {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+n.Addr+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return outcome{resp.StatusCode, string(b), resp.Header.Get("X-Hello"), resp.Header.Get("Content-Type"), ""}
	}
	nodes := map[string][2]*edgetest.Node{}
	answered := 0
	for _, c := range helloCases {
		pair, ok := nodes[c.config]
		if !ok {
			pair = [2]*edgetest.Node{start(goHello, c.config), start(rustHello, c.config)}
			nodes[c.config] = pair
		}
		g, r := do(pair[0], c.method, c.target), do(pair[1], c.method, c.target)
		if c.want.Status == 200 {
			answered++
			if g.Body != c.want.Body || g.XHello != c.want.XHello {
				t.Errorf("%s %s: Go hello in the edge %+v, want %+v", c.method, c.target, g, c.want)
			}
		} else if g.Status != 200 || g.XHello != c.want.XHello {
			// The test origin answers an empty 200.
			t.Errorf("%s %s: Go hello in the edge %+v, want the origin's 200 with X-Hello %q", c.method, c.target, g, c.want.XHello)
		}
		if r != g {
			t.Errorf("%s %s with %s: Rust hello in the edge %+v, Go hello %+v", c.method, c.target, c.config, r, g)
		}
	}
	// The Rust plugin's metric is the node's, like the Go one's.
	for _, n := range nodes {
		req, _ := http.NewRequest("GET", n[1].Admin.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "wedge_plugin_hello_greetings_total") {
			t.Fatalf("no hello greetings in the Rust node's metrics:\n%s", b)
		}
	}
	if answered == 0 {
		t.Fatal("no case was answered by the plugin")
	}
}

// needRust fails t for want of a Rust toolchain, or skips it where
// WEDGE_SKIP_RUST is set, as wasmtest.BuildFile does.
func needRust(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("WEDGE_SKIP_RUST") != "" {
		t.Skip("WEDGE_SKIP_RUST is set: " + why)
	}
	t.Fatal(why + " (set WEDGE_SKIP_RUST to skip the Rust tests)")
}

// toolchain is one of the machine's Rust toolchains: its cargo, and the
// targets it has a standard library for ("" is the host's).
type toolchain struct {
	cargo   string
	targets []string
}

// toolchains are the machine's Rust toolchains, one per sysroot: Debian's
// (/usr/bin) and the one on PATH (a rustup proxy is run by its own path:
// rustup picks the tool by the name it was run as).
func toolchains() []toolchain {
	var found []toolchain
	seen := map[string]bool{}
	paths := []string{"/usr/bin/cargo"}
	if p, err := exec.LookPath("cargo"); err == nil {
		paths = append(paths, p)
	}
	for _, cargo := range paths {
		out, err := exec.Command(filepath.Join(filepath.Dir(cargo), "rustc"), "--print", "sysroot").Output()
		sysroot := strings.TrimSpace(string(out))
		if err != nil || seen[sysroot] {
			continue
		}
		seen[sysroot] = true
		targets := []string{""}
		if _, err := os.Stat(filepath.Join(sysroot, "lib", "rustlib", wasmbuild.RustTarget)); err == nil {
			targets = append(targets, wasmbuild.RustTarget)
		}
		found = append(found, toolchain{cargo, targets})
	}
	return found
}

// TestCompilesWithoutWarnings checks the crate (with and without its
// features) and the example with every toolchain of the machine, for every
// target it has, with warnings as errors: Debian's rustc 1.63 (the
// crate's rust-version) and a current rustup one. On the host target it
// runs the example's native tests too.
func TestCompilesWithoutWarnings(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the crate several times")
	}
	tcs := toolchains()
	wasm32 := false
	for _, tc := range tcs {
		wasm32 = wasm32 || slices.Contains(tc.targets, wasmbuild.RustTarget)
	}
	if !wasm32 {
		needRust(t, "no Rust toolchain with the "+wasmbuild.RustTarget+" target on this machine")
	}
	t.Logf("toolchains and targets checked: %v", tcs)
	if len(tcs) == 1 {
		t.Logf("only one Rust toolchain: the other is not checked")
	}
	checks := []struct {
		dir      string
		features []string
	}{
		{".", nil},
		{".", []string{"--no-default-features"}},
		{".", []string{"--no-default-features", "--features", "panic-handler"}},
		{rustHello, nil},
	}
	for _, tc := range tcs {
		cargo := tc.cargo
		targetDir := filepath.Join(t.TempDir(), "target") // one per toolchain
		for _, target := range tc.targets {
			for _, c := range checks {
				// The example's native tests run where they can.
				verb := "check"
				if c.dir == rustHello && target == "" {
					verb = "test"
				}
				args := append([]string{verb, "--quiet"}, c.features...)
				if target != "" {
					args = append(args, "--target", target)
				}
				cmd := exec.Command(cargo, args...)
				cmd.Dir = c.dir
				bin := filepath.Dir(cargo)
				cmd.Env = append(os.Environ(), "RUSTC="+filepath.Join(bin, "rustc"), "RUSTDOC="+filepath.Join(bin, "rustdoc"),
					"RUSTFLAGS=-D warnings", "CARGO_TARGET_DIR="+targetDir)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s %s in %s: %v\n%s", cargo, strings.Join(args, " "), c.dir, err, out)
				}
			}
		}
	}
}
