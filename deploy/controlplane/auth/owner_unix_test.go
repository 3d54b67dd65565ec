//go:build unix

package auth

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRenewKeepsModeAndOwner: renewed files keep the mode and owner of
// the ones they replace. A renewal run as root (sudo, cron) for a server
// running as its own user left both its files root's, 0600: the server
// kept presenting the old certificate, and refused to start after a
// restart (permission denied).
func TestRenewKeepsModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	m, err := Init(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, serverFile), filepath.Join(dir, serverKeyFile)
	// Set, not as Init made them: the umask would decide.
	for path, mode := range map[string]os.FileMode{cert: 0o644, key: 0o600} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.RenewServer(nil); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{cert: 0o644, key: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s renewed with mode %v, want %v as before", filepath.Base(path), got, want)
		}
	}

	if os.Geteuid() != 0 {
		t.Skip("not root: only root can give the files to uid 65534, so the owner kept across a renewal is not tested")
	}
	const nobody = 65534
	for _, path := range []string{cert, key} {
		if err := os.Chown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.RenewServer(nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{cert, key} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != nobody || st.Gid != nobody {
			t.Errorf("%s renewed as uid %d gid %d, want %d and %d as before", filepath.Base(path), st.Uid, st.Gid, nobody, nobody)
		}
	}
}

// TestFirstRevocationOwnedByDirOwner: the first revocation, run as root,
// creates revoked.json for the owner of the auth directory, the servers'
// user, readable by it alone; root's, the servers could not read it and
// would not start.
func TestFirstRevocationOwnedByDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: only root can give a file to uid 65534, so the owner of a new revoked.json is not tested")
	}
	dir := t.TempDir()
	m, err := Init(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	c, err := m.Creds(POP, "pop-a", "eu")
	if err != nil {
		t.Fatal(err)
	}
	key, name, err := m.CredsUser(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(key, name, time.Now()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, revokedFile))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody || fi.Mode().Perm() != 0o600 {
		t.Errorf("a new revoked.json: uid %d gid %d mode %v, want the directory's owner %d, %d, 0600", st.Uid, st.Gid, fi.Mode().Perm(), nobody, nobody)
	}
}
