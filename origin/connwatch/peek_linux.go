package connwatch

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const canPeek = true

// readable reports whether the socket has anything to read (EOF, an error,
// or bytes), without consuming it or blocking. It calls recvfrom directly
// because unix.Recvfrom allocates a sockaddr on every call.
func readable(fd uintptr, buf []byte) bool {
	// A result of 0 is EOF, more is stray bytes, an error other than
	// "nothing yet" is a broken socket: all of them mean unusable.
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return errno != unix.EAGAIN && errno != unix.EINTR
}
