package registry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
)

// newRegistry starts an in-process JetStream server with the control
// plane's buckets and returns a registry on it.
func newRegistry(t *testing.T) (context.Context, *Registry, *controlplane.Stores) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	_, st := controlplanetest.Start(t, embedded.Options{})
	return ctx, New(st), st
}

// module returns a valid empty Wasm module: the header and one custom
// section named tag, so different tags give different digests.
func module(tag string) []byte {
	body := append([]byte{byte(len(tag))}, tag...)
	return append([]byte("\x00asm\x01\x00\x00\x00\x00"), append([]byte{byte(len(body))}, body...)...)
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func trustOf(keys ...ed25519.PrivateKey) manifest.TrustStore {
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public().(ed25519.PublicKey))
	}
	return manifest.NewTrustStore(pubs...)
}

func TestPushFetch(t *testing.T) {
	ctx, r, st := newRegistry(t)
	key := newKey(t)
	bin := module("auth v1")
	a, err := r.Push(ctx, key, "auth", "1.0.0", bin, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != manifest.Digest(bin) || a.Size != int64(len(bin)) || a.By != "alice" || len(a.Sig) == 0 {
		t.Fatalf("pushed artifact = %+v", a)
	}
	if _, err := st.Modules.GetInfo(ctx, a.Digest); err != nil {
		t.Fatalf("module not stored under its digest: %v", err)
	}
	got, gotBin, err := fetch(ctx, r, trustOf(key), "auth", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotBin, bin) {
		t.Fatalf("fetched %x, pushed %x", gotBin, bin)
	}
	if got.Digest != a.Digest || got.KeyID != a.KeyID || !bytes.Equal(got.Sig, a.Sig) {
		t.Fatalf("fetched artifact %+v, pushed %+v", got, a)
	}

	// A second version with the same bytes shares the object.
	if _, err := r.Push(ctx, key, "auth", "1.0.1", bin, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, key, "cache", "1.0.0", module("cache"), "bob"); err != nil {
		t.Fatal(err)
	}
	objs, err := st.Modules.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Errorf("object store holds %d modules for 2 distinct binaries", len(objs))
	}
	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name+"@"+a.Version)
	}
	if want := "auth@1.0.0 auth@1.0.1 cache@1.0.0"; strings.Join(names, " ") != want {
		t.Errorf("List = %v, want %s", names, want)
	}

	if _, err := st.Artifact(ctx, "auth", "9"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "auth@9") {
		t.Errorf("missing version: err = %v", err)
	}
	if _, _, err := fetch(ctx, r, trustOf(key), "nope", "1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fetch of a missing version: err = %v", err)
	}
}

