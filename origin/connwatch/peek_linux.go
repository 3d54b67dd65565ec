package connwatch

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const canPeek = true

// peek reports what the socket holds (nothing yet, bytes, or EOF or an
// error), without consuming it or blocking. It calls recvfrom directly
// because unix.Recvfrom allocates a sockaddr on every call.
func peek(fd uintptr, buf []byte) state {
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		return silent
	case errno == 0 && n > 0:
		return pending
	}
	return closed
}
