package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// instance is one instantiated, configured guest. It runs one call at a time:
// the pool hands it to a single caller for the duration of a guest call.
//
// # Why an instance is a context.Context
//
// Host functions find the calling instance through the ctx wazero passes
// them. Deriving a context per call with context.WithValue would allocate on
// every call; passing the instance itself as the (never cancelled) context
// allocates nothing. charge and yield recover it.
type instance struct {
	context.Context

	m   *Module
	mod api.Module
	mem api.Memory
	hc  host.Call
	out outputBuffer

	onRequest, onResponse api.Function

	// deadline is the nanotime the running call must end by; work counts
	// host work towards the next deadline check. Only the goroutine running
	// the call uses them: in yield, sleep and charge.
	deadline int64
	work     int
	// live is set once the instance counts in the instances gauge; memSize
	// is what it last added to the memory gauge.
	live    bool
	memSize uint32
	// slot is the pool slot the instance was last put in.
	slot int

	features abi.Feature
	stack    [1]uint64
	calls    [2]callStats // by phase index; see callStats
}

// charge accounts units of host work (about a byte each) to the call
// running on the instance behind ctx, and returns its abi.Host. Every
// hostWorkCheck units it checks the deadline: loop headers are not the only
// way to spend time, and a guest looping over large digests or signature
// checks must stop at its deadline too.
func charge(ctx context.Context, units int) abi.Host {
	i, ok := ctx.(*instance)
	if !ok {
		panic("wasm: host function called outside a Wedge instance call")
	}
	if i.work += units; i.work >= hostWorkCheck {
		i.work = 0
		if nanotime() > i.deadline {
			panic(errDeadline)
		}
	}
	return &i.hc
}

// view resolves a (ptr, len) argument of host function fn to guest memory,
// trapping the call when the range is outside it.
func view(mem api.Memory, ptr, n uint64, fn string) []byte {
	p, l := uint32(ptr), uint32(n)
	if l == 0 {
		return nil
	}
	if mem != nil {
		if b, ok := mem.Read(p, l); ok {
			return b
		}
	}
	var size uint32
	if mem != nil {
		size = mem.Size()
	}
	panic(&outOfBounds{fn: fn, ptr: p, len: l, memSize: size})
}

// errDeadline is the panic value that ends a call past its deadline; wazero
// turns it into the call's error.
var errDeadline = errors.New("call deadline exceeded")

// yield is the host function the instrumented guest calls whenever its fuel
// runs out (see wasmbin.Instrument). Returning to Go here is also what lets
// the Go scheduler preempt a long-running guest.
func yield(ctx context.Context, _ api.Module, _ []uint64) {
	if nanotime() > ctx.(*instance).deadline {
		panic(errDeadline)
	}
}

// sleep serves the guest's WASI sleeps: up to the call's deadline, where the
// call ends.
func (i *instance) sleep(ns int64) {
	left := i.deadline - nanotime()
	time.Sleep(time.Duration(min(ns, max(left, 0))))
	if ns >= left {
		panic(errDeadline)
	}
}

func (m *Module) id() string { return m.spec.Name + "@" + m.spec.Version }

