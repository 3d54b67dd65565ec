package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/internal/testutil"
)

// revokeUser withdraws the credential in the file path.
func revokeUser(t *testing.T, m *auth.Material, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, name, err := m.CredsUser(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(key, name, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// connectRefused checks that a new connection with sec is refused by the
// server as unauthorised.
func connectRefused(t *testing.T, url string, sec controlplane.Security) {
	t.Helper()
	nc, err := nats.Connect(url, append(sec.Options(), nats.Timeout(5*time.Second), nats.NoReconnect())...)
	if err == nil {
		nc.Close()
		t.Fatal("a revoked credential connected")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("a revoked credential: %v, want an authorization violation", err)
	}
}

// writesStatus checks that nc, a POP's connection, still writes its own
// status.
func writesStatus(t *testing.T, nc *nats.Conn, pop string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bounds a hang
	defer cancel()
	s, err := controlplane.OpenEdge(ctx, nc)
	if err != nil {
		t.Fatalf("%s opens its buckets: %v", pop, err)
	}
	allowed(t, nc, pop+" writes its status", func(ctx context.Context) error {
		_, err := s.Status.Put(ctx, manifest.StatusKey(popRegion, pop), []byte(`{}`))
		return err
	})
}

// TestRevoke is issue 17's withdrawal of a credential: a POP's credential
// connects; once revoked and pushed, its open connection is closed by the
// server and a new one refused, while another POP's keeps working; a
// server started again from the auth directory still refuses it.
func TestRevoke(t *testing.T) {
	url, m, _ := secureServer(t)
	ca := filepath.Join(m.Dir, auth.CAFile)
	a := controlplane.Security{Creds: credsFile(t, m, auth.POP, "pop-a"), CA: ca}
	b := controlplane.Security{Creds: credsFile(t, m, auth.POP, "pop-b"), CA: ca}
	errs := make(chan error, 8)
	ncA, err := nats.Connect(url, append(a.Options(), nats.Timeout(5*time.Second), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer ncA.Close()
	writesStatus(t, ncA, "pop-a")
	ncB, _ := dial(t, url, b)

	revokeUser(t, m, a.Creds)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	servers, err := m.PushAccount(ctx, url)
	if err != nil || len(servers) != 1 {
		t.Fatalf("push: %v, %v", servers, err)
	}
	testutil.Eventually(t, 30*time.Second, "the revoked credential's connection closed", ncA.IsClosed)
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "revoked") {
			t.Errorf("the server told the revoked connection %v, want that it was revoked", err)
		}
	case <-time.After(30 * time.Second): // bounds a hang
		t.Error("the server did not tell the revoked connection why")
	}
	connectRefused(t, url, a)
	writesStatus(t, ncB, "pop-b")

	// A server started from the auth directory (a restart, or another
	// member with a copy of it) refuses the credential as well.
	m2, err := auth.Load(m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0", Auth: m2})
	connectRefused(t, srv.URL(), a)
	nc, _ := dial(t, srv.URL(), b)
	writesStatus(t, nc, "pop-b")
}

// TestRevokeCluster: one push through one member reaches every member of
// a cluster, over its routes; a region's leaf node, which the cluster's
// push does not reach, takes it by its own URL and cuts the POP connected
// through it.
func TestRevokeCluster(t *testing.T) {
	m := controlplanetest.Auth(t)
	c, err := embedded.StartCluster(t.TempDir(), m, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := m.LeafBundle(bundle, nil); err != nil {
		t.Fatal(err)
	}
	lm, err := auth.LoadLeaf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", Name: "leaf-eu", Hub: c.LeafURLs(), Auth: lm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leaf.Shutdown)
	a := controlplane.Security{Creds: credsFile(t, m, auth.POP, "pop-a"), CA: filepath.Join(m.Dir, auth.CAFile)}
	viaLeaf, err := nats.Connect(leaf.URL(), append(a.Options(), nats.Timeout(5*time.Second), nats.NoReconnect(),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...) // the revocation's notice: expected
	if err != nil {
		t.Fatal(err)
	}
	defer viaLeaf.Close()

	revokeUser(t, m, a.Creds)
	members := c.Members()
	servers, err := m.PushAccount(ctx, members[0].URL())
	if err != nil {
		t.Fatal(err)
	}
	// The answers of all three members come within pushQuiet of each
	// other on a machine that is not stalled: only the effect is checked
	// on each, not the list.
	t.Logf("applied on %v", servers)
	if servers, err := m.PushAccount(ctx, leaf.URL()); err != nil || len(servers) != 1 || servers[0] != "leaf-eu" {
		t.Fatalf("push to the leaf: %v, %v", servers, err)
	}
	testutil.Eventually(t, 30*time.Second, "the connection through the leaf closed", viaLeaf.IsClosed)
	for _, s := range append(members, leaf) {
		testutil.Eventually(t, 30*time.Second, s.Name()+" refuses the revoked credential", func() bool {
			nc, err := nats.Connect(s.URL(), append(a.Options(), nats.Timeout(5*time.Second), nats.NoReconnect())...)
			if err == nil {
				nc.Close()
			}
			return err != nil
		})
		connectRefused(t, s.URL(), a)
	}
}

// TestRevokeRefused: what Revoke and CredsUser refuse, each with a reason.
func TestRevokeRefused(t *testing.T) {
	m := controlplanetest.Auth(t)
	other := controlplanetest.Auth(t)
	c, err := other.Creds(auth.POP, "pop-a", popRegion)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.CredsUser(c); err == nil || !strings.Contains(err.Error(), "not minted by") {
		t.Errorf("another control plane's credential: %v", err)
	}
	if _, _, err := m.CredsUser([]byte("not a credential")); err == nil {
		t.Error("garbage taken for a credential")
	}
	if err := m.Revoke("nope", "", time.Now()); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("a bad key: %v", err)
	}
	own, err := os.ReadFile(auth.CredsFile(m.Dir, auth.Controller))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := m.CredsUser(own)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(key, "", time.Now()); err == nil || !strings.Contains(err.Error(), "own controller credential") {
		t.Errorf("the controller's own credential: %v", err)
	}
	if err := os.WriteFile(filepath.Join(m.Dir, "revoked.json"), []byte(`[{"key":"UNOPE","at":"2026-01-01T00:00:00Z"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Load(m.Dir); err == nil || !strings.Contains(err.Error(), "revoked.json") {
		t.Errorf("a bad revoked.json loaded: %v", err)
	}
}
