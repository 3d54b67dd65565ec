package wasmbin_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/talowa/wedge/wasm/internal/wasmbin"
)

const fuel = 64

var (
	i32    = wasmbin.I32
	retI32 = wasmbin.FuncType{Results: []byte{wasmbin.I32}}
	end    = []byte{0x0b}
)

// indexModule exercises every place a function index appears: calls to an
// import and between functions, a table filled by an element segment and
// reached by call_indirect, ref.func with a declarative segment, the start
// function, exports and the name section. Function 0 is the import.
func indexModule() []byte {
	one := uint32(1)
	start := uint32(5)
	return (&wasmbin.Module{
		Imports: []wasmbin.Import{{Module: "env", Name: "add1", Type: wasmbin.FuncType{Params: []byte{i32}, Results: []byte{i32}}}},
		Funcs: []wasmbin.Func{
			// 1: (x) -> add1(x)
			{Type: wasmbin.FuncType{Params: []byte{i32}, Results: []byte{i32}}, Body: wasmbin.Cat(wasmbin.LocalGet(0), wasmbin.Call(0), end)},
			// 2: call_indirect table[0](41) -> 42
			{Type: retI32, Body: wasmbin.Cat(wasmbin.I32Const(41), wasmbin.I32Const(0), []byte{0x11, 0x00, 0x00}, end)},
			// 3: count to 10000 in a loop, calling function 1 each time
			{Type: retI32, Locals: []byte{i32}, Body: wasmbin.Cat(
				[]byte{0x03, 0x40},                                       // loop
				wasmbin.LocalGet(0), wasmbin.Call(1), []byte{0x21, 0x00}, // local.set 0
				wasmbin.LocalGet(0), wasmbin.I32Const(10000), []byte{0x48, 0x0d, 0x00}, // i32.lt_s br_if 0
				end, wasmbin.LocalGet(0), end)},
			// 4: ref.func 1, ref.is_null -> 0
			{Type: retI32, Body: wasmbin.Cat([]byte{0xd2}, []byte{0x01}, []byte{0xd1}, end)},
			// 5: start: global 0 = 7
			{Body: wasmbin.Cat(wasmbin.I32Const(7), []byte{0x24, 0x00}, end)},
			// 6: global 0
			{Type: retI32, Body: []byte{0x23, 0x00, 0x0b}},
		},
		Globals:  1,
		Table:    1,
		Elems:    []uint32{one},
		Declared: []uint32{one},
		Start:    &start,
		Memory:   &wasmbin.Limits{Min: 1},
		Exports: []wasmbin.Export{
			{Name: "indirect", Index: 2}, {Name: "loop", Index: 3}, {Name: "reffunc", Index: 4}, {Name: "started", Index: 6},
		},
		Names: map[uint32]string{0: "add1", 1: "plus", 2: "indirect", 3: "counter", 4: "reffunc", 5: "init", 6: "started"},
	}).Encode()
}

// run instantiates bin with env.add1 and wedge.yield and returns each
// export's result, and how often yield ran.
func run(t *testing.T, bin []byte) (map[string]uint64, int) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(x int32) int32 { return x + 1 }).Export("add1").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	yields := 0
	if _, err := rt.NewHostModuleBuilder("wedge").NewFunctionBuilder().
		WithFunc(func() { yields++ }).Export("yield").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, name := range []string{"indirect", "loop", "reffunc", "started"} {
		res, err := mod.ExportedFunction(name).Call(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = res[0]
	}
	return out, yields
}

func TestInstrumentKeepsBehaviour(t *testing.T) {
	orig := indexModule()
	inst, err := wasmbin.Instrument(orig, "wedge", "yield", fuel)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := run(t, orig)
	got, yields := run(t, inst)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: instrumented %d, original %d", k, got[k], v)
		}
	}
	if want["indirect"] != 42 || want["loop"] != 10000 || want["started"] != 7 {
		t.Fatalf("the test module itself is wrong: %v", want)
	}
	// Fuel is spent at every function entry and loop header: the start
	// function 1, indirect 2 (itself and plus), reffunc 1, started 1, and
	// counter 1 + 2 per iteration (its loop header and the call to plus).
	if spent := 1 + 2 + 1 + 1 + 1 + 2*10000; yields != spent/fuel {
		t.Fatalf("yield ran %d times, want %d", yields, spent/fuel)
	}
}

