package wasm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// Runtime hosts plugins: one wazero runtime with the wedge host module and
// WASI, and the metrics and caches its plugins share. Safe for concurrent
// use.
type Runtime struct {
	cfg       Config
	rt        wazero.Runtime
	ccache    *sharedCache // nil without a compilation cache
	wasiFuncs map[string]bool
	metrics   *metrics
	fams      *host.MetricFamilies
	verify    *host.VerifyCache
	log       *slog.Logger

	// mu, sharedCaches.mu and each sharedCache's mu are leaves: none is
	// held while taking another, or across a compile or a wait. plainMu
	// is held while the plain engine starts.
	mu           sync.Mutex
	closed       bool // no more loads or validations
	engineClosed bool
	loads        sync.WaitGroup // loads and validations in progress: compiles
	modules      map[*Module]struct{}

	// plain is an engine without the compilation cache, started at the
	// cache's first failure (see compile).
	plainMu sync.Mutex
	plain   wazero.Runtime
}

// NewRuntime starts a runtime. Runtimes of one process given the same
// compilation cache directory share the compiled code (see sharedCache). A
// cache directory that cannot be used is logged and the runtime runs
// without it: a cache is never why a node does not start.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	r := &Runtime{
		cfg:     cfg,
		fams:    host.NewMetricFamilies(cfg.registerer),
		verify:  host.NewVerifyCache(verifyCacheEntries),
		log:     cfg.logger,
		modules: map[*Module]struct{}{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if r.metrics, err = newMetrics(cfg.registerer); err != nil {
		return nil, err
	}
	rcfg := wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(cfg.memoryLimit)
	if cfg.cacheDir != "" {
		if r.ccache, err = openSharedCache(cfg.cacheDir); err != nil {
			r.log.Warn("wasm: compilation cache unusable, compiling without it", "dir", cfg.cacheDir, "err", err)
		} else {
			rcfg = rcfg.WithCompilationCache(r.ccache.cache)
		}
	}
	if r.rt, r.wasiFuncs, err = newEngine(ctx, rcfg); err != nil {
		if r.ccache != nil {
			r.ccache.release(ctx)
		}
		return nil, err
	}
	return r, nil
}

// newEngine starts a wazero runtime with WASI and the wedge host module,
// and names WASI's functions.
func newEngine(ctx context.Context, rcfg wazero.RuntimeConfig) (wazero.Runtime, map[string]bool, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, rcfg)
	wasi := wasi_snapshot_preview1.NewBuilder(rt)
	wasiCompiled, err := wasi.Compile(ctx)
	if err == nil {
		_, err = rt.InstantiateModule(ctx, wasiCompiled, wazero.NewModuleConfig())
	}
	if err != nil {
		rt.Close(ctx)
		return nil, nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	wasiFuncs := map[string]bool{}
	for name := range wasiCompiled.ExportedFunctions() {
		wasiFuncs[name] = true
	}
	if err := instantiateHost(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, nil, err
	}
	return rt, wasiFuncs, nil
}

// plainEngine returns the engine without a compilation cache, starting it
// on first use.
func (r *Runtime) plainEngine(ctx context.Context) (wazero.Runtime, error) {
	r.plainMu.Lock()
	defer r.plainMu.Unlock()
	if r.plain == nil {
		rt, _, err := newEngine(ctx, wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(r.cfg.memoryLimit))
		if err != nil {
			return nil, err
		}
		r.plain = rt
	}
	return r.plain, nil
}

func valueType(t abi.Type) api.ValueType {
	switch t {
	case abi.I64:
		return api.ValueTypeI64
	case abi.F64:
		return api.ValueTypeF64
	}
	return api.ValueTypeI32
}

// instantiateHost builds the wedge host module from abi.Funcs, so its names
// and signatures cannot drift from the spec.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.HostModule)
	for _, f := range abi.Funcs {
		fn, ok := hostFuncs[f.Name]
		if !ok {
			return fmt.Errorf("wasm: no adapter for host function %s", f.Name)
		}
		var params []api.ValueType
		var names []string
		for _, p := range f.WasmParams() {
			params = append(params, valueType(p.Type))
			names = append(names, p.Name)
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(fn, params, []api.ValueType{valueType(f.Result)}).
			WithParameterNames(names...).
			Export(f.Name)
	}
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(yield), nil, nil).Export(abi.HostYield)
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("wasm: instantiate host module: %w", err)
	}
	return nil
}

