//go:build !unix

package edge

import (
	"net"
	"syscall"
)

// rawConn is nil where a socket is no file descriptor to read(2): a
// lineEndConn there reads a request's first byte alone.
func rawConn(net.Conn) syscall.RawConn { return nil }

func readFD(uintptr, []byte) (int, error) { return 0, syscall.EINVAL }
