package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/internal/testutil"
)

// TestControlCreds mints a POP's credential with `control creds` while
// the control plane runs: the server, told nothing, takes it, and the POP
// opens its buckets with it.
func TestControlCreds(t *testing.T) {
	dir := t.TempDir()
	var out testutil.SyncBuffer
	ctx := context.Background()
	if err := run(ctx, []string{"control", "creds", "pop", "eu-1", "--region", "eu", "--auth", dir}, &out); err == nil {
		t.Fatal("minted a credential from a directory that is not a control plane's")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("control creds made an auth directory of its own: %v", ents)
	}
	srv, _ := authPlane(t, dir)
	// A POP's rate-limit usage is published for its region: a credential
	// without one would not know which.
	if err := run(ctx, []string{"control", "creds", "pop", "eu-1", "--auth", dir}, &out); err == nil || !strings.Contains(err.Error(), "--region") {
		t.Fatalf("a POP's credential without --region: %v, want an error naming it", err)
	}

	// Over a file readable by all, as a careless copy leaves it.
	file := filepath.Join(t.TempDir(), "eu-1.creds")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"control", "creds", "pop", "eu-1", "--region", "eu", "--auth", dir, "-o", file}, &out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the credential file: %v, %v; want mode 0600", fi, err)
	}
	pop, err := nats.Connect(srv.URL(), controlplane.Security{Creds: file, CA: filepath.Join(dir, auth.CAFile)}.Options()...)
	if err != nil {
		t.Fatalf("the minted credential refused: %v", err)
	}
	defer pop.Close()
	if _, err := controlplane.OpenEdge(ctx, pop); err != nil {
		t.Fatal(err)
	}

	out = testutil.SyncBuffer{}
	if err := run(ctx, []string{"control", "creds", "push", "--auth", dir}, &out); err != nil || !strings.Contains(out.String(), "NATS USER JWT") {
		t.Fatalf("control creds push printed %q: %v", out.String(), err)
	}
	for _, args := range [][]string{
		{"pop"},             // no POP name
		{"push", "eu-1"},    // a name for a role that takes none
		{"pop", "EU 1"},     // not a POP name
		{"admin"},           // no such role
		{"controller", "x"}, // a name for a role that takes none
	} {
		if err := run(ctx, append([]string{"control", "creds", "--auth", dir}, args...), &out); err == nil {
			t.Errorf("control creds %s: no error", strings.Join(args, " "))
		}
	}
}

// TestLeafBundleAndHosts: `control leaf-bundle` needs the control plane's
// auth directory and makes a bundle `control leaf` loads; a --tls-hosts
// the existing certificate does not name is warned of.
func TestLeafBundleAndHosts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out testutil.SyncBuffer
	if _, err := initAuth(dir, "cp-1", &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "warning") {
		t.Fatalf("a warning on first start: %s", out.String())
	}
	if _, err := initAuth(dir, "cp-1,cp-2", &out); err != nil || !strings.Contains(out.String(), "does not name cp-2") {
		t.Fatalf("a host the certificate lacks: %v, %q", err, out.String())
	}
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := run(ctx, []string{"control", "leaf-bundle", bundle, "--auth", t.TempDir()}, &out); err == nil {
		t.Fatal("a leaf bundle from a directory that is not a control plane's")
	}
	if err := run(ctx, []string{"control", "leaf-bundle", bundle, "--auth", dir, "--tls-hosts", "leaf-eu"}, &out); err != nil {
		t.Fatal(err)
	}
	m, err := auth.LoadLeaf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if missing := m.TLS.Unnamed([]string{"leaf-eu", "localhost"}); len(missing) != 0 {
		t.Fatalf("the leaf's certificate does not name %v", missing)
	}
	for _, args := range [][]string{{"control", "leaf-bundle", "--auth", dir}, {"control", "leaf-bundle", bundle}} {
		if err := run(ctx, args, &out); err == nil {
			t.Errorf("%s: no error", strings.Join(args, " "))
		}
	}
}