// Close closes every module loaded from r, waiting for loads and
// validations in progress (their compiles use the engine) and for requests
// holding modules to release them, then the engine. Loads and validations
// that start after Close return ErrClosed. If ctx ends first, Close returns
// an error and leaves the engine running (closing it would unmap memory
// under a running guest); calling Close again waits again.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	done := r.engineClosed
	r.mu.Unlock()
	if done {
		return nil
	}
	loaded := make(chan struct{})
	go func() { r.loads.Wait(); close(loaded) }()
	select {
	case <-loaded:
	case <-ctx.Done():
		return fmt.Errorf("wasm: close: a plugin is still loading or compiling: %w", ctx.Err())
	}
	r.mu.Lock()
	mods := make([]*Module, 0, len(r.modules))
	for m := range r.modules {
		mods = append(mods, m)
	}
	r.mu.Unlock()
	for _, m := range mods {
		m.Close()
	}
	for _, m := range mods {
		select {
		case <-m.done:
		case <-ctx.Done():
			return fmt.Errorf("wasm: close: plugin %s@%s still in use: %w", m.spec.Name, m.spec.Version, ctx.Err())
		}
	}
	r.mu.Lock()
	done, r.engineClosed = r.engineClosed, true
	r.mu.Unlock()
	if done {
		return nil
	}
	err := r.rt.Close(ctx)
	r.plainMu.Lock()
	if r.plain != nil {
		err = errors.Join(err, r.plain.Close(ctx))
	}
	r.plainMu.Unlock()
	if r.ccache != nil {
		err = errors.Join(err, r.ccache.release(ctx))
	}
	return err
}

// sharedCache is the wazero compilation cache of one directory, shared by
// every Runtime of the process that names the directory. Runtimes sharing
// a wazero cache share its engine: code one of them compiled is in memory
// for the others. And compiles of one module wait for each other instead of
// running side by side, which wazero leaves to its embedder (see
// wazero.CompilationCache): several nodes in one process (tests, a local
// fleet) that all load or prefetch a new plugin version compile it once.
type sharedCache struct {
	dir   string
	cache wazero.CompilationCache
	refs  int // guarded by sharedCaches.mu

	mu        sync.Mutex
	compiling map[[sha256.Size]byte]chan struct{} // closed when that compile ends
}

var sharedCaches = struct {
	mu sync.Mutex
	m  map[string]*sharedCache
}{m: map[string]*sharedCache{}}

// openSharedCache takes a reference to dir's cache, opening it if no
// runtime holds it.
func openSharedCache(dir string) (*sharedCache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	sharedCaches.mu.Lock()
	defer sharedCaches.mu.Unlock()
	if c := sharedCaches.m[abs]; c != nil {
		c.refs++
		return c, nil
	}
	cc, err := wazero.NewCompilationCacheWithDir(abs)
	if err != nil {
		return nil, err
	}
	c := &sharedCache{dir: abs, cache: cc, refs: 1, compiling: map[[sha256.Size]byte]chan struct{}{}}
	sharedCaches.m[abs] = c
	return c, nil
}

// release gives a reference back; the last one closes the engine. A
// runtime releases only after its own compiles have ended, so the last
// release closes an engine no compile uses.
func (c *sharedCache) release(ctx context.Context) error {
	sharedCaches.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last {
		delete(sharedCaches.m, c.dir)
	}
	sharedCaches.mu.Unlock()
	if !last {
		return nil
	}
	return c.cache.Close(ctx)
}

// claim waits until no compile of bin runs in any runtime sharing c, then
// marks one running; the caller calls done when it has ended. The compile
// that waited then finds the code in the engine's memory. Like a compile
// (wazero's does not look at its context), the wait does not end with a
// context: the compile it waits for bounds it.
func (c *sharedCache) claim(bin []byte) (done func()) {
	key := sha256.Sum256(bin)
	for {
		c.mu.Lock()
		running, busy := c.compiling[key]
		if !busy {
			ch := make(chan struct{})
			c.compiling[key] = ch
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				delete(c.compiling, key)
				c.mu.Unlock()
				close(ch)
			}
		}
		c.mu.Unlock()
		<-running
	}
}

func (r *Runtime) forget(m *Module) {
	r.mu.Lock()
	delete(r.modules, m)
	r.mu.Unlock()
}
