package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
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

	// The running call's deadline (see overtime). Only the goroutine
	// running the call uses these: in invoke, yield, sleep and charge.
	//
	// start is the nanotime the call began and budget its deadline, in ns of
	// CPU time. deadline is the nanotime of the next check: until then the
	// call cannot have used its budget, so no clock but the cheap monotonic
	// one is read. cpuBase is the thread's CPU clock at the first check,
	// from which the call has its budget; locked says the goroutine is locked to
	// its thread since that check. wall says deadline is the end of the
	// budget on the wall clock: there is no thread clock to read. work
	// counts host work towards the next check.
	start, budget, deadline int64
	cpuBase                 int64
	locked, wall            bool
	work                    int
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
		if now := nanotime(); now > i.deadline {
			i.overtime(now)
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

// firstLook is the share of the budget, on the wall clock, at which a call
// first reads its thread's CPU clock (see overtime): calls shorter than
// that never do.
const firstLook = 4

// errDeadline is the panic value that ends a call past its deadline; wazero
// turns it into the call's error.
var errDeadline = errors.New("call deadline exceeded")

// yield is the host function the instrumented guest calls whenever its fuel
// runs out (see wasmbin.Instrument). Returning to Go here is also what lets
// the Go scheduler preempt a long-running guest.
func yield(ctx context.Context, _ api.Module, _ []uint64) {
	i := ctx.(*instance)
	if now := nanotime(); now > i.deadline {
		i.overtime(now)
	}
}

// arm starts the deadline of a call beginning at now. With a thread clock
// the first check comes at a quarter of the budget (firstLook).
func (i *instance) arm(now int64, budget time.Duration) {
	i.start, i.budget, i.wall = now, int64(budget), !haveThreadClock
	i.deadline = now + i.budget/firstLook
	if i.wall {
		i.deadline = now + i.budget
	}
}

// overtime is the deadline check of a call past its next check time on the
// wall clock. It ends the call (panics with errDeadline) once the call has
// used its budget of CPU time since its first look, and otherwise sets the
// next check time.
//
// # Why CPU time, and why this way
//
// On a busy machine a call waits for a core: on the wall clock, calls that
// needed microseconds of CPU were killed at a 100 ms deadline, and their
// instances (milliseconds of CPU each to replace) with them. What a deadline
// is for is stopping a guest that computes too long, so it counts CPU.
//
// Reading a thread's CPU clock is a system call, dearer than a whole plugin
// call, so the cheap monotonic clock decides when to look: a call cannot use
// more CPU than wall time has passed. The first look comes at a quarter of
// the budget on the wall clock, and from there the call may use its whole
// budget. What it used before is not known (its goroutine may have run on
// several threads), only that it was at most that quarter: so a call is
// never stopped before it has used its budget, whatever it waited for, and
// a runaway stops having used between one and one and a quarter budgets.
// (Charging the quarter, or half at a look at half, as this did, stopped
// calls that waited for a core and then computed most of their budget.)
//
// From the first look on, the goroutine stays locked to its thread until
// the call ends: a goroutine can move to another thread at any host call,
// and then the difference of two readings would be two threads' time, some
// of it other goroutines'. A locked thread runs this goroutine only. Later
// looks come no earlier than the rest of the budget could be used up.
//
// Time a call spends blocked in a host function does not count either, so
// host functions must bound their own waits. A guest's own sleeps count on
// the wall clock in sleep only: a guest that sleeps almost its whole budget
// may still compute a budget after the first look, so a call can take up
// to two budgets of wall time.
func (i *instance) overtime(now int64) {
	if i.wall {
		panic(errDeadline)
	}
	if !i.locked {
		runtime.LockOSThread()
		i.locked = true
		cpu, ok := threadCPU()
		if !ok { // the wall clock it is
			i.wall, i.deadline = true, i.start+i.budget
			return
		}
		i.cpuBase, i.deadline = cpu, now+i.budget
		return
	}
	cpu, ok := threadCPU()
	if !ok {
		panic(errDeadline)
	}
	left := i.budget - (cpu - i.cpuBase)
	if left <= 0 {
		panic(errDeadline)
	}
	i.deadline = now + left
}

// sleep serves the guest's WASI sleeps, on the wall clock: a sleep is
// waiting the guest asked for, not waiting for a core, so it counts in full
// against the budget, and a sleep past the end of it ends the call.
func (i *instance) sleep(ns int64) {
	left := i.start + i.budget - nanotime()
	time.Sleep(time.Duration(min(ns, max(left, 0))))
	if ns >= left {
		panic(errDeadline)
	}
}

func (m *Module) id() string { return PluginID(m.spec.Name, m.spec.Version) }

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
	mod, err := m.engine.InstantiateModule(experimental.WithMemoryAllocator(ctx, m.alloc), m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: plugin %s: instantiate: %v", ErrInvalidModule, m.id(), err)
	}
	inst.mod = mod
	inst.mem = mod.Memory()
	inst.onRequest = mod.ExportedFunction(abi.ExportOnRequest)
	inst.onResponse = mod.ExportedFunction(abi.ExportOnResponse)
	initTimeout := max(m.timeout, m.rt.cfg.initTimeout)
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, ce := inst.invoke(init, abi.PhaseConfigure, nil, initTimeout, nanotime()); ce != nil {
			inst.close()
			return nil, fmt.Errorf("%w: %w", ErrConfigure, ce)
		}
	}
	res, ce := inst.invoke(mod.ExportedFunction(abi.ExportConfigure), abi.PhaseConfigure, nil, initTimeout, nanotime())
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
	m.series.instances.Inc()
	m.calls.add(inst)
	inst.trackMemory()
	return inst, nil
}

// invoke runs fn under a deadline of timeout from now, which the caller
// read: the call path has just read the clock. Any error leaves the
// instance in an unknown state: the caller discards it.
func (i *instance) invoke(fn api.Function, phase abi.Phase, ex host.Exchange, timeout time.Duration, now int64) (int32, *CallError) {
	i.hc.Reset(i.m.env, phase, ex)
	i.out.reset()
	i.stack[0] = 0
	i.arm(now, timeout)
	err := fn.CallWithStack(i, i.stack[:])
	i.hc.Release()
	if i.locked {
		i.locked = false
		runtime.UnlockOSThread()
	}
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
// failed memory.grow is not a trap, so the guest's allocator reports it (the
// Go runtime ends with a line "fatal error: out of memory", after
// "runtime: out of memory: cannot allocate ..." when the heap could not
// grow). Only such a line counts: a guest that printed the words anywhere
// and then failed otherwise was reported as out of memory.
func (i *instance) nearMemoryLimit() bool {
	limit := uint64(i.m.memLimit) * wasmPage
	if i.mem != nil && uint64(i.mem.Size()) >= limit/8*7 {
		return true
	}
	for line := range bytes.Lines(i.out.buf) {
		if msg, ok := bytes.CutPrefix(line, []byte("fatal error: ")); ok && bytes.Contains(msg, []byte("out of memory")) ||
			bytes.HasPrefix(line, []byte("runtime: out of memory:")) {
			return true
		}
	}
	return false
}

func (i *instance) close() {
	_ = i.mod.Close(context.Background())
	if i.live {
		i.live = false
		i.m.calls.remove(i)
		i.m.series.instances.Dec()
		i.m.series.memory.Sub(float64(i.memSize))
	}
}

// trackMemory keeps the memory gauge current; linear memory only grows, and
// rarely, so this is a compare per call.
func (i *instance) trackMemory() uint32 {
	size := i.mem.Size()
	if size != i.memSize {
		i.m.series.memory.Add(float64(size) - float64(i.memSize))
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
