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

const seesClose = true

// peekN is how many bytes a peek into buf found on the socket (0 for none,
// or an error).
func peekN(fd uintptr, buf []byte) int {
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// peerClosed reports whether the peer closed or reset the socket, bytes it
// sent before still unread (a peek shows those, not the close behind them).
func peerClosed(fd uintptr) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n == 1 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}
