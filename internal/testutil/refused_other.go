//go:build !unix

package testutil

import (
	"net"
	"testing"
)

// RefusedAddr is an address on 127.0.0.1 that refuses connections: here
// a listener's, closed, which another process may take again.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("refused address: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
