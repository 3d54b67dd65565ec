package wasm_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"

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
	validated := make(chan error, 1)
	go func() { validated <- rt.Validate(ctx, bin) }()
	eventually(t, "the compile under way", func() bool { return stacksHold("wasm.(*Runtime).compile") })
	if err := rt.Close(ctx); err != nil {
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
	errs := make(chan error, len(rts))
	for _, rt := range rts {
		go func() { errs <- rt.Validate(ctx, bin) }()
	}
	const compiling = "wazevo.(*engine).compileModule"
	eventually(t, "one compile under way, the others waiting", func() bool {
		if n := goroutinesIn(compiling); n > 1 {
			t.Fatalf("%d compiles of one module at once", n)
		}
		return goroutinesIn(compiling) == 1 && goroutinesIn("wasm.(*sharedCache).claim") == len(rts)-1
	})
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

// goroutinesIn counts the goroutines running fn: with a frame of fn on
// their stacks (a goroutine fn started, on its way out, only names it in
// its "created by" line).
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		for line := range bytes.Lines(g) {
			if bytes.Contains(line, []byte(fn)) && !bytes.HasPrefix(line, []byte("created by ")) {
				count++
				break
			}
		}
	}
	return count
}