func TestPushRefusesNonWasm(t *testing.T) {
	ctx, r, _ := newRegistry(t)
	for name, bin := range map[string][]byte{
		"empty":     nil,
		"text":      []byte("#!/bin/sh\necho hi\n"),
		"version 2": []byte("\x00asm\x02\x00\x00\x00"),
		"truncated": []byte("\x00asm\x01"),
	} {
		if _, err := r.Push(ctx, newKey(t), "p", "1", bin, ""); err == nil || !strings.Contains(err.Error(), "not a WebAssembly module") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if l, err := r.List(ctx); err != nil || len(l) != 0 {
		t.Errorf("refused pushes left %d records (err %v)", len(l), err)
	}
	if _, err := r.Push(ctx, newKey(t), "Bad Name", "1", module("x"), ""); err == nil {
		t.Error("an invalid plugin name was accepted")
	}
}

func TestImmutableVersions(t *testing.T) {
	ctx, r, st := newRegistry(t)
	key := newKey(t)
	first, err := r.Push(ctx, key, "auth", "1", module("one"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	// The same bytes again: a no-op returning the first record.
	again, err := r.Push(ctx, newKey(t), "auth", "1", module("one"), "mallory")
	if err != nil {
		t.Fatalf("re-push of the same digest: %v", err)
	}
	if again.By != "alice" || !again.Created.Equal(first.Created) || !bytes.Equal(again.Sig, first.Sig) {
		t.Errorf("re-push returned %+v, want the existing record %+v", again, first)
	}
	// Other bytes: refused, naming both digests, and nothing uploaded.
	other := module("two")
	_, err = r.Push(ctx, key, "auth", "1", other, "alice")
	if err == nil {
		t.Fatal("a version was overwritten with other bytes")
	}
	for _, d := range []string{first.Digest, manifest.Digest(other)} {
		if !strings.Contains(err.Error(), d) {
			t.Errorf("error %q does not name digest %s", err, d)
		}
	}
	if _, err := st.Modules.GetInfo(ctx, manifest.Digest(other)); err == nil {
		t.Error("a refused push uploaded its module")
	}
	_, bin, err := fetch(ctx, r, trustOf(key), "auth", "1")
	if err != nil || !bytes.Equal(bin, module("one")) {
		t.Errorf("after refused push Fetch = %q, %v", bin, err)
	}
}

// TestPushOverRelabelledRecord: the key of name@version holds a record
// naming another version with the same digest, as a corrupted control
// plane could. A push of name@version must be refused, not answered with
// that record as if it were the version pushed.
func TestPushOverRelabelledRecord(t *testing.T) {
	ctx, r, st := newRegistry(t)
	key := newKey(t)
	bin := module("auth")
	other, err := manifest.Sign(key, "other", "1", bin, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(other)
	if _, err := st.Artifacts.Put(ctx, manifest.ArtifactKey("auth", "1"), rec); err != nil {
		t.Fatal(err)
	}
	got, err := r.Push(ctx, key, "auth", "1", bin, "alice")
	if !errors.Is(err, manifest.ErrMismatch) {
		t.Fatalf("Push over a relabelled record = %+v, %v; want an error wrapping %v", got, err, manifest.ErrMismatch)
	}
}

// TestFetchRefuses is the refusal table: each way a record or
// module can be wrong is refused by Fetch with the sentinel that names it.
func TestFetchRefuses(t *testing.T) {
	key, stranger := newKey(t), newKey(t)
	cases := []struct {
		name string
		// setup corrupts the store after a@1 was pushed by key; it returns
		// the name@version to fetch.
		setup func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string)
		trust manifest.TrustStore
		want  error
	}{
		{"unsigned", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			u := *a
			u.Name, u.Sig, u.KeyID = "u", nil, ""
			putRecord(ctx, t, st, &u)
			return "u", "1"
		}, trustOf(key), manifest.ErrUnsigned},
		{"tampered", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			// Other bytes under the same digest name: the object store's
			// own digest is of the new bytes, so only our check sees it.
			if _, err := st.Modules.PutBytes(ctx, a.Digest, module("evil")); err != nil {
				t.Fatal(err)
			}
			return "a", "1"
		}, trustOf(key), manifest.ErrDigest},
		{"relabelled name", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			b := *a
			b.Name = "b"
			putRecord(ctx, t, st, &b)
			return "b", "1"
		}, trustOf(key), manifest.ErrBadSignature},
		{"relabelled version", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			v := *a
			v.Version = "2"
			putRecord(ctx, t, st, &v)
			return "a", "2"
		}, trustOf(key), manifest.ErrBadSignature},
		{"record under another key", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			// The record copied verbatim: its signature holds, but it
			// is not the version asked for.
			rec, _ := json.Marshal(a)
			if _, err := st.Artifacts.Put(ctx, manifest.ArtifactKey("b", "1"), rec); err != nil {
				t.Fatal(err)
			}
			return "b", "1"
		}, trustOf(key), manifest.ErrMismatch},
		{"revoked", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			if _, err := r.Revoke(ctx, key, nil, a.Digest, "CVE-2099-1", "sec"); err != nil {
				t.Fatal(err)
			}
			return "a", "1"
		}, trustOf(key), manifest.ErrRevoked},
		{"wrong key", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			return "a", "1"
		}, trustOf(stranger), manifest.ErrUnknownKey},
		{"bad signature", func(ctx context.Context, t *testing.T, r *Registry, st *controlplane.Stores, a *manifest.Artifact) (string, string) {
			f := *a
			f.Sig = bytes.Clone(a.Sig)
			f.Sig[7] ^= 0x01
			putRecord(ctx, t, st, &f)
			return "a", "1"
		}, trustOf(key), manifest.ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, r, st := newRegistry(t)
			a, err := r.Push(ctx, key, "a", "1", module("a"), "alice")
			if err != nil {
				t.Fatal(err)
			}
			name, version := c.setup(ctx, t, r, st, a)
			got, bin, err := fetch(ctx, r, c.trust, name, version)
			if !errors.Is(err, c.want) {
				t.Fatalf("Fetch(%s@%s) err = %v, want %v", name, version, err, c.want)
			}
			t.Logf("refused: %v", err)
			if got != nil || bin != nil {
				t.Errorf("a refused Fetch returned a record or bytes")
			}
		})
	}
}

