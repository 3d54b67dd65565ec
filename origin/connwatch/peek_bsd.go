//go:build darwin || freebsd || netbsd || openbsd

package connwatch

import "golang.org/x/sys/unix"

const canPeek = true

// readable reports whether the socket has anything to read (EOF, an error,
// or bytes), without consuming it or blocking.
func readable(fd uintptr, buf []byte) bool {
	_, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err != unix.EAGAIN && err != unix.EINTR
}
