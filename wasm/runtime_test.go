package wasm_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/internal/wasmbin"
	"github.com/talowa/wedge/wasm/wasmtest"
)

func guest(t testing.TB, name string) []byte {
	t.Helper()
	return wasmtest.Build(t, "internal/testguests/"+name)
}

func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return wasmtest.Metric(t, reg, name, labels)
}

// hangGuard bounds a wait for an event (a pool refilled, a swap seen):
// only a hang reaches it, however busy the machine.
const hangGuard = 20 * time.Second

func okOrigin(*host.Request) host.Response { return host.Response{Status: 200} }

func misbehaveReq(mode string) host.Request {
	r := host.Request{Method: "GET", Path: "/", Proto: "HTTP/1.1"}
	if mode != "" {
		r.Header.Add("X-Misbehave", mode)
	}
	return r
}

// plugin with the ABI exports but nothing else, for hand-made bad modules.
func abiExports(skip string) (funcs []wasmbin.Func, exports []wasmbin.Export) {
	ret := wasmbin.FuncType{Results: []byte{wasmbin.I32}}
	for _, e := range []struct {
		name string
		f    wasmbin.Func
	}{
		{abi.ExportVersionMarker, wasmbin.Func{Body: []byte{0x0b}}},
		{abi.ExportConfigure, wasmbin.Func{Type: ret, Body: wasmbin.Cat(wasmbin.I32Const(1), []byte{0x0b})}},
		{abi.ExportOnRequest, wasmbin.Func{Type: ret, Body: wasmbin.Cat(wasmbin.I32Const(0), []byte{0x0b})}},
		{abi.ExportOnResponse, wasmbin.Func{Type: ret, Body: wasmbin.Cat(wasmbin.I32Const(0), []byte{0x0b})}},
	} {
		if e.name == skip {
			continue
		}
		funcs = append(funcs, e.f)
		exports = append(exports, wasmbin.Export{Name: e.name})
	}
	return funcs, exports
}

// TestValidateRejectsObjectImports: a module importing a table, a memory
// or a global is refused by Validate, as by Load, with an error naming the
// import, protected or not. Validate (wedgectl plugin build, the fleet's
// precompile) accepted a table or a global, and Load then failed with
// "instantiate: module[env] not instantiated".
func TestValidateRejectsObjectImports(t *testing.T) {
	funcs, exports := abiExports("")
	for _, c := range []struct {
		name, want string
		object     []byte
	}{
		{"global", "imports global env.g: a plugin defines its own", []byte{0x03, wasmbin.I32, 0x00}},
		{"table", "imports table env.t: a plugin defines its own", []byte{0x01, 0x70, 0x00, 0x01}},
		{"memory", "imports memory env.m: a plugin defines its own", []byte{0x02, 0x00, 0x01}},
	} {
		// Object imports take no function index: the exports keep theirs.
		m := wasmbin.Module{Funcs: funcs, Memory: &wasmbin.Limits{Min: 1},
			Imports: []wasmbin.Import{{Module: "env", Name: c.name[:1], Object: c.object}},
			Exports: append(slices.Clone(exports), wasmbin.Export{Name: "memory", Memory: true})}
		for i := range exports {
			m.Exports[i].Index = uint32(i)
		}
		if c.name == "memory" {
			m.Memory = nil // the import is the one memory, exported
		}
		bin := m.Encode()
		for _, protect := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s protected=%v", c.name, protect), func(t *testing.T) {
				rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1).WithProtection(protect))
				err := rt.Validate(context.Background(), bin)
				if !errors.Is(err, wasm.ErrInvalidModule) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Validate: %v, want ErrInvalidModule saying %q", err, c.want)
				}
				_, err = rt.Load(context.Background(), wasm.Spec{Name: "bad", Version: "1.0", Binary: bin})
				if !errors.Is(err, wasm.ErrInvalidModule) || !strings.Contains(err.Error(), "plugin bad@1.0: "+c.want) {
					t.Fatalf("Load: %v, want ErrInvalidModule naming bad@1.0 and saying %q", err, c.want)
				}
			})
		}
	}
}

