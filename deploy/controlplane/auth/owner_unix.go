//go:build unix

package auth

import (
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of old, the file it replaces,
// when this process may: as root. Any other user's process cannot give a
// file away, and f is already its own.
func keepOwner(f *os.File, old os.FileInfo) error {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}
