// Package edgetest runs an edge node for one test, in the manner of
// net/http/httptest: a real edge.Node serving on a loopback port, with its
// admin handler on an httptest.Server, shut down when the test ends.
//
// Plugins compile through the compilation cache the module's tests share
// (wasmbuild.CompilationCacheDir), so a node that loads the plugins
// another test loaded starts in milliseconds rather than seconds.
//
// Overload shedding is off unless the config has an overload block: a
// test's clients run in the node's own process, so a test that floods the
// node keeps its CPU behind, which the node rightly sheds, and a test not
// about overload would fail on the 503s.
package edgetest

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/wasm/wasmbuild"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// Node is an edge node that [Start] or [StartWith] started.
type Node struct {
	*edge.Node
	// Addr is the host:port it serves on, on 127.0.0.1.
	Addr string
	// Admin serves the node's admin handler (metrics, purge, reload).
	Admin *httptest.Server
}

// Start runs a node on the YAML config, on a new loopback port, until the
// test ends. Relative paths in the config are from a temporary directory.
func Start(t testing.TB, doc string) *Node {
	t.Helper()
	return StartWith(t, doc, edge.Options{}, nil)
}

// StartWith is [Start] with opts (whose CompilationCache it sets to the
// tests' shared one), serving on ln; a nil ln is a new loopback port.
func StartWith(t testing.TB, doc string, opts edge.Options, ln net.Listener) *Node {
	t.Helper()
	cfg, err := edge.ParseConfig([]byte(doc), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if yaml.Unmarshal([]byte(doc), &keys) == nil && keys["overload"] == nil {
		cfg.Overload.Off = true
	}
	opts.CompilationCache = wasmbuild.CompilationCacheDir()
	n, err := edge.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			n.Shutdown(context.Background())
			t.Fatal(err)
		}
	}
	go n.Serve(ln)
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	tn := &Node{Node: n, Addr: ln.Addr().String(), Admin: httptest.NewServer(n.AdminHandler(nil))}
	t.Cleanup(tn.Admin.Close)
	return tn
}

// ModuleFile is the plugin (or test guest) whose Go sources are in dir,
// built to a file NAME.wasm, NAME being the folder's: a chain step without
// a name takes its file's. The file links to the build cache's, so a
// test's temporary directory holds no copy of a module of megabytes.
func ModuleFile(t testing.TB, dir string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), filepath.Base(dir)+".wasm")
	if err := os.Symlink(wasmtest.BuildFile(t, dir), f); err != nil {
		t.Fatal(err)
	}
	return f
}
