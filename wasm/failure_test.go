package wasm_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/talowa/wedge/wasm"
)

func TestFailureAttrs(t *testing.T) {
	trap := errors.New("wasm error: unreachable\nwasm stack trace:\n\t.runtime.abort(i32) i32")
	panicked := &wasm.CallError{Plugin: "p", Version: "1", Phase: "request", Kind: wasm.KindTrap, Err: trap,
		Detail: "panic: boom\n\ngoroutine 1 [running]:\nmain.f()"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"not a call error", errors.New("no"), `[kind=error err=no]`},
		{"orderly failure: its message stays in err", &wasm.CallError{Plugin: "p", Version: "1", Phase: "response", Kind: wasm.KindGuest, Detail: "bad input"},
			`[kind=guest err=wasm: plugin p@1: response: guest: bad input]`},
		{"panic: output, then the engine's trace", panicked,
			"[kind=trap err=wasm: plugin p@1: request: trap: wasm error: unreachable stack=panic: boom\n\ngoroutine 1 [running]:\nmain.f()\n\nwasm stack trace:\n\t.runtime.abort(i32) i32]"},
		{"wrapped, at configure", fmt.Errorf("%w: %w", wasm.ErrConfigure, &wasm.CallError{Plugin: "p", Version: "1", Phase: "configure", Kind: wasm.KindExit,
			Err: errors.New("exit_code(2)"), Detail: "fatal error: all goroutines are asleep"}),
			"[kind=exit err=wasm: plugin configure failed: wasm: plugin p@1: configure: exit: exit_code(2) stack=fatal error: all goroutines are asleep]"},
		{"timeout without output", &wasm.CallError{Plugin: "p", Version: "1", Phase: "request", Kind: wasm.KindTimeout, Err: errors.New("stopped at its 50ms deadline")},
			"[kind=timeout err=wasm: plugin p@1: request: timeout: stopped at its 50ms deadline]"},
	} {
		if got := fmt.Sprint(wasm.FailureAttrs(tc.err)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
