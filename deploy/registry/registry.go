// Package registry is Wedge's signed plugin registry: it stores a plugin
// version's module in the control plane's object store under its sha256
// and a signed manifest.Artifact record for it in the artifacts KV, and
// keeps the revocation list; a version is read back, verified against a
// trust store, by deploy/controlplane's Fetch, the code edges fetch with.
// It also writes the Ed25519 key pairs that sign, and reads the private
// half (trust files are manifest.LoadTrustFiles's to read).
//
// # Why
//
// Versions are immutable: a name@version is written once (a create-only
// KV write), so a rollout that names it always gets the same bytes, and a
// second push of different bytes under it is refused rather than silently
// replacing code running on the fleet. Modules are named by digest, so two
// versions with the same bytes share one object.
package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
)

// maxModuleSize is manifest.MaxModuleSize (Go plugins are 2-6 MB), lowered
// by tests.
var maxModuleSize int64 = manifest.MaxModuleSize

// wasmHeader is the magic and binary format version 1 every Wasm module
// starts with.
var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Registry reads and writes plugin versions in a control plane.
type Registry struct {
	s     *controlplane.Stores
	trust manifest.TrustStore // the POPs' keys, for revocations; nil: see Trusting
}

// New returns a registry on the control plane's stores.
func New(s *controlplane.Stores) *Registry { return &Registry{s: s} }

// Trusting returns r taking revocations as POPs with trust take them:
// a record none of its keys signed revokes nothing, so Push does not
// refuse a module for it. Without it, Push trusts its own signing key.
func (r *Registry) Trusting(trust manifest.TrustStore) *Registry {
	return &Registry{s: r.s, trust: trust}
}

// Push signs bin as name@version and stores it. Pushing the same bytes
// again under the same name@version returns the existing record; other
// bytes under it are refused.
func (r *Registry) Push(ctx context.Context, key ed25519.PrivateKey, name, version string, bin []byte, by string) (*manifest.Artifact, error) {
	if int64(len(bin)) > maxModuleSize {
		return nil, fmt.Errorf("registry: push %s@%s: module is %d bytes, limit %d", name, version, len(bin), maxModuleSize)
	}
	if !bytes.HasPrefix(bin, wasmHeader) {
		return nil, fmt.Errorf("registry: push %s@%s: not a WebAssembly module (want the \\0asm magic and version 1)", name, version)
	}
	a, err := manifest.Sign(key, name, version, bin, by)
	if err != nil {
		return nil, fmt.Errorf("registry: push: %w", err)
	}
	// Check first so that a refused push uploads nothing.
	if old, err := r.s.Artifact(ctx, name, version); err == nil {
		return sameOrRefuse(old, a)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	// Every edge refuses a revoked module, under any name or version; a
	// record they refuse (unsigned, an untrusted key) stops nothing, and
	// would let a writer of the bucket alone block a push.
	switch e, err := r.s.Revoked.Get(ctx, a.Digest); {
	case err == nil:
		trust := r.trust
		if trust == nil {
			trust = manifest.NewTrustStore(key.Public().(ed25519.PublicKey))
		}
		if rv, err := trust.CheckRevocation(a.Digest, e.Value()); err == nil {
			return nil, fmt.Errorf("registry: push %s@%s: module %.12s is revoked (%q): edges would refuse it", name, version, a.Digest, rv.Reason)
		}
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, fmt.Errorf("registry: push %s@%s: %w", name, version, err)
	}
	if err := r.putModule(ctx, a.Digest, bin); err != nil {
		return nil, err
	}
	rec, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("registry: push %s@%s: %w", name, version, err)
	}
	if _, err := r.s.Artifacts.Create(ctx, manifest.ArtifactKey(name, version), rec); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Another push of this version won the race.
			old, gerr := r.s.Artifact(ctx, name, version)
			if gerr != nil {
				return nil, gerr
			}
			return sameOrRefuse(old, a)
		}
		return nil, fmt.Errorf("registry: push %s@%s: write artifact: %w", name, version, err)
	}
	r.audit(ctx, manifest.Audit{Who: by, Action: "plugin.push", Plugin: name, Version: version,
		Why: "digest " + a.Digest + " key " + a.KeyID})
	return a, nil
}