func TestLoadRejectsBadModules(t *testing.T) {
	mem := &wasmbin.Limits{Min: 1}
	memExport := wasmbin.Export{Name: "memory", Memory: true}
	module := func(skip string, imports []wasmbin.Import, withMem bool, extra ...wasmbin.Export) []byte {
		funcs, exports := abiExports(skip)
		m := wasmbin.Module{Imports: imports, Funcs: funcs}
		for i := range exports {
			exports[i].Index = uint32(len(imports) + i)
		}
		m.Exports = append(exports, extra...)
		if withMem {
			m.Memory = mem
			m.Exports = append(m.Exports, memExport)
		}
		return m.Encode()
	}
	i32 := wasmbin.I32
	cases := []struct {
		name, want string
		bin        []byte
	}{
		{"garbage", "not a core WebAssembly", []byte("this is not wasm")},
		{"truncated", "malformed", module("", nil, true)[:20]},
		{"not a plugin", "no export wedge_abi_v1", (&wasmbin.Module{Memory: mem}).Encode()},
		{"other ABI version", "speaks ABI v2", func() []byte {
			funcs, _ := abiExports("")
			return (&wasmbin.Module{Funcs: funcs, Memory: mem, Exports: []wasmbin.Export{{Name: "wedge_abi_v2"}, memExport}}).Encode()
		}()},
		{"missing on_request", "missing export wedge_on_request", module(abi.ExportOnRequest, nil, true)},
		{"missing configure", "missing export wedge_configure", module(abi.ExportConfigure, nil, true)},
		{"no memory", "exports no memory", module("", nil, false)},
		{"unknown host function", "unknown imports wedge.teleport", module("", []wasmbin.Import{
			{Module: abi.HostModule, Name: "teleport", Type: wasmbin.FuncType{Results: []byte{i32}}}}, true)},
		{"unknown module", "unknown imports env.abort", module("", []wasmbin.Import{
			{Module: "env", Name: "abort"}}, true)},
		{"unknown WASI function", "unknown imports wasi_snapshot_preview1.sock_teleport", module("", []wasmbin.Import{
			{Module: "wasi_snapshot_preview1", Name: "sock_teleport"}}, true)},
		{"wrong import signature", "import wedge.status_set has signature", module("", []wasmbin.Import{
			{Module: abi.HostModule, Name: "status_set", Type: wasmbin.FuncType{Params: []byte{wasmbin.I64}, Results: []byte{i32}}}}, true)},
		{"reserved import", "reserved for the host", module("", []wasmbin.Import{
			{Module: abi.HostModule, Name: abi.HostYield}}, true)},
		{"reserved export name", "reserved for ABI v1", module("", nil, true, wasmbin.Export{Name: "wedge_extra"})},
	}
	reg := prometheus.NewRegistry()
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1).WithRegisterer(reg))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := metric(t, reg, "wedge_plugin_load_errors_total", map[string]string{"plugin": "bad", "reason": "invalid"})
			_, err := rt.Load(context.Background(), wasm.Spec{Name: "bad", Version: "1.0", Binary: c.bin})
			if after := metric(t, reg, "wedge_plugin_load_errors_total", map[string]string{"plugin": "bad", "reason": "invalid"}); after != before+1 {
				t.Errorf("load errors went from %v to %v", before, after)
			}
			if !errors.Is(err, wasm.ErrInvalidModule) {
				t.Fatalf("Load: %v, want ErrInvalidModule", err)
			}
			if !strings.Contains(err.Error(), "plugin bad@1.0") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %q, want it to name plugin bad@1.0 and say %q", err, c.want)
			}
		})
	}
	t.Run("well-formed control", func(t *testing.T) {
		m, err := rt.Load(context.Background(), wasm.Spec{Name: "good", Version: "1.0", Binary: module("", nil, true)})
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
	})
	t.Run("reserved import, unprotected", func(t *testing.T) {
		open := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1).WithProtection(false))
		bin := module("", []wasmbin.Import{{Module: abi.HostModule, Name: abi.HostYield}}, true)
		if _, err := open.Load(context.Background(), wasm.Spec{Name: "bad", Version: "1.0", Binary: bin}); !errors.Is(err, wasm.ErrInvalidModule) ||
			!strings.Contains(err.Error(), "wedge.yield") {
			t.Fatalf("Load: %v", err)
		}
	})
	t.Run("bad name", func(t *testing.T) {
		_, err := rt.Load(context.Background(), wasm.Spec{Name: "../etc", Version: "1", Binary: module("", nil, true)})
		if !errors.Is(err, wasm.ErrInvalidModule) || !strings.Contains(err.Error(), "plugin name") {
			t.Fatalf("Load: %v", err)
		}
	})
}

