// Package testguests holds the guest plugins tests and benchmarks build:
// noop (the cheapest possible call), hs256 (a realistic JWT check through
// host crypto), misbehave (every way a guest can go wrong, chosen per
// request), inject (header injection attempts, for the edge's abuse tests),
// seen (what plugins read of a request, for the edge's front-door tests),
// traceseen (the traceparent a plugin reads, for the edge's tracing test),
// bodies (reads and sets back request and response bodies, for the edge's
// streamed body tests), relay (sets the request header its config names,
// for the edge's health attribution tests), rewrite (rewrites a path prefix, for the edge's
// regional cache tier tests), fleet/* (versions of one plugin, good and
// bad, for rollout tests) and rustnoop (a Rust crate, for wasmbuild's
// Cargo path).
// Each is built by wasm/wasmtest.Build.
package testguests
