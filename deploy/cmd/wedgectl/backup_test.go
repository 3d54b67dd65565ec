package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/internal/testutil"
)

// TestControlBackupRestore runs wedgectl control backup against a control
// plane on 127.0.0.1 and control restore into a second, empty one: the
// desired state comes back; restoring again is refused as not empty, and
// taken with --force.
func TestControlBackupRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	src, st := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	want := []byte(`{"plugins":{},"why":"backed up"}`)
	if _, err := st.Desired.Put(ctx, manifest.RegionKey("eu"), want); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "b")
	var out bytes.Buffer
	if err := run(ctx, []string{"control", "backup", "--nats", src.URL(), dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "KV_wedge_desired    kv       1") || !strings.Contains(out.String(), "backed up to "+dir) {
		t.Errorf("backup output:\n%s", out.String())
	}

	dst, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.Shutdown)
	out.Reset()
	if err := run(ctx, []string{"control", "restore", "--nats", dst.URL(), dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "restored the backup of ") {
		t.Errorf("restore output:\n%s", out.String())
	}
	nc, err := dst.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wantDesired(t, ctx, nc, want, "restored desired state")
	err = run(ctx, []string{"control", "restore", "--nats", dst.URL(), dir}, &out)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a control plane with state: %v, want a refusal", err)
	}
	if err := run(ctx, []string{"control", "restore", "--nats", dst.URL(), "--force", dir}, &out); err != nil {
		t.Fatalf("restore --force: %v", err)
	}

	// As an operator gets an empty control plane: `control --embedded
	// --server-only`, with no controller to create buckets and take a
	// lease (which a restore is right to call live state). Then started
	// as usual, its controller runs over the restored state.
	cpDir, addr := t.TempDir(), freeAddrs(t, 1)[0]
	authDir := filepath.Join(cpDir, "auth")
	sec := controlplane.Security{Creds: auth.CredsFile(authDir, auth.Controller), CA: filepath.Join(authDir, auth.CAFile)}
	target := []string{"--nats", "tls://" + addr, "--creds", sec.Creds, "--ca", sec.CA}
	serve := func(what string, args ...string) (stop func()) {
		cout := &testutil.SyncBuffer{}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- run(cctx, append([]string{"control", "--embedded", cpDir, "--listen", addr}, args...), cout)
		}()
		testutil.Eventually(t, hangGuard, what, func() bool { return strings.Contains(cout.String(), what) })
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("control %q: %v\n%s", args, err, cout.String())
			}
		}
	}
	stop := serve("server only", "--server-only")
	if err := run(ctx, append(append([]string{"control", "restore"}, target...), dir), &out); err != nil {
		t.Fatalf("restore into a control plane run with --server-only: %v", err)
	}
	stop()
	defer serve("rollout controller running", "--trust", trustFile(t))()
	nc2, err := nats.Connect("tls://"+addr, sec.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	wantDesired(t, ctx, nc2, want, "desired state restored through --server-only")
	if err := run(ctx, []string{"control", "--server-only"}, &out); err == nil || !strings.Contains(err.Error(), "--embedded") {
		t.Errorf("--server-only without --embedded: %v, want an error naming --embedded", err)
	}
}

// wantDesired fails the test unless the control plane nc reaches holds
// want as eu's desired state.
func wantDesired(t *testing.T, ctx context.Context, nc *nats.Conn, want []byte, what string) {
	t.Helper()
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Desired.Get(ctx, manifest.RegionKey("eu")); err != nil || !bytes.Equal(e.Value(), want) {
		t.Fatalf("%s: %v", what, err)
	}
}
