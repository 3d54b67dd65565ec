//go:build unix

package testutil

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestRefusedAddr: connections to it are refused, and no listener can
// take its port while the test runs (one closed to find a port could be).
func TestRefusedAddr(t *testing.T) {
	addr := RefusedAddr(t)
	if c, err := net.Dial("tcp4", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp4", addr); err == nil {
		ln.Close()
		t.Fatalf("a listener took %s", addr)
	}
}
