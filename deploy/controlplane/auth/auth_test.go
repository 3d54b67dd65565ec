package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
)

// secureServer runs a control plane with auth on loopback, its buckets
// created (by the controller, in process), and returns its URL and auth
// material.
func secureServer(t *testing.T) (string, *auth.Material, *controlplane.Stores) {
	t.Helper()
	m := controlplanetest.Auth(t)
	srv, s := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0", Auth: m})
	if !strings.HasPrefix(srv.URL(), "tls://") {
		t.Fatalf("URL %s: want tls://", srv.URL())
	}
	return srv.URL(), m, s
}

// popRegion is the region of the POPs these tests mint credentials for.
const popRegion = "eu"

// credsFile writes a credential for role (and POP name, in popRegion)
// and returns its path.
func credsFile(t *testing.T, m *auth.Material, role auth.Role, name string) string {
	t.Helper()
	region := ""
	if role == auth.POP {
		region = popRegion
	}
	c, err := m.Creds(role, name, region)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), string(role)+".creds")
	if err := os.WriteFile(path, c, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dial connects with a credential and the CA, and collects the
// asynchronous errors the server sends (permission violations) in errs.
func dial(t *testing.T, url string, sec controlplane.Security) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 64)
	opts := append(sec.Options(), nats.Timeout(5*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// refused runs a write that the server must refuse and checks that the
// server says why: a publish not permitted is dropped with a permissions
// violation, sent to the connection's error handler. The write, which
// would otherwise wait for an ack until its timeout, is cancelled once
// the violation is in, and must not have succeeded.
func refused(t *testing.T, what string, errs chan error, write func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- write(ctx) }()
	done := result // nil once the write has returned
	var err error
	for violation := false; !violation; {
		select {
		case e := <-errs:
			violation = errors.Is(e, nats.ErrPermissionViolation) || strings.Contains(e.Error(), "Permissions Violation")
		case err = <-done:
			if err == nil {
				t.Fatalf("%s: succeeded, want a permissions error", what)
			}
			done = nil
		case <-time.After(30 * time.Second): // bounds a hang
			t.Fatalf("%s: the server reported no permissions violation", what)
		}
	}
	if done != nil {
		cancel()
		if err = <-done; err == nil {
			t.Fatalf("%s: succeeded, want a permissions error", what)
		}
	}
}

// allowed runs a write that the server must take: it succeeds, and by
// the time the server has answered a ping it has reported no error on the
// connection (nats.go records one as it reads it, before the pong).
func allowed(t *testing.T, nc *nats.Conn, what string, write func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bounds a hang
	defer cancel()
	if err := write(ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.LastError(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestPOPCredentials is the done-when: a POP's credential is
// refused when it writes desired state; it reads desired state and writes
// its own status, and not another POP's.
func TestPOPCredentials(t *testing.T) {
	url, m, cs := secureServer(t)
	ctx := context.Background()
	if _, err := cs.Desired.Put(ctx, manifest.RegionKey("eu"), []byte(`{"releases":[]}`)); err != nil {
		t.Fatal(err)
	}
	nc, errs := dial(t, url, controlplane.Security{Creds: credsFile(t, m, auth.POP, "pop-a"), CA: filepath.Join(m.Dir, auth.CAFile)})
	s, err := controlplane.OpenEdge(ctx, nc)
	if err != nil {
		t.Fatalf("a POP opens its buckets: %v", err)
	}
	allowed(t, nc, "read desired state", func(ctx context.Context) error {
		e, err := s.Desired.Get(ctx, manifest.RegionKey("eu"))
		if err == nil && string(e.Value()) != `{"releases":[]}` {
			err = errors.New("read " + string(e.Value()))
		}
		return err
	})
	allowed(t, nc, "watch desired state", func(ctx context.Context) error {
		w, err := s.Desired.WatchAll(ctx)
		if err != nil {
			return err
		}
		defer w.Stop()
		if e := <-w.Updates(); e == nil || e.Key() != manifest.RegionKey("eu") {
			return errors.New("the watch did not deliver the region's key")
		}
		return nil
	})
	allowed(t, nc, "write its own status", func(ctx context.Context) error {
		_, err := s.Status.Put(ctx, manifest.StatusKey(popRegion, "pop-a"), []byte(`{}`))
		return err
	})
	refused(t, "write desired state", errs, func(ctx context.Context) error {
		_, err := s.Desired.Put(ctx, manifest.RegionKey("eu"), []byte(`{"releases":[{"plugin":"evil"}]}`))
		return err
	})
	refused(t, "write another POP's status", errs, func(ctx context.Context) error {
		_, err := s.Status.Put(ctx, manifest.StatusKey(popRegion, "pop-b"), []byte(`{}`))
		return err
	})
	// Its report counts in the region its key names: one in another
	// region's would NACK that region's rollouts.
	refused(t, "write its status into another region", errs, func(ctx context.Context) error {
		_, err := s.Status.Put(ctx, manifest.StatusKey("us", "pop-a"), []byte(`{"pop":"pop-a","region":"us"}`))
		return err
	})
	refused(t, "revoke a module", errs, func(ctx context.Context) error {
		_, err := s.Revoked.Put(ctx, "sha256", []byte(`{}`))
		return err
	})
	if e, err := cs.Desired.Get(ctx, manifest.RegionKey("eu")); err != nil || string(e.Value()) != `{"releases":[]}` {
		t.Fatalf("desired state after the POP's attempt: %v, %v", e, err)
	}
	if _, err := cs.Status.Get(ctx, manifest.StatusKey(popRegion, "pop-b")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("pop-b's status after pop-a's attempt: %v", err)
	}
}

// TestRolePermissions: each CLI role does its job and none of the others'.
func TestRolePermissions(t *testing.T) {
	url, m, _ := secureServer(t)
	ca := filepath.Join(m.Dir, auth.CAFile)
	type job struct {
		name  string
		write func(context.Context, *controlplane.Stores) error
	}
	jobs := []job{
		{"push a module", func(ctx context.Context, s *controlplane.Stores) error {
			_, err := s.Modules.PutBytes(ctx, "sha256-x", []byte("module"))
			return err
		}},
		{"push an artifact", func(ctx context.Context, s *controlplane.Stores) error {
			_, err := s.Artifacts.Create(ctx, manifest.ArtifactKey("auth", "1.0.0"), []byte(`{}`))
			return err
		}},
		{"write a rollout", func(ctx context.Context, s *controlplane.Stores) error {
			_, err := s.Rollouts.Put(ctx, "r-1", []byte(`{}`))
			return err
		}},
		{"purge", func(ctx context.Context, s *controlplane.Stores) error {
			// No POP is alive: the purge is published and waits for no
			// confirmation, but subscribes for them first.
			_, err := s.Purge(ctx, manifest.Purge{Tag: "t"}, time.Minute, time.Millisecond)
			return err
		}},
		{"revoke", func(ctx context.Context, s *controlplane.Stores) error {
			_, err := s.Revoked.Create(ctx, "sha256-y", []byte(`{}`))
			return err
		}},
		{"write desired state", func(ctx context.Context, s *controlplane.Stores) error {
			_, err := s.Desired.Put(ctx, manifest.RegionKey("eu"), []byte(`{}`))
			return err
		}},
		{"write a status", func(ctx context.Context, s *controlplane.Stores) error {
			_, err := s.Status.Put(ctx, manifest.StatusKey(popRegion, "pop-a"), []byte(`{}`))
			return err
		}},
	}
	can := map[auth.Role][]string{
		auth.Push:    {"push a module", "push an artifact"},
		auth.Rollout: {"write a rollout", "purge"},
		auth.Revoke:  {"revoke"},
	}
	for _, role := range []auth.Role{auth.Push, auth.Rollout, auth.Revoke} {
		t.Run(string(role), func(t *testing.T) {
			nc, errs := dial(t, url, controlplane.Security{Creds: credsFile(t, m, role, ""), CA: ca})
			s, err := controlplane.Open(context.Background(), nc)
			if err != nil {
				t.Fatalf("%s opens the control plane: %v", role, err)
			}
			allowed(t, nc, "audit, and read it back", func(ctx context.Context) error {
				ack, err := s.JS.Publish(ctx, manifest.SubjectAudit+".test", []byte(`{}`))
				if err == nil {
					_, err = s.Audit.GetMsg(ctx, ack.Sequence)
				}
				return err
			})
			// What the role may do first: the connection's last error
			// must stay nil through them.
			for _, j := range jobs {
				if slices.Contains(can[role], j.name) {
					allowed(t, nc, j.name, func(ctx context.Context) error { return j.write(ctx, s) })
				}
			}
			for _, j := range jobs {
				if !slices.Contains(can[role], j.name) {
					refused(t, j.name, errs, func(ctx context.Context) error { return j.write(ctx, s) })
				}
			}
		})
	}
}

// TestRefusedConnections: no credential, a credential another control
// plane minted, plain TCP, and a client that does not trust the CA are
// all refused.
func TestRefusedConnections(t *testing.T) {
	url, m, _ := secureServer(t)
	ca := filepath.Join(m.Dir, auth.CAFile)
	other := controlplanetest.Auth(t)
	cases := []struct {
		name string
		url  string
		sec  controlplane.Security
	}{
		{"no credential", url, controlplane.Security{CA: ca}},
		{"another control plane's credential", url, controlplane.Security{Creds: credsFile(t, other, auth.Controller, ""), CA: ca}},
		{"plain TCP", strings.Replace(url, "tls://", "nats://", 1), controlplane.Security{Creds: auth.CredsFile(m.Dir, auth.Controller)}},
		{"not trusting the CA", url, controlplane.Security{Creds: auth.CredsFile(m.Dir, auth.Controller)}},
		{"trusting another CA", url, controlplane.Security{Creds: auth.CredsFile(m.Dir, auth.Controller), CA: filepath.Join(other.Dir, auth.CAFile)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc, err := nats.Connect(c.url, append(c.sec.Options(), nats.Timeout(5*time.Second))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected, want refused")
			}
		})
	}
	// The same URL with the controller's credential and the CA connects:
	// what the cases lack is what refuses them.
	nc, _ := dial(t, url, controlplane.Security{Creds: auth.CredsFile(m.Dir, auth.Controller), CA: ca})
	if _, err := controlplane.Open(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
}
