// Package soak holds long-running and fault-injection tests of a real edge
// node: plugins built from source, a real origin service, clients over
// loopback TCP, and the node's own metrics as the witness. It has no code
// of its own; everything is in its tests.
//
// TestSoak runs the full plugin chain (auth -> ratelimit -> cache) plus an
// auth-only route to the origin under a steady closed-loop load and checks
// that memory, goroutines, file descriptors, plugin instances and the
// cache's bytes stay flat. Its length comes from WEDGE_SOAK (a Go
// duration, default 45s, so that every `go test ./...` runs a short one):
//
//	WEDGE_SOAK=10m go test -run TestSoak ./edge/internal/soak -v
//
// TestPluginFaultsUnderLoad injects plugin traps, panics, runaway loops
// and memory blow-ups into one route while other traffic runs, and checks
// that each fails closed promptly, is counted, is replaced, and leaves
// neither the other traffic nor the process's memory worse off.
//
// # Why a package of its own
//
// Both tests measure the whole process (RSS, goroutines, open files), so
// they must not share a test binary with edge's other tests, which run
// nodes of their own at the same time.
package soak