func sameOrRefuse(old, pushed *manifest.Artifact) (*manifest.Artifact, error) {
	if old.Digest == pushed.Digest {
		return old, nil
	}
	return nil, fmt.Errorf("registry: push %s@%s: version is immutable: it holds digest %s, refusing digest %s",
		old.Name, old.Version, old.Digest, pushed.Digest)
}

// putModule uploads bin under its digest unless an object with that name
// and the right content is already there. An object under that name with
// other content (tampered) is replaced: the pusher holds the true bytes.
func (r *Registry) putModule(ctx context.Context, digest string, bin []byte) error {
	info, err := r.s.Modules.GetInfo(ctx, digest)
	switch {
	case err == nil && info.Digest == objectDigest(bin):
		return nil
	case err != nil && !errors.Is(err, jetstream.ErrObjectNotFound):
		return fmt.Errorf("registry: module %s: %w", digest, err)
	}
	if _, err := r.s.Modules.PutBytes(ctx, digest, bin); err != nil {
		return fmt.Errorf("registry: store module %s: %w", digest, err)
	}
	return nil
}

// objectDigest is bin's digest the way the object store writes it.
func objectDigest(bin []byte) string {
	sum := sha256.Sum256(bin)
	return "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])
}

// ErrNotFound is returned (wrapped) for a version, module or digest the
// registry does not hold: controlplane.ErrNotFound, so that errors.Is holds
// whichever of the two a caller names.
var ErrNotFound = controlplane.ErrNotFound

