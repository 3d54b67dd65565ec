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
// [RunChain] runs an exchange through a chain of plugins as the edge does,
// and [Pending] is the part of that both chain runners share: where the
// fields a plugin left on its answer when it continued join the response
// (wasm/abi/README.md section 4).
package host
