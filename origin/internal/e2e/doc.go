// Package e2e holds the end-to-end tests and benchmarks of the origin link:
// the edge's origin client, the origin service and upstream HTTP servers, all
// over real sockets on 127.0.0.1. It has no code of its own beyond tests; it
// lives apart from package origin so that its tests import the edge side
// without the origin service ever importing it.
package e2e
