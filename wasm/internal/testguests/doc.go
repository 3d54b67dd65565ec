// Package testguests holds the guest plugins the runtime's own tests and
// benchmarks build: noop (the cheapest possible call), hs256 (a realistic
// JWT check through host crypto) and misbehave (every way a guest can go
// wrong, chosen per request). Each is a main package built by
// wasm/wasmtest.Build.
package testguests
