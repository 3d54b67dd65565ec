package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// ErrNotFound is returned (wrapped) for a plugin version or module the
// control plane does not hold.
var ErrNotFound = errors.New("controlplane: not found")

// ErrUnavailable marks a read that failed in a way that may pass (the
// control plane did not answer, or the link broke mid-read), as against an
// answer that will not change: not found, too large, the wrong bytes. A
// caller that retries retries only these.
var ErrUnavailable = errors.New("controlplane: unavailable")

// Artifact returns the signed record of name@version. A record stored
// under another name@version than its own is refused with
// manifest.ErrMismatch: its signature may hold, but it is not the version
// asked for.
func (s *Stores) Artifact(ctx context.Context, name, version string) (*manifest.Artifact, error) {
	e, err := s.Artifacts.Get(ctx, manifest.ArtifactKey(name, version))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: no plugin version %s@%s", ErrNotFound, name, version)
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: artifact %s@%s: %w: %w", name, version, ErrUnavailable, err)
	}
	var a manifest.Artifact
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		return nil, fmt.Errorf("controlplane: artifact %s@%s: bad record: %w", name, version, err)
	}
	if a.Name != name || a.Version != version {
		return nil, fmt.Errorf("controlplane: artifact %s@%s: %w: the record names %s@%s",
			name, version, manifest.ErrMismatch, a.Name, a.Version)
	}
	return &a, nil
}

// Module returns the module stored under digest, refusing one over limit
// bytes and bytes that do not hash to digest (the error wraps
// manifest.ErrDigest).
func (s *Stores) Module(ctx context.Context, digest string, limit int64) ([]byte, error) {
	if err := manifest.CheckDigest(digest); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	res, err := s.Modules.Get(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: no module %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: module %s: %w: %w", digest, ErrUnavailable, err)
	}
	defer res.Close()
	if info, err := res.Info(); err == nil && uint64(info.Size) > uint64(limit) {
		return nil, fmt.Errorf("controlplane: module %s is %d bytes, limit %d", digest, info.Size, limit)
	}
	// The object's size is its own claim: bound the read as well.
	bin, err := io.ReadAll(io.LimitReader(res, limit+1))
	if err != nil {
		return nil, fmt.Errorf("controlplane: module %s: %w: %w", digest, ErrUnavailable, err)
	}
	if int64(len(bin)) > limit {
		return nil, fmt.Errorf("controlplane: module %s is over the %d byte limit", digest, limit)
	}
	if got := manifest.Digest(bin); got != digest {
		return nil, fmt.Errorf("controlplane: module %s: %w: the stored bytes hash to %s", digest, manifest.ErrDigest, got)
	}
	return bin, nil
}

// Fetch returns the module art names, at most limit bytes, verified
// against trust and the revocation list: the record first, so that a
// refused module is never downloaded, then the bytes against the signed
// digest. A refusal wraps the manifest sentinel that names the reason
// (manifest.ErrUnsigned, ErrRevoked, ErrUnknownKey, ErrBadSignature,
// ErrDigest); a module the store lacks wraps ErrNotFound, and a failure
// that may pass ErrUnavailable.
func (s *Stores) Fetch(ctx context.Context, trust manifest.TrustStore, art *manifest.Artifact, revoked map[string]manifest.Revocation, limit int64) ([]byte, error) {
	if err := trust.Verify(art, nil, revoked); err != nil {
		return nil, fmt.Errorf("controlplane: fetch: %w", err)
	}
	// Module checks the bytes against art.Digest, which the signature
	// covers: that completes Verify's check.
	bin, err := s.Module(ctx, art.Digest, limit)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: %w", art.Name, art.Version, err)
	}
	return bin, nil
}