// newInstance instantiates and configures one instance.
func (m *Module) newInstance(ctx context.Context) (*instance, error) {
	inst := &instance{Context: context.Background(), m: m}
	cfg := wazero.NewModuleConfig().
		WithName("").         // anonymous: many instances of one compiled module
		WithStartFunctions(). // _initialize runs below, under a deadline
		WithSysNanotime().    // real clocks: with fake ones the Go guest GC stalls
		WithSysWalltime().
		WithNanosleep(inst.sleep).
		WithRandSource(rand.Reader).
		WithStdout(&inst.out).
		WithStderr(&inst.out)
	mod, err := m.rt.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, mmapAllocator), m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: plugin %s: instantiate: %v", ErrInvalidModule, m.id(), err)
	}
	inst.mod = mod
	inst.mem = mod.Memory()
	inst.onRequest = mod.ExportedFunction(abi.ExportOnRequest)
	inst.onResponse = mod.ExportedFunction(abi.ExportOnResponse)
	initTimeout := max(m.timeout, m.rt.cfg.initTimeout)
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, ce := inst.invoke(init, abi.PhaseConfigure, nil, initTimeout); ce != nil {
			inst.close()
			return nil, fmt.Errorf("%w: %w", ErrConfigure, ce)
		}
	}
	res, ce := inst.invoke(mod.ExportedFunction(abi.ExportConfigure), abi.PhaseConfigure, nil, initTimeout)
	if ce == nil && res < 0 {
		ce = &CallError{Plugin: m.spec.Name, Version: m.spec.Version, Phase: "configure", Kind: KindGuest,
			Detail: cmpOr(inst.hc.ErrorMessage(), fmt.Sprintf("configure returned %d", res))}
	}
	if ce != nil {
		inst.close()
		return nil, fmt.Errorf("%w: %w", ErrConfigure, ce)
	}
	inst.features = res
	inst.live = true
	m.m.instances.Inc()
	m.calls.add(inst)
	inst.trackMemory()
	return inst, nil
}

// invoke runs fn under the deadline. Any error leaves the instance in an
// unknown state: the caller discards it.
func (i *instance) invoke(fn api.Function, phase abi.Phase, ex host.Exchange, timeout time.Duration) (int32, *CallError) {
	i.hc.Reset(i.m.env, phase, ex)
	i.out.reset()
	i.stack[0] = 0
	i.deadline = nanotime() + int64(timeout)
	err := fn.CallWithStack(i, i.stack[:])
	i.hc.Release()
	if err == nil {
		return int32(i.stack[0]), nil
	}
	ce := &CallError{Plugin: i.m.spec.Name, Version: i.m.spec.Version, Phase: abi.PhaseName(phase), Err: err}
	var exit *sys.ExitError
	switch {
	case errors.Is(err, errDeadline):
		ce.Kind, ce.Err = KindTimeout, fmt.Errorf("stopped at its %v deadline", timeout)
	case i.nearMemoryLimit():
		ce.Kind = KindMemory
	case errors.As(err, &exit):
		ce.Kind = KindExit
	default:
		ce.Kind = KindTrap
	}
	ce.Detail = i.out.String()
	return 0, ce
}

// nearMemoryLimit guesses whether a failure came from the memory limit: a
// failed memory.grow is not a trap, so the guest's allocator reports it (a Go
// guest prints "out of memory" and exits).
func (i *instance) nearMemoryLimit() bool {
	limit := uint64(i.m.rt.cfg.memoryLimit) * wasmPage
	return i.mem != nil && uint64(i.mem.Size()) >= limit/8*7 ||
		bytes.Contains(i.out.buf, []byte("out of memory"))
}

func (i *instance) close() {
	_ = i.mod.Close(context.Background())
	if i.live {
		i.live = false
		i.m.calls.remove(i)
		i.m.m.instances.Dec()
		i.m.m.memory.Sub(float64(i.memSize))
	}
}

// trackMemory keeps the memory gauge current; linear memory only grows, and
// rarely, so this is a compare per call.
func (i *instance) trackMemory() uint32 {
	size := i.mem.Size()
	if size != i.memSize {
		i.m.m.memory.Add(float64(size) - float64(i.memSize))
		i.memSize = size
	}
	return size
}

// outputBuffer keeps the start of what a guest wrote during one call: a Go
// panic or fatal error and the top of its stack end up in the call's error
// instead of being lost. The start, because Go prints the reason first and
// then every goroutine.
type outputBuffer struct {
	buf     []byte
	dropped int
}

func (o *outputBuffer) Write(p []byte) (int, error) {
	keep := min(len(p), guestOutputMax-len(o.buf))
	o.buf = append(o.buf, p[:keep]...)
	o.dropped += len(p) - keep
	return len(p), nil
}

func (o *outputBuffer) reset() { o.buf, o.dropped = o.buf[:0], 0 }

func (o *outputBuffer) String() string {
	s := string(bytes.TrimSpace(o.buf))
	if o.dropped > 0 {
		s += " [" + strconv.Itoa(o.dropped) + " more bytes]"
	}
	return s
}
