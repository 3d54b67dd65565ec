package wasm

import (
	"errors"
	"fmt"
)

// Sentinel errors; a *CallError or a load error wraps one of them.
var (
	// ErrInvalidModule: the binary is not a usable ABI v1 plugin.
	ErrInvalidModule = errors.New("wasm: invalid plugin module")
	// ErrConfigure: the plugin refused its configuration.
	ErrConfigure = errors.New("wasm: plugin configure failed")
	// ErrClosed: the runtime or module is closed.
	ErrClosed = errors.New("wasm: closed")
)

// Kind classifies a failed call.
type Kind uint8

const (
	// KindTrap: the guest trapped (unreachable, out-of-bounds access, an
	// invalid argument to a host function such as an out-of-range pointer).
	KindTrap Kind = iota + 1
	// KindTimeout: the call used its deadline's worth of CPU time (or
	// slept past it) and was interrupted.
	KindTimeout
	// KindExit: the guest exited (a Go panic ends in proc_exit(2)).
	KindExit
	// KindMemory: the guest failed at its linear-memory limit: its memory
	// had grown to within an eighth of it, or its output has the Go
	// runtime's fatal error ("fatal error: out of memory") on a line.
	KindMemory
	// KindGuest: the guest reported a failure in an orderly way (ActionFail,
	// or a negative result from configure).
	KindGuest
	// KindBusy: no instance became free within the call deadline.
	KindBusy
	kindCount
)

var kindNames = [...]string{"", "trap", "timeout", "exit", "memory", "guest", "busy"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// CallError is a failed guest call. Error() names plugin, version and phase,
// for example:
//
//	wasm: plugin auth@1.2.0: request: timeout: stopped at its 50ms deadline
type CallError struct {
	Plugin, Version string
	Phase           string
	Kind            Kind
	// Err is the underlying engine error, if any.
	Err error
	// Detail is the guest's own message (error_set) or the tail of what it
	// wrote to stderr (a Go panic and its stack).
	Detail string
}

func (e *CallError) Error() string {
	s := fmt.Sprintf("wasm: plugin %s@%s: %s: %s", e.Plugin, e.Version, e.Phase, e.Kind)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *CallError) Unwrap() error { return e.Err }

// outOfBounds is the panic value of a host function given a range outside
// guest memory; wazero turns it into the call's error.
type outOfBounds struct {
	fn       string
	ptr, len uint32
	memSize  uint32
}

func (e *outOfBounds) Error() string {
	return fmt.Sprintf("wedge.%s: range [%d, +%d) outside linear memory of %d bytes", e.fn, e.ptr, e.len, e.memSize)
}
