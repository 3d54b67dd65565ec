package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
)

// TestRegistryCommands runs keys gen, plugin push, list and revoke as an
// operator would, against a control plane listening on 127.0.0.1, and
// checks what they print and what they leave in the registry.
func TestRegistryCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	t.Setenv("WEDGE_WHO", "ops-test") // the --who default
	// The commands open the control plane, they do not create it: that is
	// `wedgectl up`'s and `wedgectl control`'s job, done here by the
	// fixture.
	srv, st := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	url := srv.URL()
	dir := t.TempDir()

	var out bytes.Buffer
	if err := run(ctx, []string{"keys", "gen", "-o", dir, "ops"}, &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^private key: (\S+) .*\npublic key:  (\S+) .*\nkey id:      ([0-9a-f]{16})$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("keys gen printed %q", out.String())
	}
	privPath, pubPath, keyID := m[1], m[2], m[3]
	if privPath != filepath.Join(dir, "ops.key") || pubPath != filepath.Join(dir, "ops.pub") {
		t.Errorf("key paths %s, %s", privPath, pubPath)
	}

	wasmPath := filepath.Join(dir, "auth.wasm")
	bin := []byte("\x00asm\x01\x00\x00\x00\x00\x05\x04auth")
	if err := os.WriteFile(wasmPath, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	digest := manifest.Digest(bin)
	out.Reset()
	// Flags after the file, as the issue writes the command.
	if err := run(ctx, []string{"plugin", "push", wasmPath, "--name", "auth", "--version", "1.0.0", "--key", privPath, "--nats", url}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "pushed auth@1.0.0\ndigest: " + digest + "\nkey id: " + keyID + "\n"; out.String() != want {
		t.Errorf("plugin push printed %q, want %q", out.String(), want)
	}
	notWasm := filepath.Join(dir, "x.wasm")
	if err := os.WriteFile(notWasm, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"plugin", "push", notWasm, "--name", "x", "--version", "1", "--key", privPath, "--nats", url}, &out); err == nil || !strings.Contains(err.Error(), "not a WebAssembly module") {
		t.Errorf("pushing a non-wasm file: err = %v", err)
	}

	out.Reset()
	if err := run(ctx, []string{"plugin", "list", "--nats", url}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME VERSION DIGEST KEY ID CREATED BY" {
		t.Fatalf("plugin list printed %q", out.String())
	}
	row := strings.Fields(lines[1])
	if len(row) != 6 || row[0] != "auth" || row[1] != "1.0.0" || row[2] != digest[:12] || row[3] != keyID || row[5] != "ops-test" {
		t.Errorf("plugin list row %q", lines[1])
	}
	if _, err := time.Parse(time.RFC3339, row[4]); err != nil {
		t.Errorf("created column %q: %v", row[4], err)
	}

	out.Reset()
	if err := run(ctx, []string{"plugin", "revoke", digest, "--reason", "leaked", "--nats", url}, &out); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("revoke without a key: err = %v, want one naming --key (edges ignore an unsigned revocation)", err)
	}
	if err := run(ctx, []string{"plugin", "revoke", digest, "--reason", "leaked", "--key", privPath, "--nats", url}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "revoked " + digest + ": leaked\n"; out.String() != want {
		t.Errorf("plugin revoke printed %q, want %q", out.String(), want)
	}
	// Again, checked against the trust store given: the record is kept,
	// and the command says so rather than "revoked".
	out.Reset()
	if err := run(ctx, []string{"plugin", "revoke", digest, "--reason", "again", "--key", privPath, "--trust", m[2], "--nats", url}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "already revoked " + digest + " by a trusted key; the record is kept\n"; out.String() != want {
		t.Errorf("plugin revoke of a revoked digest printed %q, want %q", out.String(), want)
	}
	if err := run(ctx, []string{"plugin", "revoke", digest, "--key", privPath, "--nats", url}, &out); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("revoke without a reason: err = %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"plugin", "list", "--nats", url}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), digest[:12]+" (revoked)") {
		t.Errorf("plugin list after revoke printed %q", out.String())
	}
	// With the POPs' keys given, a revocation none of them signed is told
	// apart: it revokes nothing.
	_, otherPub, err := registry.GenerateKey(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"plugin", "list", "--trust", otherPub, "--nats", url}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), digest[:12]+" (revocation refused)") {
		t.Errorf("plugin list with a trust store that refuses the revocation printed %q", out.String())
	}

	// What the commands wrote is what an edge with the public key refuses.
	trust, err := manifest.LoadTrustFiles(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := registry.New(st).Revoked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := rev[digest]; r.Reason != "leaked" || r.By != "ops-test" {
		t.Errorf("revocation record %+v", r)
	}
	art, err := st.Artifact(ctx, "auth", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Fetch(ctx, trust, art, rev, manifest.MaxModuleSize); !errors.Is(err, manifest.ErrRevoked) {
		t.Errorf("Fetch of the revoked push: err = %v", err)
	}
}
