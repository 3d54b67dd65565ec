//go:build darwin || freebsd || netbsd || openbsd

package connwatch

import "golang.org/x/sys/unix"

const canPeek = true

// peek reports what the socket holds (nothing yet, bytes, or EOF or an
// error), without consuming it or blocking.
func peek(fd uintptr, buf []byte) state {
	n, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return silent
	case err == nil && n > 0:
		return pending
	}
	return closed
}

// Nothing here tells the peer's close behind unread bytes (Linux's
// POLLRDHUP): a TLS client's close_notify ends the watch as other bytes do.
const seesClose = false

func peekN(uintptr, []byte) int { return 0 }

func peerClosed(uintptr) bool { return false }
