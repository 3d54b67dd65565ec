//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd

package connwatch

const canPeek = false

func readable(uintptr, []byte) bool { return false }
