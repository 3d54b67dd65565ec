// Package importrules holds no code, only a test that enforces the import
// rules of Wedge's architecture (ARCHITECTURE.md) on the module as it is:
// the edge binary links no NATS server and no origin server, and the
// packages that define a wire contract (wasm/abi, origin/wire,
// deploy/manifest) import nothing of this module, so that every side of a
// contract can import its definition.
package importrules
