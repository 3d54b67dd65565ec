package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/internal/wasmbin"
)

// Spec describes one plugin version to load.
type Spec struct {
	// Name and Version identify the plugin in errors, logs and metrics.
	Name, Version string
	// Binary is the .wasm module.
	Binary []byte
	// Config is handed to the plugin's configure export.
	Config []byte
	// Policy is what a request gets when the plugin fails.
	Policy Policy
	// PoolSize, Timeout (the deadline of a call, in CPU time) and
	// MemoryLimit (bytes of linear memory per instance, rounded down to 64
	// KiB pages) override the runtime's defaults when non-zero. MemoryLimit
	// may only lower the runtime's; an instance is recycled past 3/4 of it,
	// or at the runtime's mark if that is lower.
	PoolSize    int
	Timeout     time.Duration
	MemoryLimit uint32
}

// Policy is a plugin's failure policy: what a request gets when the plugin
// traps, times out or reports a failure.
type Policy struct {
	// Open continues the chain as if the plugin had not been there. Otherwise
	// the request is answered with Status.
	Open   bool
	Status int
}

// FailOpen continues past a failed plugin: right for a cache, wrong for auth.
func FailOpen() Policy { return Policy{Open: true} }

// FailClosed answers with status when the plugin fails. The zero Policy is
// FailClosed(503).
func FailClosed(status int) Policy { return Policy{Status: status} }

func (p Policy) String() string {
	if p.Open {
		return "fail open"
	}
	return fmt.Sprintf("fail closed (%d)", p.status())
}

func (p Policy) status() int {
	if p.Status == 0 {
		return http.StatusServiceUnavailable
	}
	return p.Status
}

// Module is one loaded plugin version: its compiled code and a warm pool of
// configured instances. Calls on a Module are safe for concurrent use; each
// runs on an instance of its own.
//
// A Module is reference counted. The loader holds the first reference and
// gives it up with Close; every other holder takes one with Ref and returns
// it with Release. When the count reaches zero, in-flight calls have
// finished and the Module closes its instances.
type Module struct {
	rt       *Runtime
	engine   wazero.Runtime // r.rt, or r.plain if the compilation cache failed
	spec     Spec
	digest   string
	compiled wazero.CompiledModule
	env      *host.Env
	timeout  time.Duration
	// memLimit (pages) and recycleBytes are the runtime's or Spec's; alloc
	// holds instances to memLimit.
	memLimit     uint32
	recycleBytes uint32
	alloc        experimental.MemoryAllocator
	features     abi.Feature
	failResp     *host.StoredResponse
	pool         *pool
	series       moduleMetrics // this version's metric series
	calls        moduleCalls

	refs      atomic.Int64
	closeOnce sync.Once
	done      chan struct{}
}

// Validate checks that bin is a module this runtime would load: well-formed,
// ABI v1, with known imports. It runs no guest code, so it cannot check the
// plugin's configuration. With a compilation cache it leaves the compiled
// code there for a later Load. After Close it returns ErrClosed.
func (r *Runtime) Validate(ctx context.Context, bin []byte) error {
	if err := r.begin("module"); err != nil {
		return err
	}
	defer r.loads.Done()
	_, cm, err := r.prepare(ctx, "module", bin)
	if err != nil {
		return err
	}
	return cm.Close(ctx)
}

// begin registers a compile with Close, which waits for it before closing
// the engine: wazero's engine is not safe to close under a compile (it
// frees what the compiler is using). The caller calls r.loads.Done.
func (r *Runtime) begin(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("%w: plugin %s not compiled: the runtime is closing", ErrClosed, id)
	}
	r.loads.Add(1)
	return nil
}

// prepare checks, instruments and compiles bin, and validates it against
// the ABI. id names the plugin in errors.
func (r *Runtime) prepare(ctx context.Context, id string, bin []byte) (wazero.Runtime, wazero.CompiledModule, error) {
	// The limit the registry and the fleet agent hold modules to, so that
	// a module they accept is one the runtime compiles.
	if len(bin) > manifest.MaxModuleSize {
		return nil, nil, fmt.Errorf("%w: plugin %s: %d bytes, more than %d", ErrInvalidModule, id, len(bin), manifest.MaxModuleSize)
	}
	// The structural checks run in both modes: they are what keeps hostile
	// bytes from reaching wazero's decoder (see wasmbin.Check).
	var err error
	if r.cfg.unprotected {
		err = wasmbin.Check(bin)
	} else {
		bin, err = wasmbin.Instrument(bin, abi.HostModule, abi.HostYield, fuelPerYield)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: plugin %s: %w", ErrInvalidModule, id, err)
	}
	engine, compiled, err := r.compile(ctx, bin)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: plugin %s: compile: %w", ErrInvalidModule, id, err)
	}
	if err := r.validate(bin, compiled); err != nil {
		compiled.Close(ctx)
		return nil, nil, fmt.Errorf("%w: plugin %s: %v", ErrInvalidModule, id, err)
	}
	return engine, compiled, nil
}

