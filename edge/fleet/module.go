// Fetching modules: the verified bytes of an artifact, from the local copy or
// from the control plane, and the prefetch that compiles pushed versions
// ahead of a rollout. Apply, Restore and prefetch all get a module's bytes
// through module, which checks them against the trust store.

package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/wasm"
)

// module returns the verified bytes of an artifact: from the local copy
// if there is one, else from the control plane (then kept locally). stores
// is nil when restoring from disk.
func (a *Agent) module(ctx context.Context, art *manifest.Artifact, stores *controlplane.Stores) ([]byte, error) {
	a.mu.Lock()
	revoked := a.revoked
	a.mu.Unlock()
	// Refuse what no bytes could fix before touching the disk: the digest
	// names the local file, and an unsigned record (a prefetch takes any
	// the artifacts bucket holds) could otherwise point the read anywhere.
	if err := manifest.CheckDigest(art.Digest); err != nil {
		return nil, fmt.Errorf("%s@%s: %w", art.Name, art.Version, err)
	}
	if err := a.o.Trust.Verify(art, nil, revoked); err != nil {
		return nil, err
	}
	path := a.modulePath(art.Digest)
	// A local copy passes the checks a fetched one does; one whose bytes
	// are not the signed ones is fetched again.
	bin, err := readLimited(path, a.o.MaxModule)
	if err == nil {
		if got := manifest.Digest(bin); got != art.Digest {
			err = fmt.Errorf("%s on disk is damaged: its bytes hash to %s", path, got)
		} else {
			return bin, nil
		}
	}
	if stores == nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("module %s not on disk", art.Digest)
		}
		return nil, fmt.Errorf("module %s: %w", art.Digest, err)
	}
	bin, err = stores.Fetch(ctx, a.o.Trust, art, revoked, a.o.MaxModule)
	if err != nil {
		return nil, err
	}
	if a.o.Dir != "" {
		if err := writeFile(path, bin); err != nil {
			a.o.Logger.Warn("module not kept on disk", "digest", art.Digest, "err", err)
		}
	}
	return bin, nil
}

// readLimited reads the file at path, refusing one over limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	if path == "" {
		return nil, os.ErrNotExist
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bin, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(bin)) > limit {
		err = fmt.Errorf("%s: over the %d byte limit", path, limit)
	}
	return bin, err
}

func (a *Agent) modulePath(digest string) string {
	if a.o.Dir == "" {
		return ""
	}
	return filepath.Join(a.o.Dir, "modules", digest+".wasm")
}

// prefetch fetches, verifies and compiles newly pushed versions of the
// plugins the node runs, one at a time, so that a rollout reaching this POP
// later only has to load them: publish to applied in well under the
// seconds a compile of a Go plugin takes.
func (a *Agent) prefetch(ctx context.Context, pushed <-chan manifest.Artifact, stores *controlplane.Stores) {
	for {
		select {
		case <-ctx.Done():
			return
		case art := <-pushed:
			if !a.runs(art.Name) || ctx.Err() != nil {
				continue // the next round returns if ctx ended
			}
			start := time.Now()
			a.compiling.Lock()
			bin, err := a.module(ctx, &art, stores)
			if err == nil {
				err = a.node.Precompile(ctx, bin)
			}
			a.compiling.Unlock()
			if err != nil {
				a.o.Logger.Warn("pushed version not prefetched", "plugin", wasm.PluginID(art.Name, art.Version), "err", err)
				continue
			}
			a.o.Logger.Info("pushed version prefetched", "plugin", wasm.PluginID(art.Name, art.Version), "took", time.Since(start))
		}
	}
}

// runs reports whether any route of the node runs the plugin.
func (a *Agent) runs(plugin string) bool {
	for key := range a.node.Running() {
		if key == plugin || strings.HasSuffix(key, "/"+plugin) {
			return true
		}
	}
	return false
}
