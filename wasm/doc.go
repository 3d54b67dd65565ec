// Package wasm is the Wedge plugin runtime on wazero. It loads plugin
// versions, keeps warm pools of configured instances, runs the ABI v1 phases
// on them (see wasm/abi/README.md) and survives any plugin that misbehaves.
//
// A plugin version's lifecycle is NewRuntime, Runtime.Load (check,
// instrument, compile, configure, warm a pool), Module.OnRequest and
// Module.OnResponse per request from any goroutine, Module.Close: see the
// package Example, which runs plugins/hello. A Module is reference counted:
// holders that outlive the loader's claim (the edge's config generations,
// which requests hold in turn) take a reference with Module.Ref and return
// it with Module.Release, so a version retired by a reload or a rollout
// closes only once its last request is done.
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
//
// # Logs
//
// A plugin's log calls and the runtime's records about a version go to the
// Config's logger with the attribute plugin=NAME@VERSION first (plugin=hello@3),
// so a person reading the log sees which version spoke before anything else,
// and a query still filters on one attribute. A failed call is described by
// FailureAttrs: kind, a one-line err, and stack, the guest's panic and
// goroutine stack as it wrote them (stdout and stderr, the first 2 KiB of
// the call's) followed by the engine's wasm stack trace, newlines kept.
package wasm
