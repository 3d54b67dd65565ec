package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
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
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Desired.Get(ctx, manifest.RegionKey("eu")); err != nil || !bytes.Equal(e.Value(), want) {
		t.Fatalf("restored desired state: %v", err)
	}
	err = run(ctx, []string{"control", "restore", "--nats", dst.URL(), dir}, &out)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a control plane with state: %v, want a refusal", err)
	}
	if err := run(ctx, []string{"control", "restore", "--nats", dst.URL(), "--force", dir}, &out); err != nil {
		t.Fatalf("restore --force: %v", err)
	}
}