// authPlane is a control plane with auth on from a new auth directory in
// dir, its buckets made, until the test ends.
func authPlane(t *testing.T, dir string) (*embedded.Server, *controlplane.Stores) {
	t.Helper()
	m, err := auth.Init(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0", Auth: m})
}

// TestControlRenewCertsWrongDir: renew-certs given a leaf's bundle, or
// control --embedded's DIR, as --auth says what it was given and what to
// give it, where it said the directory was neither an auth directory nor
// a leaf bundle.
func TestControlRenewCertsWrongDir(t *testing.T) {
	ctx := context.Background()
	embeddedDir := t.TempDir()
	dir := filepath.Join(embeddedDir, "auth")
	if _, err := auth.Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	var out testutil.SyncBuffer
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := run(ctx, []string{"control", "leaf-bundle", bundle, "--auth", dir}, &out); err != nil {
		t.Fatal(err)
	}
	for given, want := range map[string]string{
		bundle:      "is a leaf bundle: renew it on the control plane with --auth AUTH_DIR --leaf-bundle BUNDLE_DIR",
		embeddedDir: "--auth " + dir,
	} {
		err := run(ctx, []string{"control", "renew-certs", "--auth", given}, &out)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("renew-certs --auth %s: %v, want %q", given, err, want)
		}
	}
}

// TestControlRenewCerts: `control renew-certs` issues the servers'
// certificate again, for the names it had, and the server that was
// running presents it to the next connection; with --leaf-bundle it
// renews a leaf's, for the names asked for, and only its own control
// plane's.
func TestControlRenewCerts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, _ := authPlane(t, dir)
	var out testutil.SyncBuffer
	creds := filepath.Join(t.TempDir(), "eu-1.creds")
	if err := run(ctx, []string{"control", "creds", "pop", "eu-1", "--region", "eu", "--auth", dir, "-o", creds}, &out); err != nil {
		t.Fatal(err)
	}
	sec := controlplane.Security{Creds: creds, CA: filepath.Join(dir, auth.CAFile)}
	serial := func() string {
		nc, err := nats.Connect(srv.URL(), sec.Options()...)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		st, err := nc.TLSConnectionState()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%x", st.PeerCertificates[0].SerialNumber)
	}
	old := serial()
	out = testutil.SyncBuffer{}
	if err := run(ctx, []string{"control", "renew-certs", "--auth", dir}, &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`serial ([0-9a-f]+), for localhost, 127.0.0.1, valid until (\S+)`).FindStringSubmatch(out.String())
	if m == nil || m[1] == old {
		t.Fatalf("control renew-certs said %q, want a new serial and the old names", out.String())
	}
	if until, err := time.Parse(time.RFC3339, m[2]); err != nil || until.After(time.Now().Add(91*24*time.Hour)) {
		t.Fatalf("renewed until %s (%v), want 90 days", m[2], err)
	}
	testutil.Eventually(t, time.Minute, "the running server presents the renewed certificate", func() bool { return serial() == m[1] })

	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := run(ctx, []string{"control", "leaf-bundle", bundle, "--auth", dir}, &out); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"control", "renew-certs", "--auth", dir, "--leaf-bundle", bundle, "--tls-hosts", "leaf-eu"}, &out); err != nil {
		t.Fatal(err)
	}
	leaf, err := auth.LoadLeaf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if missing := leaf.TLS.Unnamed([]string{"leaf-eu", "localhost"}); len(missing) != 0 {
		t.Fatalf("the leaf's renewed certificate does not name %v", missing)
	}
	other := t.TempDir()
	if _, err := auth.Init(other, nil); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"control", "renew-certs"},
		{"control", "renew-certs", "--auth", dir, "extra"},
		{"control", "renew-certs", "--auth", t.TempDir()},                    // not an auth directory
		{"control", "renew-certs", "--auth", other, "--leaf-bundle", bundle}, // another control plane's leaf
		{"control", "renew-certs", "--auth", bundle},                         // a leaf bundle holds no CA key
	} {
		if err := run(ctx, args, &out); err == nil {
			t.Errorf("%s: no error", strings.Join(args, " "))
		}
	}
}
