package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/internal/wasmbin"
)

// trampolines is a module that imports every host function and exports
// "t_<name>" with the same signature, forwarding its arguments: it lets a
// test call any host function with any arguments through the real wazero
// boundary, memory checks included.
func trampolines() []byte {
	var m wasmbin.Module
	for i, f := range abi.Funcs {
		var t wasmbin.FuncType
		for _, p := range f.WasmParams() {
			t.Params = append(t.Params, wasmType(p.Type))
		}
		t.Results = []byte{wasmType(f.Result)}
		m.Imports = append(m.Imports, wasmbin.Import{Module: abi.HostModule, Name: f.Name, Type: t})
		var body []byte
		for j := range t.Params {
			body = append(body, wasmbin.LocalGet(uint32(j))...)
		}
		body = append(append(body, wasmbin.Call(uint32(i))...), 0x0b)
		m.Funcs = append(m.Funcs, wasmbin.Func{Type: t, Body: body})
		m.Exports = append(m.Exports, wasmbin.Export{Name: "t_" + f.Name, Index: uint32(len(abi.Funcs) + i)})
	}
	m.Memory = &wasmbin.Limits{Min: 1}
	m.Exports = append(m.Exports, wasmbin.Export{Name: "memory", Memory: true})
	return m.Encode()
}

func wasmType(t abi.Type) byte {
	switch t {
	case abi.I64:
		return wasmbin.I64
	case abi.F64:
		return wasmbin.F64
	}
	return wasmbin.I32
}

type tramp struct {
	inst *instance
	mod  api.Module
	ex   *host.MemExchange
}

func newTramp(t testing.TB) *tramp {
	t.Helper()
	ctx := context.Background()
	r, err := NewRuntime(ctx, NewConfig().WithStores(host.NewMemCache(1<<20), host.NewGCRA(1024)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(ctx) })
	mod, err := r.rt.InstantiateModule(ctx, mustCompile(t, r, trampolines()), wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	m := &Module{rt: r, spec: Spec{Name: "tramp", Version: "1"}, env: &host.Env{
		Config: []byte("cfg"), Cache: r.cfg.cache, Limiter: r.cfg.limiter,
		Keys: host.NewKeyring(r.verify), Metrics: host.NewMetrics(r.fams, "tramp", "1"),
	}}
	tr := &tramp{inst: &instance{Context: context.Background(), m: m, mod: mod, mem: mod.Memory()}, mod: mod}
	tr.ex = &host.MemExchange{Req: host.Request{Method: "GET", Path: "/p", Header: host.Header{Fields: []host.HeaderField{{Name: "A", Value: "b"}}}}}
	return tr
}

func mustCompile(t testing.TB, r *Runtime, bin []byte) wazero.CompiledModule {
	cm, err := r.rt.CompileModule(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// call runs host function f through its trampoline in phase.
func (tr *tramp) call(f abi.Func, phase abi.Phase, args []uint64) (uint64, error) {
	var ex host.Exchange
	if phase != abi.PhaseConfigure {
		ex = tr.ex
	}
	tr.inst.hc.Reset(tr.inst.m.env, phase, ex)
	tr.inst.deadline = nanotime() + int64(time.Hour)
	defer tr.inst.hc.Release()
	stack := make([]uint64, max(len(args), 1))
	copy(stack, args)
	err := tr.mod.ExportedFunction("t_"+f.Name).CallWithStack(tr.inst, stack)
	return stack[0], err
}

// TestHostFunctionsRejectOutOfBoundsMemory passes every byte argument of
// every host function a range that ends outside linear memory: each call
// must trap with an error naming the function, and the same call with the
// range inside memory must not.
func TestHostFunctionsRejectOutOfBoundsMemory(t *testing.T) {
	tr := newTramp(t)
	size := uint64(tr.mem().Size())
	for _, f := range abi.Funcs {
		wp := f.WasmParams()
		for i, p := range wp {
			if !strings.HasSuffix(p.Name, "_ptr") {
				continue
			}
			args := make([]uint64, len(wp))
			for _, bad := range [][2]uint64{{size - 8, 16}, {0xffffffff, 1}, {size, 1}} {
				args[i], args[i+1] = bad[0], bad[1]
				_, err := tr.call(f, abi.PhaseRequest, args)
				var oob *outOfBounds
				if !errors.As(err, &oob) || !strings.Contains(err.Error(), "wedge."+f.Name) {
					t.Errorf("%s(%s=%d, len %d): %v, want an out-of-bounds trap naming it", f.Name, p.Name, bad[0], bad[1], err)
				}
			}
			// A zero length is valid anywhere; an in-range buffer is fine.
			for _, ok := range [][2]uint64{{0xfffffff0, 0}, {0, 8}} {
				args[i], args[i+1] = ok[0], ok[1]
				if _, err := tr.call(f, abi.PhaseRequest, args); err != nil {
					t.Errorf("%s(%s=%d, len %d): %v", f.Name, p.Name, ok[0], ok[1], err)
				}
			}
		}
	}
}

func (tr *tramp) mem() api.Memory { return tr.mod.Memory() }

// FuzzHostCalls drives any host function, in any phase, with arbitrary
// arguments through the wazero boundary. A call either returns an ABI
// result (non-negative, or a defined Errno) or traps with an out-of-bounds
// error; nothing else may escape, and the host never crashes.
func FuzzHostCalls(f *testing.F) {
	f.Add(uint8(6), uint8(2), []byte{0, 0, 0, 0, 1, 0, 0, 0, 65, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0})
	f.Add(uint8(0), uint8(1), []byte{0, 0, 0, 0, 255, 255, 255, 255})
	f.Add(uint8(20), uint8(2), make([]byte, 64))
	f.Add(uint8(17), uint8(3), []byte("key\x00\x00\x00\x00meta\x00\x00\x00\x00ttl_\x00\x00\x00\x00"))
	tr := newTramp(f)
	// Some guest memory content so that names, keys and values are not all
	// empty.
	tr.mem().Write(0, []byte("AContent-Typex-y"))
	f.Fuzz(func(t *testing.T, fn, phase uint8, raw []byte) {
		fd := abi.Funcs[int(fn)%len(abi.Funcs)]
		ph := abi.Phase(phase%3 + 1)
		wp := fd.WasmParams()
		args := make([]uint64, len(wp))
		for i := range args {
			if len(raw) >= 4 {
				args[i] = uint64(binary.LittleEndian.Uint32(raw))
				raw = raw[4:]
			}
			if wp[i].Type == abi.I64 && len(raw) >= 4 {
				args[i] |= uint64(binary.LittleEndian.Uint32(raw)) << 32
				raw = raw[4:]
			}
		}
		res, err := tr.call(fd, ph, args)
		if err != nil {
			var oob *outOfBounds
			if !errors.As(err, &oob) {
				t.Fatalf("%s: unexpected error %v", fd.Name, err)
			}
			return
		}
		if fd.Result == abi.I32 {
			if r := api.DecodeI32(res); r < abi.ErrUnavailable {
				t.Fatalf("%s returned %d, not an ABI result", fd.Name, r)
			}
		}
	})
}
