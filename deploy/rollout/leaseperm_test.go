package rollout

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
)

// The rollout role writes rollout records, their commands and the
// per-key locks (`active.<key>`); the controllers' lease is the
// controllers' own. A rollout credential that wrote the lease held off
// every controller: no rollout advanced and no failing gate rolled back,
// while `rollout status` (leaderless) saw a lease renewed in time.
func TestRolloutRoleCannotTakeLease(t *testing.T) {
	m := controlplanetest.Auth(t)
	srv, cs := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0", Auth: m})
	c, err := m.Creds(auth.Rollout, "", "")
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "rollout.creds")
	if err := os.WriteFile(creds, c, 0o600); err != nil {
		t.Fatal(err)
	}
	sec := controlplane.Security{Creds: creds, CA: filepath.Join(m.Dir, auth.CAFile)}
	nc, err := nats.Connect(srv.URL(), append(sec.Options(), nats.Timeout(5*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
