//go:build unix

package testutil

import (
	"fmt"
	"syscall"
	"testing"
)

// RefusedAddr is an address on 127.0.0.1 that refuses connections until
// the test ends: a TCP socket bound to it, never listening, and without
// SO_REUSEADDR, holds its port. A listener opened and closed to find a
// free port (the way this was done before) leaves the port to whatever
// binds next: another test process's server, which takes connections
// and may never answer, so a request meant to be refused at once waited
// for its deadline instead.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("refused address: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("refused address: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("refused address: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
