//go:build !unix

package auth

import "os"

// keepOwner does nothing here: a file has no Unix owner and group to
// keep, and the new one is its creator's, as os.Chown could not change.
func keepOwner(*os.File, os.FileInfo) error { return nil }