func TestMisbehavingGuests(t *testing.T) {
	reg := prometheus.NewRegistry()
	const timeout = 300 * time.Millisecond
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().
		WithPoolSize(2).WithTimeout(timeout).WithMemoryLimit(48<<20).WithRegisterer(reg))
	p := wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "misbehave", Version: "1.0", Binary: guest(t, "misbehave"),
		Policy: wasm.FailClosed(503)})
	p.Origin = okOrigin
	labels := func(kv ...string) map[string]string {
		m := map[string]string{"plugin": "misbehave", "version": "1.0"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		mode     string
		kind     wasm.Kind
		detail   string // in the error text
		replaced bool   // the instance is discarded
	}{
		{"request:trap", wasm.KindTrap, "out of bounds memory access", true},
		{"request:panic", wasm.KindTrap, "deliberate panic", true},
		{"request:exit", wasm.KindExit, "exit_code(3)", true},
		{"request:loop", wasm.KindTimeout, "deadline", true},
		{"request:sleep", wasm.KindTimeout, "deadline", true},
		{"request:digestloop", wasm.KindTimeout, "deadline", true},
		{"request:grow", wasm.KindMemory, "out of memory", true},
		{"request:bigalloc", wasm.KindMemory, "fatal error: out of memory", true},
		{"request:oomtalk", wasm.KindTrap, "index out of range", true},
		{"request:oob", wasm.KindTrap, "wedge.header_get: range", true},
		{"request:fail", wasm.KindGuest, "deliberate failure", false},
		{"request:badaction", wasm.KindGuest, "action 7 is none of Continue, Answer and Fail", false},
		{"request:nostatus", wasm.KindGuest, "answered without setting a status", false},
		{"response:trap", wasm.KindTrap, "out of bounds memory access", true},
		{"response:loop", wasm.KindTimeout, "deadline", true},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			phase, _, _ := strings.Cut(c.mode, ":")
			errs0 := metric(t, reg, "wedge_plugin_errors_total", labels("phase", phase, "kind", c.kind.String()))
			repl0 := metric(t, reg, "wedge_plugin_instance_replacements_total", labels("reason", c.kind.String()))
			cpu0, start := processCPU(t), time.Now()
			res := p.Do(misbehaveReq(c.mode))
			cpu, elapsed := processCPU(t)-cpu0, time.Since(start)
			err := res.RequestErr
			if phase == "response" {
				err = res.ResponseErr
			}
			var ce *wasm.CallError
			if !errors.As(err, &ce) || ce.Kind != c.kind {
				t.Fatalf("error %v, want a %s CallError", err, c.kind)
			}
			msg := err.Error()
			if !strings.Contains(msg, "plugin misbehave@1.0: "+phase) || !strings.Contains(msg, c.detail) {
				t.Fatalf("error %q: want plugin, version, phase and %q", msg, c.detail)
			}
			if res.Resp.Status != 503 {
				t.Fatalf("status %d, want the fail-closed 503", res.Resp.Status)
			}
			// The deadline is CPU time, so the bound is too: on the wall
			// clock a busy machine stretches a call past any margin.
			if c.kind == wasm.KindTimeout && cpu > timeout+2*time.Second {
				t.Fatalf("a runaway guest took %v of CPU against a %v deadline", cpu, timeout)
			}
			// A sleeping guest uses no CPU: its sleep is capped on the wall
			// clock (one and a half budgets), which a busy machine barely
			// stretches, since nothing runs meanwhile.
			if c.mode == "request:sleep" && elapsed > timeout+2*time.Second {
				t.Fatalf("a sleeping guest held its call %v against a %v deadline", elapsed, timeout)
			}
			if got := metric(t, reg, "wedge_plugin_errors_total", labels("phase", phase, "kind", c.kind.String())); got != errs0+1 {
				t.Fatalf("errors_total{kind=%s} = %v, want %v", c.kind, got, errs0+1)
			}
			want := repl0
			if c.replaced {
				want++
			}
			if got := metric(t, reg, "wedge_plugin_instance_replacements_total", labels("reason", c.kind.String())); got != want {
				t.Fatalf("replacements{reason=%s} = %v, want %v", c.kind, got, want)
			}
			// The host keeps serving and the pool fills up again.
			testutil.Eventually(t, hangGuard, "pool refilled", func() bool {
				return metric(t, reg, "wedge_plugin_instances", labels()) == 2
			})
			for i := 0; i < 4; i++ {
				if res := p.Do(misbehaveReq("")); res.RequestErr != nil || res.Resp.Status != 204 {
					t.Fatalf("healthy request after %s: %d %v", c.mode, res.Resp.Status, res.RequestErr)
				}
			}
		})
	}
}

