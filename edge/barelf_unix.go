//go:build unix

package edge

import (
	"net"
	"syscall"
)

// rawConn is c's socket for lineEndConn.readFirst, nil unless c is a bare
// TCP or Unix connection: a wrapper that embeds one (TLS, or a listener
// that buffers a PROXY header) may hold bytes of its own that reading the
// socket directly would skip.
func rawConn(c net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
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
