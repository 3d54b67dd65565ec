package wasm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/talowa/wedge/internal/leaktest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/internal/wasmbin"
)

// TestCloseDuringValidate closes a runtime while Validate compiles a plugin
// into a fresh compilation cache (a real compile). Close must
// wait for the compile: wazero's engine closed under it was a data race,
// and then a crash in the compiler, which a POP shutting down while its
// fleet agent precompiled a pushed version ran into. A Validate after
// Close is refused with ErrClosed.
func TestCloseDuringValidate(t *testing.T) {
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.NewConfig().WithCompilationCache(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	bin := bulkyPlugin(1000)
	// The test holds the compile's claim until Close is under way, so the
	// compile runs while Close waits, however busy the machine (catching a
	// compile in flight by polling missed it when the compile ended first).
	release := rt.HoldCompile(bin)
	validated := make(chan error, 1)
	go func() { validated <- rt.Validate(ctx, bin) }()
	testutil.Eventually(t, hangGuard, "the compile waiting for its claim", func() bool { return stacksHold("wasm.(*sharedCache).claim") })
	closed := make(chan error, 1)
	go func() { closed <- rt.Close(ctx) }()
	testutil.Eventually(t, hangGuard, "Close under way", func() bool { return stacksHold("wasm.(*Runtime).Close") })
	release()
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if stacksHold("wasm.(*Runtime).prepare") {
		t.Fatal("Close returned while a compile was still running")
	}
	if err := <-validated; err != nil {
		t.Fatalf("Validate when Close came: %v, want the compile finished first", err)
	}
	if err := rt.Validate(ctx, bin); !errors.Is(err, wasm.ErrClosed) {
		t.Fatalf("Validate after Close: %v, want ErrClosed", err)
	}
}

// bulkyPlugin is a valid ABI v1 plugin with n filler functions: a compile
// of some 100 ms (300 ms under -race), long enough to be seen under way
// and a fraction of a Go guest's.
func bulkyPlugin(n int) []byte {
	funcs, exports := abiExports("")
	for i := range exports {
		exports[i].Index = uint32(i)
	}
	var body []byte
	for range 40 {
		body = append(body, wasmbin.Cat(wasmbin.I32Const(7), wasmbin.I32Const(9), []byte{0x6a, 0x1a})...) // add, drop
	}
	body = append(body, 0x0b)
	for range n {
		funcs = append(funcs, wasmbin.Func{Body: body})
	}
	exports = append(exports, wasmbin.Export{Name: "memory", Memory: true})
	return (&wasmbin.Module{Funcs: funcs, Memory: &wasmbin.Limits{Min: 1}, Exports: exports}).Encode()
}

// TestSharedCacheCompilesOnce compiles one module in four runtimes of one
// process with the same compilation cache at once, as four nodes of a
// test fleet do with a version pushed to all of them: one compiles, the
// others wait and then take its code from memory. A runtime closing does
// not close the cache under the others.
//
// The test holds the module's compile claim itself while the four start,
// so all four are seen waiting on it and none compiling, however busy the
// machine: waiting to catch one compile in flight with the others queued
// behind it missed the moment when the compile ended first.
func TestSharedCacheCompilesOnce(t *testing.T) {
	ctx := context.Background()
	cfg := wasm.NewConfig().WithCompilationCache(t.TempDir())
	rts := make([]*wasm.Runtime, 4)
	for i := range rts {
		var err error
		if rts[i], err = wasm.NewRuntime(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	bin := bulkyPlugin(1000)
	release := rts[0].HoldCompile(bin)
	errs := make(chan error, len(rts))
	for _, rt := range rts {
		go func() { errs <- rt.Validate(ctx, bin) }()
	}
	testutil.Eventually(t, hangGuard, "every runtime waiting for the held compile", func() bool {
		if n := goroutinesIn("wazevo.(*engine).compileModule"); n > 0 {
			t.Fatalf("%d compiles started while another runtime held the module's compile", n)
		}
		return goroutinesIn("wasm.(*sharedCache).claim") == len(rts)
	})
	release()
	for range rts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := rts[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rts[1].Validate(ctx, bin); err != nil {
		t.Fatalf("after another runtime closed: %v", err)
	}
	for _, rt := range rts[1:] {
		if err := rt.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// stacksHold reports whether any goroutine runs fn.
func stacksHold(fn string) bool { return goroutinesIn(fn) > 0 }

// goroutinesIn counts the goroutines running fn (see leaktest.Stacks).
func goroutinesIn(fn string) int { return len(leaktest.Stacks(fn)) }
