// Package host implements what ABI v1 host functions do, independent of any
// Wasm engine: [Call] implements abi.Host over an [Exchange] (the HTTP
// request and response a plugin sees) and an [Env] (the plugin's
// configuration and the host stores: response cache, rate limiter, key ring,
// metrics, log).
//
// Package wasm puts Call behind wazero host functions; sdk/sdktest puts the
// very same Call behind the native build of the guest SDK, so a plugin's
// unit tests run against the real host semantics, not an imitation.
//
// Byte slices that reach Call are views of guest memory, valid during the
// call only: everything kept is copied.
//
// [Flow] is the one chain runner: the order of the phases, where the
// fields a plugin left on its answer when it continued join the response
// (wasm/abi/README.md section 4), what answered means and the background
// revalidation. The edge runs its requests through it over a [Chain] of
// its own (edge/handler.go); [RunChain] runs it over plain functions for
// wasmtest, sdktest and the conformance kit.
package host
