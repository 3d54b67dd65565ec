package fleet_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestPOPWithCredentials: a POP with its own credential, over TLS, does
// all a POP does (reads its buckets, applies a desired state, reports,
// applies and acknowledges a purge) with no permissions violation: the
// pop role's permissions are enough for the real agent.
func TestPOPWithCredentials(t *testing.T) {
	m := controlplanetest.Auth(t)
	f := newFixture(t, embedded.Options{Listen: "127.0.0.1:0", Auth: m})
	log := &testutil.SyncBuffer{}
	f.log = slog.New(slog.NewTextHandler(log, nil))
	c, err := m.Creds(auth.POP, "pop1", "eu-test")
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "pop1.creds")
	if err := os.WriteFile(creds, c, 0o600); err != nil {
		t.Fatal(err)
	}
	// Another POP's or another region's credential is refused at start:
	// the server would refuse its status or its rate-limit usage one
	// message at a time.
	n := edgetest.Start(t, f.yaml)
	for _, other := range [][2]string{{"pop2", "eu-test"}, {"pop1", "us-test"}} {
		oc, err := m.Creds(auth.POP, other[0], other[1])
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "other.creds")
		if err := os.WriteFile(file, oc, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = fleet.New(n.Node, fleet.Options{URL: f.cp.URL(), Region: "eu-test", POP: "pop1", Trust: f.trust, Unsigned: true,
			Security: controlplane.Security{Creds: file}})
		if err == nil || !strings.Contains(err.Error(), "--region") {
			t.Errorf("POP pop1 of eu-test with %s of %s's credential: %v, want an error saying how to mint one", other[0], other[1], err)
		}
	}
	f.startPOP(fleet.Options{URL: f.cp.URL(), Security: controlplane.Security{Creds: creds, CA: filepath.Join(m.Dir, auth.CAFile)}})
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rev := f.setDesired(manifest.Release{Artifact: v2})
	f.status("v2 applied", func(s manifest.Status) bool {
		return s.Revision >= rev && s.Applied && s.Running["stamp"].Version == "v2"
	})
	f.purgeConfirmed("a")
	if strings.Contains(log.String(), "Permissions Violation") || strings.Contains(log.String(), "permissions violation") {
		t.Fatalf("the POP was refused something it needs:\n%s", log)
	}
}
