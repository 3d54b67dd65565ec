// Package hostcall is the raw binding to the Wedge host: one function per
// ABI v1 host function (wasm/abi.Funcs), taking byte slices where the ABI takes
// (ptr, len) pairs and returning the ABI's result unchanged, Errno included.
// Plugins use package sdk; this layer is for the SDK itself and for the
// conformance kit, which must reach every error path.
//
// Built for GOOS=wasip1 the functions are //go:wasmimport calls. Built for
// anything else they call the abi.Host installed with SetHost, which is how
// sdk/sdktest runs plugin code natively against the real host logic.
//
// Both builds are generated from wasm/abi by wasm/abi/internal/abigen.
package hostcall