// putRecord writes an artifact record straight into the KV, as a
// compromised control plane could.
func putRecord(ctx context.Context, t *testing.T, st *controlplane.Stores, a *manifest.Artifact) {
	t.Helper()
	rec, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Artifacts.Put(ctx, manifest.ArtifactKey(a.Name, a.Version), rec); err != nil {
		t.Fatal(err)
	}
}

func TestModuleRefusesOversize(t *testing.T) {
	ctx, r, st := newRegistry(t)
	defer func(old int64) { maxModuleSize = old }(maxModuleSize)
	maxModuleSize = 1 << 10
	if _, err := r.Push(ctx, newKey(t), "big", "1", append(module("big"), make([]byte, 1<<10)...), ""); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized push: err = %v", err)
	}
	// An object over the limit is refused without being read whole.
	big := make([]byte, maxModuleSize+1)
	digest := manifest.Digest(module("small"))
	if _, err := st.Modules.PutBytes(ctx, digest, big); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Module(ctx, digest, maxModuleSize); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized object: err = %v", err)
	}
	if _, err := st.Module(ctx, "../etc/passwd", maxModuleSize); err == nil || !strings.Contains(err.Error(), "64 hex") {
		t.Errorf("bad digest: err = %v", err)
	}
}

func TestRevoke(t *testing.T) {
	ctx, r, st := newRegistry(t)
	key := newKey(t)
	a, err := r.Push(ctx, key, "auth", "1", module("auth"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(ctx, key, nil, "abc", "typo", "sec"); err == nil || !strings.Contains(err.Error(), "64 hex") {
		t.Errorf("short digest: err = %v", err)
	}
	unknown := manifest.Digest([]byte("never pushed"))
	if _, err := r.Revoke(ctx, key, nil, unknown, "x", "sec"); !errors.Is(err, ErrNotFound) ||
		!strings.Contains(err.Error(), manifest.BucketModules) || !strings.Contains(err.Error(), manifest.BucketArtifacts) {
		t.Errorf("unknown digest: err = %v", err)
	}
	if _, err := r.Revoke(ctx, key, nil, a.Digest, "", "sec"); err == nil {
		t.Error("a revocation without a reason was accepted")
	}
	// A digest named only by an artifact (its module gone) can be revoked.
	if err := st.Modules.Delete(ctx, a.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(ctx, key, nil, a.Digest, "leaked build", "sec"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(ctx, key, nil, a.Digest, "second reason", "other"); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	// The revoked module is refused under another name and version too.
	if _, err := r.Push(ctx, key, "auth2", "9", module("auth"), "alice"); err == nil || !strings.Contains(err.Error(), "is revoked (\"leaked build\")") {
		t.Errorf("pushing a revoked module again: %v, want a refusal", err)
	}
	rev, err := r.Revoked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := rev[a.Digest]; len(rev) != 1 || got.Reason != "leaked build" || got.By != "sec" || got.Time.IsZero() {
		t.Errorf("Revoked = %+v", rev)
	}
	// Signed by the key given, as edges check.
	got := rev[a.Digest]
	if err := trustOf(key).VerifyRevocation(&got); err != nil {
		t.Errorf("the revocation does not verify: %v", err)
	}
	got.Reason = "another reason"
	if err := trustOf(key).VerifyRevocation(&got); !errors.Is(err, manifest.ErrBadRevocation) {
		t.Errorf("a revocation with its reason changed: %v, want ErrBadRevocation", err)
	}
	// Push and revoke went to the audit stream.
	info, err := st.Audit.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("audit stream holds %d entries after a push and a revocation, want 2", info.State.Msgs)
	}
	// The revocation's entry names the version (the audit table showed a
	// digest alone).
	m, err := st.Audit.GetLastMsgForSubject(ctx, manifest.SubjectAudit+".registry")
	if err != nil {
		t.Fatal(err)
	}
	var e manifest.Audit
	if err := json.Unmarshal(m.Data, &e); err != nil || e.Plugin != "auth" || e.Version != "1" || !strings.Contains(e.Why, "(auth@1): leaked build") {
		t.Errorf("revoke audit entry %+v (%v)", e, err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath, err := GenerateKey(dir, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(privPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if _, _, err := GenerateKey(dir, "ops"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("overwrote a key: err = %v", err)
	}
	priv, err := LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := manifest.LoadTrustFiles(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	id := manifest.KeyID(priv.Public().(ed25519.PublicKey))
	if len(trust) != 1 || !trust[id].Equal(priv.Public()) {
		t.Fatalf("trust store %v does not hold the generated key %s", trust, id)
	}
	a, err := manifest.Sign(priv, "p", "1", module("p"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.Verify(a, module("p"), nil); err != nil {
		t.Errorf("loaded keys do not verify their own signature: %v", err)
	}

	// Wrong files get errors that say what is wrong.
	ecKey, err := x509.MarshalPKIXPublicKey(&mustECDSA(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ecPath := write("ec.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecKey}))
	for _, c := range []struct {
		what string
		err  error
		want string
	}{
		{"private key as public", second(manifest.LoadTrustFiles(privPath)), `"PRIVATE KEY", want "PUBLIC KEY"`},
		{"public key as private", second(LoadPrivateKey(pubPath)), `"PUBLIC KEY", want "PRIVATE KEY"`},
		{"ecdsa public key", second(manifest.LoadTrustFiles(ecPath)), "not an Ed25519 key"},
		{"not PEM", second(LoadPrivateKey(write("junk", []byte("hello")))), "no PEM block"},
		{"missing file", second(manifest.LoadTrustFiles(filepath.Join(dir, "nope.pub"))), "no such file"},
		{"no files", second(manifest.LoadTrustFiles()), "no public key files"},
		{"bad name", third(GenerateKey(dir, "../x")), "key"},
	} {
		// Trust files are the manifest's to read (the edge reads them too).
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) ||
			!strings.HasPrefix(c.err.Error(), "registry: ") && !strings.HasPrefix(c.err.Error(), "manifest: ") {
			t.Errorf("%s: err = %v, want it to say %q", c.what, c.err, c.want)
		}
	}
}

func mustECDSA(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

// fetch reads name@version and its module back as an edge does: the
// record, then the bytes verified against trust and the revocation list.
func fetch(ctx context.Context, r *Registry, trust manifest.TrustStore, name, version string) (*manifest.Artifact, []byte, error) {
	a, err := r.s.Artifact(ctx, name, version)
	if err != nil {
		return nil, nil, err
	}
	revoked, err := r.Revoked(ctx)
	if err != nil {
		return nil, nil, err
	}
	bin, err := r.s.Fetch(ctx, trust, a, revoked, maxModuleSize)
	if err != nil {
		return nil, nil, err
	}
	return a, bin, nil
}

// TestRevokeReplacesRefusedRecord: a revocation written over a record the
// edges refuse (unsigned, or signed by a key they do not trust) replaces
// it and is audited; it reported success and wrote nothing, so writing an
// unsigned revocation again with --key, the README's remedy, left the
// version running. One over a trusted revocation keeps it.
func TestRevokeReplacesRefusedRecord(t *testing.T) {
	ctx, r, st := newRegistry(t)
	key, mallory := newKey(t), newKey(t)
	trust := trustOf(key)
	a, err := r.Push(ctx, key, "auth", "1", module("auth"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Push(ctx, key, "auth", "2", module("auth2"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	unsigned, _ := json.Marshal(manifest.Revocation{Digest: a.Digest, Reason: "old", Time: time.Now()})
	untrusted, _ := manifest.SignRevocation(mallory, b.Digest, "x", "mallory")
	forged, _ := json.Marshal(untrusted)
	for digest, rec := range map[string][]byte{a.Digest: unsigned, b.Digest: forged} {
		if _, err := st.Revoked.Put(ctx, digest, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{a.Digest, b.Digest} {
		already, err := r.Revoke(ctx, key, trust, d, "leaked build", "sec")
		if err != nil || already {
			t.Fatalf("revoking %.12s over a refused record: already %v, %v", d, already, err)
		}
		e, err := st.Revoked.Get(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if rv, err := trust.CheckRevocation(d, e.Value()); err != nil || rv.Reason != "leaked build" {
			t.Errorf("record of %.12s after the revocation: %+v, %v; want the trusted one", d, rv, err)
		}
	}
	info, err := st.Audit.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 4 { // two pushes, two revocations
		t.Errorf("audit stream holds %d entries, want 4", info.State.Msgs)
	}
	m, err := st.Audit.GetLastMsgForSubject(ctx, manifest.SubjectAudit+".registry")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Data), "replacing a record edges refuse") {
		t.Errorf("the revocation's audit entry does not say what it replaced: %s", m.Data)
	}
	// Revoking again keeps the trusted record, and says so.
	before, _ := st.Revoked.Get(ctx, a.Digest)
	if already, err := r.Revoke(ctx, key, trust, a.Digest, "again", "sec"); err != nil || !already {
		t.Errorf("revoking a revoked digest: already %v, %v; want already", already, err)
	}
	if after, _ := st.Revoked.Get(ctx, a.Digest); after.Revision() != before.Revision() {
		t.Error("a trusted revocation was rewritten")
	}
	// A key outside the trust store given would write a record edges refuse.
	if _, err := r.Revoke(ctx, mallory, trust, a.Digest, "x", "mallory"); err == nil || !strings.Contains(err.Error(), "not in the trust store") {
		t.Errorf("revoking with an untrusted key: %v", err)
	}
}

// TestPushOverRefusedRevocation: a revocation record the POPs refuse
// (unsigned, or by a key they do not trust) revokes nothing, so a push of
// that module goes on; before, any record in the bucket refused it, which
// let a writer of the revocations bucket alone block a version. One a
// trusted key signed still refuses it.
func TestPushOverRefusedRevocation(t *testing.T) {
	ctx, r, st := newRegistry(t)
	key, mallory := newKey(t), newKey(t)
	bin := module("blocked")
	digest := manifest.Digest(bin)
	forged, _ := manifest.SignRevocation(mallory, digest, "x", "mallory")
	rec, _ := json.Marshal(forged)
	if _, err := st.Revoked.Put(ctx, digest, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, key, "blocked", "1", bin, "alice"); err != nil {
		t.Fatalf("push over a revocation the POPs refuse: %v", err)
	}
	// mallory trusted: the same record now counts.
	if _, err := r.Trusting(trustOf(key, mallory)).Push(ctx, key, "blocked", "2", bin, "alice"); err == nil ||
		!strings.Contains(err.Error(), "is revoked") {
		t.Fatalf("push over a trusted revocation: %v", err)
	}
}