func TestFailOpenContinues(t *testing.T) {
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1))
	p := wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "misbehave", Version: "1", Binary: guest(t, "misbehave"), Policy: wasm.FailOpen()})
	p.Origin = func(*host.Request) host.Response { return host.Response{Status: 200, Body: []byte("origin")} }
	res := p.Do(misbehaveReq("request:trap"))
	if res.RequestErr == nil || res.Answered || res.Resp.Status != 200 || string(res.Resp.Body) != "origin" {
		t.Fatalf("fail open: answered=%v status=%d err=%v", res.Answered, res.Resp.Status, res.RequestErr)
	}
}

func TestConfigureFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(2).WithInitTimeout(300*time.Millisecond).
		WithTimeout(50*time.Millisecond).WithRegisterer(reg))
	bin := guest(t, "misbehave")
	for _, c := range []struct{ config, want string }{
		{"configure:fail", "configure refused"},
		{"configure:trap", "trap"},
		{"configure:panic", "deliberate panic"},
		{"configure:loop", "timeout"},
		{"configure:exit", "exit"},
	} {
		t.Run(c.config, func(t *testing.T) {
			_, err := rt.Load(context.Background(), wasm.Spec{Name: "misbehave", Version: "2", Binary: bin, Config: []byte(c.config)})
			if !errors.Is(err, wasm.ErrConfigure) || !strings.Contains(err.Error(), "misbehave@2") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want ErrConfigure naming misbehave@2 and %q", err, c.want)
			}
			if n := metric(t, reg, "wedge_plugin_instances", map[string]string{"plugin": "misbehave"}); n != 0 {
				t.Fatalf("%v instances left behind by a failed load", n)
			}
		})
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	bin := guest(t, "noop")
	for i := 0; i < 2; i++ { // the second runtime compiles from the cache
		rt, err := wasm.NewRuntime(context.Background(), wasm.NewConfig().WithPoolSize(1).WithCompilationCache(dir))
		if err != nil {
			t.Fatal(err)
		}
		m, err := rt.Load(context.Background(), wasm.Spec{Name: "noop", Version: "1", Binary: bin})
		if err != nil {
			t.Fatal(err)
		}
		if act, err := m.OnRequest(&host.MemExchange{}); err != nil || act != abi.ActionContinue {
			t.Fatal(act, err)
		}
		rt.Close(context.Background())
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			t.Fatal("nothing written to the compilation cache")
		}
	}
}

