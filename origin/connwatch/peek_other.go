//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd

package connwatch

const canPeek = false

func peek(uintptr, []byte) state { return silent }

// Nothing here tells the peer's close behind unread bytes (Linux's
// POLLRDHUP): a TLS client's close_notify ends the watch as other bytes do.
const seesClose = false

func peekN(uintptr, []byte) int { return 0 }

func peerClosed(uintptr) bool { return false }
