// Package wasmtest runs .wasm plugins in tests: ours and plugin authors'.
// It builds a plugin folder (once per source state, cached on disk), loads it
// into a real runtime with in-memory stores, and runs requests through it:
// see the package Example, and plugins/hello's tests, which run the same
// cases natively (sdk/sdktest) and as Wasm here.
package wasmtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// Build builds the plugin in dir (cached by source hash) and returns the
// module bytes.
func Build(t testing.TB, dir string) []byte {
	t.Helper()
	bin, err := os.ReadFile(BuildFile(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildFile builds the plugin in dir (cached by source hash) and returns
// the path of the module file, for configurations that name one. The file
// is the build cache's: it is never written again, only replaced whole.
// A Rust plugin on a machine without a wasm32 Rust toolchain fails the
// test, or skips it where WEDGE_SKIP_RUST is set.
func BuildFile(t testing.TB, dir string) string {
	t.Helper()
	path, err := wasmbuild.Cached(context.Background(), dir, wasmbuild.DefaultCacheDir())
	if errors.Is(err, wasmbuild.ErrNoRust) && os.Getenv("WEDGE_SKIP_RUST") != "" {
		t.Skipf("WEDGE_SKIP_RUST is set: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// NewRuntime starts a runtime with cfg plus the shared compilation cache and
// closes it when t ends.
func NewRuntime(t testing.TB, cfg wasm.Config) *wasm.Runtime {
	t.Helper()
	rt, err := wasm.NewRuntime(context.Background(), cfg.WithCompilationCache(wasmbuild.CompilationCacheDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// Plugin is a loaded plugin with an origin to send unanswered requests to.
type Plugin struct {
	*wasm.Module
	// Origin answers requests the plugin did not; the default is 200 with an
	// empty body.
	Origin func(*host.Request) host.Response
}

// Load builds the plugin in dir and loads it with config into a runtime
// with a 64 MiB cache and a rate limiter.
func Load(t testing.TB, dir string, config []byte) *Plugin {
	t.Helper()
	cfg := wasm.NewConfig().WithPoolSize(2).WithStores(host.NewMemCache(64<<20), host.NewGCRA(1<<16))
	return LoadSpec(t, NewRuntime(t, cfg), wasm.Spec{
		Name: filepath.Base(absDir(t, dir)), Version: "test", Binary: Build(t, dir), Config: config,
	})
}

// LoadSpec loads spec into rt.
func LoadSpec(t testing.TB, rt *wasm.Runtime, spec wasm.Spec) *Plugin {
	t.Helper()
	m, err := rt.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return &Plugin{Module: m, Origin: func(*host.Request) host.Response { return host.Response{Status: 200} }}
}

// Do runs one request: request phase, Origin unless answered, response
// phase, then any background revalidation (host.Run, Result.Background).
// A request, or an Origin's response, with Streamed set stands for one
// whose body streams through the edge (host.Request.Streamed).
func (p *Plugin) Do(req host.Request) *host.Result {
	return host.Run(req, p.OnRequest, p.Origin, p.OnResponse)
}

func absDir(t testing.TB, dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
