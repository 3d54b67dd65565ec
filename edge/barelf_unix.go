//go:build unix

package edge

import (
	"net"
	"syscall"
)

// rawConn is c's socket for lineEndConn.readFirst, nil if c has none (TLS).
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// readFD is one read(2) on a non-blocking socket, retried on EINTR.
func readFD(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}