// TestCompilationCacheFails runs plugins with a compilation cache that
// fails: entries damaged on disk (a crash mid-write, a bad sector) and a
// directory that cannot be one. wazero fails the compile when its cache
// does, and a node refused every plugin, and then to start, for a cache.
// The plugin now runs, compiled without the cache, and the log says why.
func TestCompilationCacheFails(t *testing.T) {
	bin := guest(t, "noop")
	run := func(t *testing.T, dir string) {
		t.Helper()
		var logs testutil.SyncBuffer
		cfg := wasm.NewConfig().WithPoolSize(1).WithCompilationCache(dir).WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))
		rt, err := wasm.NewRuntime(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(context.Background())
		if err := rt.Validate(context.Background(), bin); err != nil {
			t.Fatalf("validate: %v", err)
		}
		m, err := rt.Load(context.Background(), wasm.Spec{Name: "noop", Version: "1", Binary: bin})
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if act, err := m.OnRequest(&host.MemExchange{}); err != nil || act != abi.ActionContinue {
			t.Fatal(act, err)
		}
		if !strings.Contains(logs.String(), "without it") {
			t.Fatalf("the cache's failure is not logged:\n%s", logs.String())
		}
	}
	t.Run("damaged entries", func(t *testing.T) {
		dir := t.TempDir()
		rt, err := wasm.NewRuntime(context.Background(), wasm.NewConfig().WithPoolSize(1).WithCompilationCache(dir))
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Validate(context.Background(), bin); err != nil {
			t.Fatal(err)
		}
		rt.Close(context.Background())
		damaged := 0
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			damaged++
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Truncate(path, info.Size()/2)
		})
		if err != nil || damaged == 0 {
			t.Fatalf("damage the cache: %d entries, %v", damaged, err)
		}
		run(t, dir)
	})
	t.Run("not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cache")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, file)
	})
}

func TestRecycleBloatedInstance(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1).WithRegisterer(reg).WithRecycleAt(12<<20))
	p := wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "misbehave", Version: "1", Binary: guest(t, "misbehave")})
	first := p.Do(misbehaveReq("")).Resp.Header
	id, _ := first.Get("X-Instance")
	for i := 0; i < 3; i++ { // 8 MiB each: past the 12 MiB mark
		if res := p.Do(misbehaveReq("request:bloat")); res.RequestErr != nil {
			t.Fatal(res.RequestErr)
		}
	}
	if got := metric(t, reg, "wedge_plugin_instance_replacements_total", map[string]string{"reason": "recycle"}); got < 1 {
		t.Fatalf("no instance recycled after growing past the mark")
	}
	testutil.Eventually(t, hangGuard, "replacement instance", func() bool {
		res := p.Do(misbehaveReq(""))
		now, _ := res.Resp.Header.Get("X-Instance")
		return res.RequestErr == nil && now != id
	})
}