// List returns every plugin version, sorted by name, then creation time.
func (r *Registry) List(ctx context.Context) ([]manifest.Artifact, error) {
	var out []manifest.Artifact
	err := r.eachEntry(ctx, r.s.Artifacts, func(key string, v []byte) error {
		var a manifest.Artifact
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("registry: artifact %s: bad record: %w", key, err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b manifest.Artifact) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out, nil
}

// eachEntry calls fn with every live key of kv and its value.
func (r *Registry) eachEntry(ctx context.Context, kv jetstream.KeyValue, fn func(key string, v []byte) error) error {
	entries, err := r.s.ReadAll(ctx, kv, ">")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	for _, e := range entries {
		if err := fn(e.Key(), e.Value()); err != nil {
			return err
		}
	}
	return nil
}

// Revoke withdraws a digest: edges refuse to load it from then on. The
// digest must be one the registry holds, as a module or in an artifact, so
// a typo cannot pass for a revocation. key signs it (a key of the edges'
// trust store, as for Push): edges ignore an unsigned one. trust is that
// trust store, or nil for key's public key alone; key must be in it. A
// digest already revoked by a key of trust keeps its record (already is
// true). Any other record there (unsigned, a bad signature, a key edges
// do not trust) revokes nothing on the edges, so it is replaced, by a
// write conditional on its revision: otherwise writing a revocation again
// with --key, the remedy for an unsigned one, would change nothing.
func (r *Registry) Revoke(ctx context.Context, key ed25519.PrivateKey, trust manifest.TrustStore, digest, reason, by string) (already bool, err error) {
	if err := manifest.CheckDigest(digest); err != nil {
		return false, fmt.Errorf("registry: revoke: %w", err)
	}
	if strings.TrimSpace(reason) == "" {
		return false, errors.New("registry: revoke: a reason is required")
	}
	pub := key.Public().(ed25519.PublicKey)
	if trust == nil {
		trust = manifest.NewTrustStore(pub)
	}
	if _, ok := trust[manifest.KeyID(pub)]; !ok {
		return false, fmt.Errorf("registry: revoke %s: key %s is not in the trust store: edges would refuse the revocation", digest, manifest.KeyID(pub))
	}
	known, versions, err := r.knows(ctx, digest)
	if err != nil {
		return false, err
	}
	if !known {
		return false, fmt.Errorf("%w: revoke %s: no module in %s and no artifact in %s has that digest",
			ErrNotFound, digest, manifest.BucketModules, manifest.BucketArtifacts)
	}
	rv, err := manifest.SignRevocation(key, digest, reason, by)
	if err != nil {
		return false, fmt.Errorf("registry: revoke: %w", err)
	}
	rec, err := json.Marshal(rv)
	if err != nil {
		return false, fmt.Errorf("registry: revoke %s: %w", digest, err)
	}
	kept, replaced, err := r.writeRevocation(ctx, trust, digest, rec)
	if err != nil || kept {
		return kept, err
	}
	e := manifest.Audit{Who: by, Action: "plugin.revoke", Why: "digest " + digest + ": " + reason}
	if len(versions) == 1 { // the audit table's RELEASE column; several are in Why
		e.Plugin, e.Version = versions[0].Name, versions[0].Version
	}
	if len(versions) > 0 {
		names := make([]string, len(versions))
		for i, a := range versions {
			names[i] = a.Name + "@" + a.Version
		}
		e.Why = "digest " + digest + " (" + strings.Join(names, ", ") + "): " + reason
	}
	if replaced != "" {
		e.Why += " (replacing a record edges refuse: " + replaced + ")"
	}
	r.audit(ctx, e)
	return false, nil
}

// writeRevocation writes rec as digest's revocation unless a key of trust
// signed the record there (kept). replaced is why the record it replaced,
// if any, revoked nothing.
func (r *Registry) writeRevocation(ctx context.Context, trust manifest.TrustStore, digest string, rec []byte) (kept bool, replaced string, err error) {
	// Bounded: each retry means another writer changed the record since
	// it was read.
	for range 5 {
		e, err := r.s.Revoked.Get(ctx, digest)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = r.s.Revoked.Create(ctx, digest, rec)
		case err != nil:
			return false, "", fmt.Errorf("registry: revoke %s: %w", digest, err)
		default:
			_, why := trust.CheckRevocation(digest, e.Value())
			if why == nil {
				return true, "", nil
			}
			replaced = why.Error()
			_, err = r.s.Revoked.Update(ctx, digest, rec, e.Revision())
		}
		switch {
		case err == nil:
			return false, replaced, nil
		case !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			return false, "", fmt.Errorf("registry: revoke %s: %w", digest, err)
		}
		replaced = "" // written meanwhile: look at it again
	}
	return false, "", fmt.Errorf("registry: revoke %s: the record kept changing under concurrent writes; try again", digest)
}

// knows reports whether digest is in the object store or named by an
// artifact record, and the artifacts that name it.
func (r *Registry) knows(ctx context.Context, digest string) (bool, []manifest.Artifact, error) {
	_, err := r.s.Modules.GetInfo(ctx, digest)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil, fmt.Errorf("registry: revoke %s: %w", digest, err)
	}
	list, lerr := r.List(ctx)
	if lerr != nil {
		return false, nil, lerr
	}
	list = slices.DeleteFunc(list, func(a manifest.Artifact) bool { return a.Digest != digest })
	return err == nil || len(list) > 0, list, nil
}

// Revoked returns the revocation list by digest.
func (r *Registry) Revoked(ctx context.Context) (map[string]manifest.Revocation, error) {
	out := map[string]manifest.Revocation{}
	err := r.eachEntry(ctx, r.s.Revoked, func(key string, v []byte) error {
		var rv manifest.Revocation
		if err := json.Unmarshal(v, &rv); err != nil {
			return fmt.Errorf("registry: revocation %s: bad record: %w", key, err)
		}
		// The key is what the write was made under; the record's own
		// field is not trusted to agree.
		rv.Digest = key
		out[key] = rv
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// audit records an action in the append-only audit stream. The action
// itself has happened by then, so a failed audit write must not turn it
// into an error the caller would retry; it is best effort.
func (r *Registry) audit(ctx context.Context, e manifest.Audit) {
	e.Time = time.Now().UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	_, _ = r.s.JS.Publish(ctx, manifest.SubjectAudit+".registry", b)
}