func TestInstrumentRenamesFunctions(t *testing.T) {
	inst, err := wasmbin.Instrument(indexModule(), "wedge", "yield", fuel)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for name, def := range cm.ExportedFunctions() {
		names[name] = def.DebugName()
	}
	for export, fn := range map[string]string{"loop": "counter", "indirect": "indirect", "started": "started"} {
		if !strings.HasSuffix(names[export], "."+fn) {
			t.Errorf("export %s is named %q, want function %s", export, names[export], fn)
		}
	}
}

// TestInstrumentStopsLoop shows the point of it all: a guest spinning in a
// loop returns to the host, which can end the call.
func TestInstrumentStopsLoop(t *testing.T) {
	spin := (&wasmbin.Module{
		Funcs:   []wasmbin.Func{{Body: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}}}, // loop br 0 end
		Exports: []wasmbin.Export{{Name: "spin"}},
	}).Encode()
	bin, err := wasmbin.Instrument(spin, "wedge", "yield", fuel)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	stop := errors.New("stop")
	calls := 0
	if _, err := rt.NewHostModuleBuilder("wedge").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
			if calls++; calls == 100 {
				panic(stop)
			}
		}), nil, nil).Export("yield").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mod.ExportedFunction("spin").Call(ctx); !errors.Is(err, stop) {
		t.Fatalf("spin returned %v, want the host's stop", err)
	}
}

func TestInstrumentRefuses(t *testing.T) {
	for name, bin := range map[string][]byte{
		"not wasm":      []byte("\x7fELF"),
		"truncated":     indexModule()[:30],
		"reserved name": (&wasmbin.Module{Imports: []wasmbin.Import{{Module: "wedge", Name: "yield"}}}).Encode(),
		"bad opcode":    (&wasmbin.Module{Funcs: []wasmbin.Func{{Body: []byte{0xff, 0x0b}}}}).Encode(),
		"bad section":   append(indexModule(), 0x2a, 0x00),
	} {
		if _, err := wasmbin.Instrument(bin, "wedge", "yield", fuel); !errors.Is(err, wasmbin.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestInstrumentAddsMissingSections(t *testing.T) {
	// No types, imports or globals at all: everything the rewrite needs is added.
	bin, err := wasmbin.Instrument((&wasmbin.Module{}).Encode(), "wedge", "yield", fuel)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	imps := cm.ImportedFunctions()
	if len(imps) != 1 {
		t.Fatalf("%d imports, want the yield import", len(imps))
	}
	if mod, name, _ := imps[0].Import(); mod != "wedge" || name != "yield" {
		t.Fatalf("import %s.%s", mod, name)
	}
}

// FuzzInstrument holds Instrument to its promises on any input: it never
// panics; what it accepts is safe to hand to wazero (which itself may
// allocate without bound or panic on hostile bytes); and the rewrite never
// breaks a module wazero accepts. (The converse is not promised: dropping a
// malformed DWARF section, say, makes a refused module acceptable.)
func FuzzInstrument(f *testing.F) {
	f.Add(indexModule())
	f.Add((&wasmbin.Module{}).Encode())
	f.Add((&wasmbin.Module{Funcs: []wasmbin.Func{{Body: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}}}}).Encode())
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Fuzz(func(t *testing.T, bin []byte) {
		out, err := wasmbin.Instrument(bin, "wedge", "yield", fuel)
		if err != nil {
			return // refused: wazero never sees it
		}
		compile := func(b []byte) error {
			cm, err := rt.CompileModule(ctx, b)
			if err == nil {
				cm.Close(ctx)
			}
			return err
		}
		if a, b := compile(bin), compile(out); a == nil && b != nil {
			t.Fatalf("original compiles: %v; instrumented compiles: %v\n%x", a, b, bin)
		}
		if bytes.Equal(out, bin) {
			t.Fatal("Instrument changed nothing")
		}
	})
}

// yieldCounter instantiates bin with a yield that panics with stop after n
// calls, and returns the error of calling export.
func yieldCounter(t *testing.T, bin []byte, n int, export string, args ...uint64) (int, error) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	calls := 0
	if _, err := rt.NewHostModuleBuilder("wedge").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
			if calls++; calls == n {
				panic(errStop)
			}
		}), nil, nil).Export("yield").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mod.ExportedFunction(export).Call(ctx, args...)
	return calls, err
}

var errStop = errors.New("stop")