// TestHotSwapHammer swaps versions while requests run, holding them the way
// the edge's config generations do: a request takes a reference (Ref) on the
// current version, runs both phases on it and returns it (Release); a swap
// publishes the next version and Closes the old one. Each request must be
// served whole by the version it took, none may fail, every retired version
// must close its instances, and a closed version must refuse new references.
func TestHotSwapHammer(t *testing.T) {
	reg := prometheus.NewRegistry()
	// A generous call timeout: eight workers share two instances, and on a
	// loaded CI machine a wait could pass the default 100 ms; this test is
	// about swaps, not deadlines.
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(2).WithRegisterer(reg).WithTimeout(10*time.Second))
	bin := guest(t, "misbehave")
	load := func(v int) *wasm.Module {
		ver := "v" + string(rune('0'+v))
		m, err := rt.Load(context.Background(), wasm.Spec{Name: "hammer", Version: ver, Binary: bin, Config: []byte(ver)})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var cur atomic.Pointer[wasm.Module]
	cur.Store(load(0))
	// acquire is the edge's acquire of a generation: a reference taken on a
	// version that was swapped out meanwhile is given back, so a request
	// that starts after a swap runs on the new version.
	acquire := func() *wasm.Module {
		for {
			m := cur.Load()
			if m.Ref() {
				if cur.Load() == m {
					return m
				}
				m.Release()
				continue
			}
			if cur.Load() == m {
				return nil
			}
		}
	}

	const workers, swaps = 8, 6
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	served := 0
	perVersion := map[string]int{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 100000; n++ { // bounded, and stopped after the swaps
				select {
				case <-stop:
					return
				default:
				}
				m := acquire()
				x := &host.MemExchange{Req: misbehaveReq("")}
				act, err := m.OnRequest(x)
				rerr := m.OnResponse(x)
				cfg, _ := x.Resp.Header.Get("X-Config")
				ver := m.Version()
				m.Release()
				mu.Lock()
				served++
				perVersion[ver]++
				if err != nil || rerr != nil || act != abi.ActionAnswer || x.Resp.Status != 204 || cfg != ver {
					failures = append(failures, ver+": "+cfg)
				}
				mu.Unlock()
			}
		}()
	}
	// Swap only once requests are running on the current version.
	servedBy := func(ver string) bool {
		mu.Lock()
		defer mu.Unlock()
		return perVersion[ver] >= 100
	}
	var retired []*wasm.Module
	for v := 1; v <= swaps; v++ {
		testutil.Eventually(t, hangGuard, "requests on the current version", func() bool { return servedBy(cur.Load().Version()) })
		old := cur.Swap(load(v))
		old.Close()
		retired = append(retired, old)
	}
	testutil.Eventually(t, hangGuard, "requests on the last version", func() bool { return servedBy(cur.Load().Version()) })
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed across swaps, first: %v", len(failures), served, failures[0])
	}
	for _, m := range retired {
		select {
		case <-m.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("retired version %s never closed", m.Version())
		}
		if n := metric(t, reg, "wedge_plugin_instances", map[string]string{"plugin": "hammer", "version": m.Version()}); n != 0 {
			t.Fatalf("version %s still reports %v instances", m.Version(), n)
		}
	}
	if n := metric(t, reg, "wedge_plugin_instances", map[string]string{"plugin": "hammer", "version": "v6"}); n != 2 {
		t.Fatalf("current version has %v instances, want 2", n)
	}
	last := cur.Load()
	last.Close()
	if m := acquire(); m != nil {
		t.Fatal("a closed version took a reference")
	}
	select {
	case <-last.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("closing the last version did not close it")
	}
	t.Logf("%d requests across %d swaps", served, swaps)
}

// TestSameVersionTwice loads one plugin version twice (as a config change
// would): the two share their series, scrapes keep working, and the series
// go only with the second.
func TestSameVersionTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1).WithRegisterer(reg))
	bin := guest(t, "misbehave")
	var mods []*wasm.Module
	for _, cfg := range []string{"a", "b"} {
		m, err := rt.Load(context.Background(), wasm.Spec{Name: "dup", Version: "1", Binary: bin, Config: []byte(cfg)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.OnRequest(&host.MemExchange{}); err != nil {
			t.Fatal(err)
		}
		mods = append(mods, m)
	}
	labels := map[string]string{"plugin": "dup", "version": "1", "phase": "request"}
	if n := metric(t, reg, "wedge_plugin_call_duration_seconds", labels); n != 2 {
		t.Fatalf("%v calls counted, want 2 (and a scrape without duplicate series)", n)
	}
	mods[0].Close()
	<-mods[0].Done()
	if n := metric(t, reg, "wedge_plugin_instances", map[string]string{"plugin": "dup"}); n != 1 {
		t.Fatalf("%v instances after closing one of two, want 1", n)
	}
	mods[1].Close()
	<-mods[1].Done()
	if n := metric(t, reg, "wedge_plugin_call_duration_seconds", labels); n != 0 {
		t.Fatalf("series outlived both modules: %v", n)
	}
}

// processCPU is the CPU time (user and system) the test process has used.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