// Load validates, compiles and configures a plugin, and warms its pool.
// Errors name the plugin and wrap ErrInvalidModule or ErrConfigure.
func (r *Runtime) Load(ctx context.Context, spec Spec) (*Module, error) {
	if err := validateID(spec.Name, spec.Version); err != nil {
		r.metrics.loadErrors.WithLabelValues("-", "-", "invalid").Inc()
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	m, err := r.load(ctx, spec)
	if err != nil {
		reason := "invalid"
		if errors.Is(err, ErrConfigure) {
			reason = "configure"
		}
		r.metrics.loadErrors.WithLabelValues(spec.Name, spec.Version, reason).Inc()
	}
	return m, err
}

func (r *Runtime) load(ctx context.Context, spec Spec) (*Module, error) {
	id := PluginID(spec.Name, spec.Version)
	if err := r.begin(id); err != nil {
		return nil, err
	}
	defer r.loads.Done()
	if spec.PoolSize < 0 || spec.Timeout < 0 {
		return nil, fmt.Errorf("%w: plugin %s: negative pool size or timeout", ErrInvalidModule, id)
	}
	memLimit, recycle := r.cfg.memoryLimit, r.cfg.recycleBytes
	if spec.MemoryLimit > 0 {
		if spec.MemoryLimit < wasmPage || spec.MemoryLimit/wasmPage > r.cfg.memoryLimit {
			return nil, fmt.Errorf("%w: plugin %s: memory limit of %d bytes: want 64 KiB to the runtime's %d MiB",
				ErrInvalidModule, id, spec.MemoryLimit, uint64(r.cfg.memoryLimit)*wasmPage>>20)
		}
		memLimit = spec.MemoryLimit / wasmPage
		recycle = min(recycle, memLimit*wasmPage/4*3)
	}
	sum := sha256.Sum256(spec.Binary)
	engine, compiled, err := r.prepare(ctx, id, spec.Binary)
	if err != nil {
		return nil, err
	}
	// An instance must get its declared minimum, or wazero panics when the
	// allocator refuses it.
	for _, mem := range compiled.ExportedMemories() {
		if mem.Min() > memLimit {
			compiled.Close(ctx)
			return nil, fmt.Errorf("%w: plugin %s: declares %d KiB of memory at start, more than its limit of %d KiB",
				ErrInvalidModule, id, uint64(mem.Min())*wasmPage>>10, uint64(memLimit)*wasmPage>>10)
		}
	}
	m := &Module{
		rt:           r,
		engine:       engine,
		spec:         spec,
		digest:       hex.EncodeToString(sum[:]),
		compiled:     compiled,
		timeout:      cmpOr(spec.Timeout, r.cfg.timeout),
		memLimit:     memLimit,
		recycleBytes: recycle,
		alloc:        mmapAllocator(uint64(memLimit) * wasmPage),
		done:         make(chan struct{}),
		env: &host.Env{
			Plugin:      spec.Name,
			Version:     spec.Version,
			Config:      spec.Config,
			Cache:       r.cfg.cache,
			Limiter:     r.cfg.limiter,
			Keys:        host.NewKeyring(r.verify),
			Metrics:     host.NewMetrics(r.fams, spec.Name, spec.Version),
			Log:         r.log.With("plugin", id), // "hello@3": the first thing a reader sees
			MaxBodySize: r.cfg.maxBodySize,
		},
	}
	status := spec.Policy.status()
	m.failResp = &host.StoredResponse{
		Status: status,
		Header: []host.HeaderField{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}},
		Body:   []byte(http.StatusText(status) + "\n"),
	}
	m.series = r.metrics.forModule(spec.Name, spec.Version)
	m.refs.Store(1)
	size := cmpOr(spec.PoolSize, r.cfg.poolSize)
	m.pool = newPool(m, size)
	// The first instance tells us whether configure accepts the config; fill
	// the rest only then, so a bad config fails fast with one clear error.
	first, err := m.newInstance(ctx)
	if err != nil {
		m.Release()
		<-m.done
		return nil, err
	}
	m.features = first.features
	m.pool.put(first)
	for i := 1; i < size; i++ {
		inst, err := m.newInstance(ctx)
		if err != nil {
			m.Release()
			<-m.done
			return nil, err
		}
		m.pool.put(inst)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		m.Release()
		<-m.done
		return nil, ErrClosed
	}
	r.modules[m] = struct{}{}
	r.mu.Unlock()
	r.metrics.calls.add(m)
	r.log.Info("plugin loaded", "plugin", id,
		"digest", m.digest, "instances", size, "policy", spec.Policy.String())
	return m, nil
}