// TestInstrumentStopsRecursion: f(n) calls f(n-1) twice, without a loop. At
// n = 60 that is 2^60 calls on a 60-deep stack: only the charge at function
// entry brings it back to the host.
func TestInstrumentStopsRecursion(t *testing.T) {
	p := wasmbin.FuncType{Params: []byte{i32}}
	rec := wasmbin.Cat(
		wasmbin.LocalGet(0), []byte{0x45, 0x04, 0x40, 0x0f, 0x0b}, // if n == 0 return
		wasmbin.LocalGet(0), wasmbin.I32Const(1), []byte{0x6b}, wasmbin.Call(0), // f(n-1)
		wasmbin.LocalGet(0), wasmbin.I32Const(1), []byte{0x6b}, wasmbin.Call(0), // f(n-1)
		end)
	bin, err := wasmbin.Instrument((&wasmbin.Module{
		Funcs:   []wasmbin.Func{{Type: p, Body: rec}},
		Exports: []wasmbin.Export{{Name: "f"}},
	}).Encode(), "wedge", "yield", fuel)
	if err != nil {
		t.Fatal(err)
	}
	if calls, err := yieldCounter(t, bin, 100, "f", 60); !errors.Is(err, errStop) || calls != 100 {
		t.Fatalf("after %d yields: %v, want the host's stop", calls, err)
	}
}

// TestInstrumentChargesBulkOperations: straight-line memory.fill of 1 MiB,
// 64 times, holds no loop header and no call, yet must reach yield.
func TestInstrumentChargesBulkOperations(t *testing.T) {
	fill := wasmbin.Cat(wasmbin.I32Const(0), wasmbin.I32Const(7), wasmbin.I32Const(1<<20), []byte{0xfc, 0x0b, 0x00})
	var body []byte
	for i := 0; i < 64; i++ {
		body = append(body, fill...)
	}
	bin, err := wasmbin.Instrument((&wasmbin.Module{
		Funcs:   []wasmbin.Func{{Body: append(body, 0x0b)}},
		Memory:  &wasmbin.Limits{Min: 16},
		Exports: []wasmbin.Export{{Name: "fill"}},
	}).Encode(), "wedge", "yield", fuel)
	if err != nil {
		t.Fatal(err)
	}
	// Each fill costs 16 units (1 MiB / 64 KiB): 1 + 64*16 units in all.
	calls, err := yieldCounter(t, bin, 1<<30, "fill")
	if err != nil {
		t.Fatal(err)
	}
	if want := (1 + 64*16) / fuel; calls != want {
		t.Fatalf("%d yields, want %d", calls, want)
	}
}

func TestInstrumentGuardsTheFuelGlobal(t *testing.T) {
	// The module has no globals of its own, so global 0 would be the fuel.
	for name, m := range map[string]*wasmbin.Module{
		"global.set": {Funcs: []wasmbin.Func{{Body: wasmbin.Cat(wasmbin.I32Const(1<<30), []byte{0x24, 0x00}, end)}}},
		"global.get": {Funcs: []wasmbin.Func{{Type: retI32, Body: []byte{0x23, 0x00, 0x0b}}}},
	} {
		if _, err := wasmbin.Instrument(m.Encode(), "wedge", "yield", fuel); !errors.Is(err, wasmbin.ErrMalformed) {
			t.Errorf("%s of a global the module lacks: %v, want a refusal", name, err)
		}
	}
	// Its own globals stay usable.
	own := &wasmbin.Module{Globals: 1, Funcs: []wasmbin.Func{{Body: wasmbin.Cat(wasmbin.I32Const(1), []byte{0x24, 0x00}, end)}}}
	if _, err := wasmbin.Instrument(own.Encode(), "wedge", "yield", fuel); err != nil {
		t.Fatal(err)
	}
}

func TestInstrumentBoundsTables(t *testing.T) {
	if _, err := wasmbin.Instrument((&wasmbin.Module{Table: wasmbin.MaxTableSize + 1}).Encode(), "wedge", "yield", fuel); !errors.Is(err, wasmbin.ErrMalformed) {
		t.Fatalf("a table past the bound: %v", err)
	}
	// A table without a maximum gets one: table.grow past it fails (-1)
	// instead of allocating.
	grow := wasmbin.Cat([]byte{0xd0, 0x70}, wasmbin.I32Const(2_000_000), []byte{0xfc, 0x0f, 0x00}, end)
	bin, err := wasmbin.Instrument((&wasmbin.Module{
		Table:   10,
		Funcs:   []wasmbin.Func{{Type: retI32, Body: grow}},
		Exports: []wasmbin.Export{{Name: "grow"}},
	}).Encode(), "wedge", "yield", fuel)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := rt.NewHostModuleBuilder("wedge").NewFunctionBuilder().WithFunc(func() {}).Export("yield").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mod.ExportedFunction("grow").Call(ctx)
	if err != nil || int32(res[0]) != -1 {
		t.Fatalf("table.grow by 2M: %v %v, want -1", res, err)
	}
}
