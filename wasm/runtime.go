package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	ccache    wazero.CompilationCache
	wasiFuncs map[string]bool
	metrics   *metrics
	fams      *host.MetricFamilies
	verify    *host.VerifyCache
	log       *slog.Logger

	mu           sync.Mutex
	closed       bool // no more loads
	engineClosed bool
	loads        sync.WaitGroup // loads in progress
	modules      map[*Module]struct{}
}

// NewRuntime starts a runtime.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	rcfg := wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(cfg.memoryLimit)
	var ccache wazero.CompilationCache
	if cfg.cacheDir != "" {
		var err error
		if ccache, err = wazero.NewCompilationCacheWithDir(cfg.cacheDir); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache %s: %w", cfg.cacheDir, err)
		}
		rcfg = rcfg.WithCompilationCache(ccache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rcfg)
	r := &Runtime{
		cfg:     cfg,
		rt:      rt,
		ccache:  ccache,
		fams:    host.NewMetricFamilies(cfg.registerer),
		verify:  host.NewVerifyCache(cfg.verifyCacheSize),
		log:     cfg.logger,
		modules: map[*Module]struct{}{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if r.metrics, err = newMetrics(cfg.registerer); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	wasi := wasi_snapshot_preview1.NewBuilder(rt)
	wasiCompiled, err := wasi.Compile(ctx)
	if err == nil {
		_, err = rt.InstantiateModule(ctx, wasiCompiled, wazero.NewModuleConfig())
	}
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	r.wasiFuncs = map[string]bool{}
	for name := range wasiCompiled.ExportedFunctions() {
		r.wasiFuncs[name] = true
	}
	if err := r.instantiateHost(ctx); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return r, nil
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
func (r *Runtime) instantiateHost(ctx context.Context) error {
	b := r.rt.NewHostModuleBuilder(abi.HostModule)
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

// Close closes every module loaded from r, waiting for loads in progress
// and for requests holding modules to release them, then the engine. If ctx
// ends first, Close returns an error and leaves the engine running (closing
// it would unmap memory under a running guest); calling Close again waits
// again.
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
		return fmt.Errorf("wasm: close: a plugin is still loading: %w", ctx.Err())
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
	if r.ccache != nil {
		err = errors.Join(err, r.ccache.Close(ctx))
	}
	return err
}

func (r *Runtime) forget(m *Module) {
	r.mu.Lock()
	delete(r.modules, m)
	r.mu.Unlock()
}