// compile compiles bin and returns the engine that holds the code.
func (r *Runtime) compile(ctx context.Context, bin []byte) (wazero.Runtime, wazero.CompiledModule, error) {
	if r.ccache == nil {
		cm, err := compileIn(ctx, r.rt, bin)
		return r.rt, cm, err
	}
	cm, err := r.compileCached(ctx, bin)
	if err == nil {
		return r.rt, cm, nil
	}
	// wazero fails a compile when its cache does (a damaged entry, a full
	// or read-only directory), and says so only in its message. A module
	// that compiles without the cache is compiled there, in an engine of
	// its own: a cache must not be why a plugin does not run.
	plain, perr := r.plainEngine(ctx)
	if perr != nil {
		return nil, nil, errors.Join(err, perr)
	}
	cm, perr = compileIn(ctx, plain, bin)
	if perr != nil {
		return nil, nil, perr // the module's own fault
	}
	r.log.Warn("wasm: compilation cache failed, compiled without it", "dir", r.ccache.dir, "err", err)
	return plain, cm, nil
}

func (r *Runtime) compileCached(ctx context.Context, bin []byte) (wazero.CompiledModule, error) {
	defer r.ccache.claim(bin)() // waits now, ends the claim on return
	return compileIn(ctx, r.rt, bin)
}

// compileIn compiles bin in rt, turning a panic in the engine into an
// error. The checks before it exist so that this never fires; it is the
// second line.
func compileIn(ctx context.Context, rt wazero.Runtime, bin []byte) (cm wazero.CompiledModule, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("engine panicked: %v", p)
		}
	}()
	return rt.CompileModule(ctx, bin)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

type abiExport struct {
	name    string
	results []api.ValueType
}

// validate checks the module, bin compiled as cm, against ABI v1 before
// anything runs: exports, their signatures, and that every import is a host
// function that exists.
func (r *Runtime) validate(bin []byte, cm wazero.CompiledModule) error {
	exports := cm.ExportedFunctions()
	if _, ok := exports[abi.ExportVersionMarker]; !ok {
		for name := range exports {
			if strings.HasPrefix(name, "wedge_abi_v") {
				return fmt.Errorf("speaks ABI %s, this host speaks v%d", strings.TrimPrefix(name, "wedge_abi_"), abi.Version)
			}
		}
		return fmt.Errorf("not a Wedge plugin: no export %s", abi.ExportVersionMarker)
	}
	want := []abiExport{
		{abi.ExportVersionMarker, nil},
		{abi.ExportConfigure, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportOnRequest, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportOnResponse, []api.ValueType{api.ValueTypeI32}},
	}
	for _, w := range want {
		def, ok := exports[w.name]
		if !ok {
			return fmt.Errorf("missing export %s", w.name)
		}
		if len(def.ParamTypes()) != 0 || !slices.Equal(def.ResultTypes(), w.results) {
			return fmt.Errorf("export %s has signature %s, want %s", w.name,
				sig(def.ParamTypes(), def.ResultTypes()), sig(nil, w.results))
		}
	}
	for name := range exports {
		if strings.HasPrefix(name, abi.ExportPrefix) && !slices.ContainsFunc(want, func(w abiExport) bool { return w.name == name }) {
			return fmt.Errorf("exports %s: names starting with %s are reserved for ABI v1's exports", name, abi.ExportPrefix)
		}
	}
	if len(cm.ExportedMemories()) == 0 {
		return errors.New("exports no memory: host functions need the guest's linear memory")
	}
	var unknown []string
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		switch {
		case mod == abi.HostModule && name == abi.HostYield:
			// Added by the instrumentation, which refuses a guest's own
			// import of it; unprotected modules are not instrumented.
			if r.cfg.unprotected {
				unknown = append(unknown, mod+"."+name)
			}
		case mod == abi.HostModule:
			f, ok := abi.FuncByName(name)
			if !ok {
				unknown = append(unknown, mod+"."+name)
				continue
			}
			var params []api.ValueType
			for _, p := range f.WasmParams() {
				params = append(params, valueType(p.Type))
			}
			results := []api.ValueType{valueType(f.Result)}
			if !slices.Equal(def.ParamTypes(), params) || !slices.Equal(def.ResultTypes(), results) {
				return fmt.Errorf("import %s.%s has signature %s, ABI v1 says %s", mod, name,
					sig(def.ParamTypes(), def.ResultTypes()), f.Signature())
			}
		case mod == "wasi_snapshot_preview1":
			if !r.wasiFuncs[name] {
				unknown = append(unknown, mod+"."+name)
			}
		default:
			unknown = append(unknown, mod+"."+name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown imports %s (the host offers %s.* from ABI v1 and wasi_snapshot_preview1)",
			strings.Join(unknown, ", "), abi.HostModule)
	}
	// A table, memory or global the host has none of: Load would fail to
	// instantiate the module, naming no import, after Validate (the
	// registry's and the fleet's check) accepted it.
	object, err := wasmbin.ObjectImport(bin)
	if err != nil {
		return err
	}
	if object != "" {
		return fmt.Errorf("imports %s: a plugin defines its own", object)
	}
	return nil
}

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(params) + ") -> (" + names(results) + ")"
}

