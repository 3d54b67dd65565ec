// The disk state: the last-known-good state kept in Options.Dir, restored at
// start (Restore) and written after each apply (save), and the atomic file
// write it and the local module copies use.

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// state is what the agent keeps on disk: the releases it applied, with the
// artifacts that name the module files next to it, and the desired-state
// records (region's, POP's) they merge, so that after a restart a record
// the POP refuses (verify.go: unsigned, or older than these, a replay)
// leaves it on these rather than on the config file's plugins.
type state struct {
	Revision uint64                         `json:"revision"`
	Releases map[string]manifest.Release    `json:"releases"`
	Revoked  map[string]manifest.Revocation `json:"revoked"`
	Desired  map[string]*manifest.Desired   `json:"desired,omitempty"`
}

// stillSigned reports whether the record d of key on disk verifies under
// the keys the POP trusts now. Only then does its Issued hold as the
// key's replay floor: after a rotation away from a controller key (one
// that leaked, say), a record that key dated far ahead refused every
// record of the new key as stale, for good.
func (a *Agent) stillSigned(key string, d *manifest.Desired) bool {
	b, err := json.Marshal(d)
	if err == nil {
		_, err = manifest.ParseSignedDesired(b, key, a.o.Control)
	}
	return err == nil
}

// Restore applies the last-known-good state from disk, verifying every
// module again (the trust store may have changed since). Call it before the
// node serves, so a restarted POP never serves older plugins than it did.
// Only a disk that cannot be read is an error; a state that no longer
// verifies is logged and the node keeps the config file's plugins.
func (a *Agent) Restore(ctx context.Context) error {
	if a.o.Dir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(a.o.Dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		a.o.Logger.Error("last-known-good state unreadable; serving the config file's plugins", "err", err)
		return nil
	}
	a.mu.Lock()
	if st.Revoked != nil {
		a.revoked = st.Revoked
	}
	a.mu.Unlock()
	for key, d := range st.Desired {
		if ks := a.desired[key]; ks != nil && d != nil && a.stillSigned(key, d) {
			ks.issued = d.Issued // a replay stays refused even if the rest is
		}
	}
	// The same checks as anything from the control plane.
	d, _ := json.Marshal(manifest.Desired{Plugins: st.Releases})
	if _, err = manifest.ParseDesired(d); err == nil {
		_, err = a.apply(ctx, st.Releases, nil)
	}
	if err != nil {
		a.o.Logger.Error("last-known-good state refused; serving the config file's plugins", "err", err)
		return nil
	}
	applied, _ := json.Marshal(st.Releases)
	a.applied = string(applied)
	for key, d := range st.Desired {
		if ks := a.desired[key]; ks != nil {
			ks.d = d
		}
	}
	a.applies.WithLabelValues("disk").Inc()
	a.revision.Set(float64(st.Revision))
	a.mu.Lock()
	a.status.Revision, a.status.Source = st.Revision, "disk"
	a.mu.Unlock()
	a.o.Logger.Info("serving the last-known-good state from disk", "revision", st.Revision, "plugins", len(st.Releases))
	return nil
}

// save writes the state, then removes module files it does not name that
// are older than an hour (younger ones may be prefetched for a rollout).
func (a *Agent) save(st state) error {
	if a.o.Dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(a.o.Dir, "state.json"), b); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, r := range st.Releases {
		keep[r.Artifact.Digest+".wasm"] = true
		if r.Canary != nil {
			keep[r.Canary.Artifact.Digest+".wasm"] = true
		}
	}
	files, _ := os.ReadDir(filepath.Join(a.o.Dir, "modules"))
	for _, f := range files {
		if info, err := f.Info(); err == nil && !keep[f.Name()] && time.Since(info.ModTime()) > time.Hour {
			os.Remove(filepath.Join(a.o.Dir, "modules", f.Name()))
		}
	}
	return nil
}

// writeFile replaces path atomically, so a crash leaves the old state or
// the new, never half of one.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
