package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/internal/testutil"
)

// TestControlRevoke: `control revoke FILE` withdraws a POP's credential on
// the running server (its connection is closed, a new one refused) and
// audits it; the other POP's credential keeps working.
func TestControlRevoke(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, cs := authPlane(t, dir)
	var out testutil.SyncBuffer
	creds := map[string]string{}
	for _, pop := range []string{"eu-1", "eu-2"} {
		creds[pop] = filepath.Join(t.TempDir(), pop+".creds")
		if err := run(ctx, []string{"control", "creds", "pop", pop, "--region", "eu", "--auth", dir, "-o", creds[pop]}, &out); err != nil {
			t.Fatal(err)
		}
	}
	connect := func(pop string) (*nats.Conn, error) {
		sec := controlplane.Security{Creds: creds[pop], CA: filepath.Join(dir, auth.CAFile)}
		return nats.Connect(srv.URL(), append(sec.Options(), nats.NoReconnect(), nats.Timeout(5*time.Second),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...) // the revocation's notice: expected
	}
	pop1, err := connect("eu-1")
	if err != nil {
		t.Fatal(err)
	}
	defer pop1.Close()

	for _, args := range [][]string{
		{creds["eu-1"], "--auth", dir},                                         // no reason
		{"UNOPE", "--auth", dir, "--reason", "x"},                              // neither a key nor a file
		{creds["eu-1"], "--reason", "x"},                                       // no auth directory
		{auth.CredsFile(dir, auth.Controller), "--auth", dir, "--reason", "x"}, // the control plane's own
	} {
		if err := run(ctx, append([]string{"control", "revoke", "--nats", srv.URL(), "--who", "ops"}, args...), &out); err == nil {
			t.Errorf("control revoke %s: no error", strings.Join(args, " "))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "revoked.json")); !os.IsNotExist(err) {
		t.Fatalf("a refused revoke recorded something: %v", err)
	}

	out = testutil.SyncBuffer{}
	if err := run(ctx, []string{"control", "revoke", creds["eu-1"], "--auth", dir, "--nats", srv.URL(), "--who", "ops", "--reason", "laptop stolen"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pop/eu-1") || !strings.Contains(out.String(), "withdrawn now on "+srv.Name()) {
		t.Fatalf("control revoke printed %q", out.String())
	}
	testutil.Eventually(t, 30*time.Second, "the revoked POP's connection closed", pop1.IsClosed)
	if c, err := connect("eu-1"); err == nil {
		c.Close()
		t.Fatal("the revoked credential connected again")
	}
	pop2, err := connect("eu-2")
	if err != nil {
		t.Fatalf("the other POP's credential: %v", err)
	}
	pop2.Close()
	a, err := rollout.RecentAudit(ctx, cs, 1)
	if err != nil || len(a) != 1 || a[0].Action != "creds.revoke" || a[0].Who != "ops" || !strings.Contains(a[0].Why, "laptop stolen") {
		t.Fatalf("audit %+v, %v", a, err)
	}
}