// PluginID names a version of a plugin as the runtime's logs do, in their
// plugin attribute: NAME@VERSION, "hello@3".
func PluginID(name, version string) string { return name + "@" + version }

// Name is the plugin name.
func (m *Module) Name() string { return m.spec.Name }

// Version is the plugin version.
func (m *Module) Version() string { return m.spec.Version }

// Digest is the hex sha256 of the module binary as given to Load.
func (m *Module) Digest() string { return m.digest }

// Features is what the plugin declared at configure: which of its phases
// run (abi.FeatureRequest, abi.FeatureResponse); a phase it lacks is not
// called.
func (m *Module) Features() abi.Feature { return m.features }

// Done is closed once the module has closed all its instances.
func (m *Module) Done() <-chan struct{} { return m.done }

// OnRequest runs the request phase on ex. The returned action already
// reflects the failure policy: on failure, fail-open yields ActionContinue
// and fail-closed yields ActionAnswer with ex's response replaced by the
// policy's status; the error says what went wrong.
func (m *Module) OnRequest(ex host.Exchange) (abi.Action, error) {
	if m.features&abi.FeatureRequest == 0 {
		return abi.ActionContinue, nil
	}
	act, err := m.call(abi.PhaseRequest, ex)
	if err != nil {
		return m.Fail(ex), err
	}
	return act, nil
}

// OnResponse runs the response phase on ex. On failure, fail-closed replaces
// ex's response with the policy's status.
func (m *Module) OnResponse(ex host.Exchange) error {
	if m.features&abi.FeatureResponse == 0 {
		return nil
	}
	if _, err := m.call(abi.PhaseResponse, ex); err != nil {
		m.Fail(ex)
		return err
	}
	return nil
}

// Fail gives ex what the failure policy gives a failed call, without
// calling the plugin: fail-open yields ActionContinue and leaves ex alone,
// fail-closed replaces ex's response with the policy's status and yields
// ActionAnswer. It is for a caller that chose not to call a plugin that
// keeps failing (the edge's breaker), so that its requests are answered as
// the failure would have answered them.
func (m *Module) Fail(ex host.Exchange) abi.Action {
	if m.spec.Policy.Open {
		return abi.ActionContinue
	}
	ex.LoadResponse(m.failResp)
	return abi.ActionAnswer
}

// validateID keeps plugin names and versions to what is safe in metric
// labels, log lines, file names and registry keys.
func validateID(name, version string) error {
	if !validChars(name, 64, "-_") || name[0] == '-' || name[0] == '_' {
		return fmt.Errorf("plugin name %q: want 1-64 of [A-Za-z0-9_-], starting with a letter or digit", name)
	}
	if !validChars(version, 64, ".-+_") {
		return fmt.Errorf("plugin %s: version %q: want 1-64 of [A-Za-z0-9.+_-]", name, version)
	}
	return nil
}

func validChars(s string, maxLen int, extra string) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}
