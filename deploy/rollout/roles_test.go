package rollout

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
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

// roleConn starts a control plane with authentication and connects to it
// with a credential of role; cs is the controller's view of it.
func roleConn(t *testing.T, role auth.Role) (cs *controlplane.Stores, nc *nats.Conn) {
	t.Helper()
	m := controlplanetest.Auth(t)
	srv, cs := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0", Auth: m})
	c, err := m.Creds(role, "", "")
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), string(role)+".creds")
	if err := os.WriteFile(creds, c, 0o600); err != nil {
		t.Fatal(err)
	}
	sec := controlplane.Security{Creds: creds, CA: filepath.Join(m.Dir, auth.CAFile)}
	nc, err = nats.Connect(srv.URL(), append(sec.Options(), nats.Timeout(5*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return cs, nc
}

// The controller's audit entries carry a Nats-Msg-Id built from what any
// role can read (the rollout's ID and record revision, the action and the
// region). The push role may publish audit entries (plugin.push): with
// that ID on its own entry, it must not be able to make the stream drop
// the controller's rollback entry as a duplicate.
func TestAuditIDUnforgeable(t *testing.T) {
	cs, nc := roleConn(t, auth.Push)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r := &Rollout{ID: "r-victim", Plugin: "auth", Version: "2"}
	r.rev = 7 // the record's revision, which every role reads
	// The push role's entry, on its own subject, with the ID the
	// controller will give its rollback entry.
	if _, err := js.Publish(ctx, manifest.SubjectAudit+".registry", []byte(`{"action":"plugin.push","why":"nothing to see"}`),
		jetstream.WithMsgID(r.ID+".7.rollback.eu")); err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := publish(ctx, cs, key, r, "rollback", "controller", "eu", "gate error_rate<1% failed"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Audit.GetLastMsgForSubject(ctx, manifest.SubjectAudit+".rollback"); err != nil {
		t.Fatalf("the controller's rollback entry is not in the audit stream (%v): the push role's entry with the same Nats-Msg-Id made the stream drop it as a duplicate", err)
	}
}

// The rollout role writes rollout records, their commands and the
// per-key locks (`active.<key>`); the controllers' lease is the
// controllers' own. A rollout credential that wrote the lease held off
// every controller: no rollout advanced and no failing gate rolled back,
// while `rollout status` (leaderless) saw a lease renewed in time.
func TestRolloutRoleCannotTakeLease(t *testing.T) {
	cs, nc := roleConn(t, auth.Rollout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(lease{Holder: "not-a-controller", Expires: time.Now().Add(time.Hour), Every: time.Hour})
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second) // a refused put waits for an ack that never comes
	defer wcancel()
	_, werr := s.Rollouts.Put(wctx, leaseKey, b)
	led, err := NewController(cs, Options{}).lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	why, err := leaderless(ctx, cs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if werr == nil || !led {
		t.Fatalf("the rollout role wrote the controllers' lease (put error %v): a controller takes the lead: %v; rollout status says %q", werr, led, why)
	}
}
