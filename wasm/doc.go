// Package wasm is the Wedge plugin runtime on wazero. It loads plugin
// versions, keeps warm pools of configured instances, runs the ABI v1 phases
// on them (see wasm/abi/README.md) and survives any plugin that misbehaves.
//
// The lifecycle of a plugin version:
//
//	rt, _ := wasm.NewRuntime(ctx, wasm.NewConfig().WithCompilationCache(dir))
//	m, err := rt.Load(ctx, wasm.Spec{Name: "auth", Version: "1.4.0", Binary: bin, Config: cfg,
//		Policy: wasm.FailClosed(503)})      // check, instrument, compile, configure, warm
//	slot := wasm.NewPlugin(m)               // what a route holds
//	v := slot.Acquire()                     // per request: the version it runs on
//	act, err := v.OnRequest(exchange)       // request phase
//	err = v.OnResponse(exchange)            // response phase
//	v.Release()
//	slot.Swap(m2)                           // hot swap; m closes when drained
//
// # Design
//
//   - Load refuses a module that is not ABI v1 before running any of it:
//     missing or mistyped exports, unknown imports, a foreign ABI version. A
//     structural pass over the binary (wasmbin) comes first, because wazero's
//     decoder allocates by the counts a module declares.
//   - Instances are created only at load or in the background, never on the
//     request path: a Go guest takes milliseconds to start. Each holds its
//     own linear memory in a private mapping, grows it in place, and returns
//     it to the kernel when closed.
//   - An instance runs one call at a time and leaves the pool only for that
//     call, so a few instances per core carry full load.
//   - Every call has a deadline. The guest is instrumented at load time to
//     return to the host every few thousand loop iterations (wasmbin), which
//     ends a runaway call and keeps the Go scheduler in control; measured at
//     1.08x on a JWT-checking Go guest, against 4-7x for wazero's
//     context-driven interruption. The deadline counts the CPU time the call
//     used, so a busy machine does not kill calls that merely waited for a
//     core; the monotonic clock decides when the dearer thread CPU clock is
//     worth reading (instance.overtime).
//   - Each version has its own deadline and memory limit (Spec), the
//     runtime's by default.
//   - Any failure discards the instance (its state is unknown), replaces it
//     in the background and hands the request the plugin's failure policy.
//   - Calls allocate nothing on the host; call statistics are kept per
//     instance and summed at scrape time, so cores do not contend for them.
package wasm
