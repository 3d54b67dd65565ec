package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
)

// TestRestoreIntoCluster restores a backup of a server alone into an empty
// cluster of three: the same content, every stream kept three times as the
// cluster keeps its own, and the control plane's own Ensure content with
// it.
func TestRestoreIntoCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, src := backedUp(t, ctx)
	want := restored(snapshot(t, ctx, src.JS.Conn()))

	_, nc := controlplanetest.StartCluster(t)
	if _, err := Restore(ctx, nc, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, ctx, nc)
	for name, w := range want {
		if strings.Join(got[name], "\n") != strings.Join(w, "\n") {
			t.Errorf("stream %s restored into the cluster as\n%s\nwant\n%s", name, strings.Join(got[name], "\n"), strings.Join(w, "\n"))
		}
	}
	js, _ := jetstream.New(nc)
	for name := range want {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s restored with %d replicas, want 3", name, r)
		}
	}
	if _, err := controlplane.Ensure(ctx, nc); err != nil {
		t.Fatalf("Ensure on the restored cluster: %v", err)
	}
	// The freshly restored cluster backs up, the same content again: its
	// reading once stalled for good on a consumer that got no pull.
	m, err := Backup(ctx, nc, filepath.Join(t.TempDir(), "again"))
	if err != nil {
		t.Fatalf("backup of the restored cluster: %v", err)
	}
	for _, s := range m.Streams {
		if s.Count != len(want[s.Name]) {
			t.Errorf("backup of the restored cluster holds %d of stream %s's %d", s.Count, s.Name, len(want[s.Name]))
		}
	}
}

// TestRestoreClusterBackupAlone restores a backup whose streams a cluster
// kept three times into a server alone: each comes back with one.
func TestRestoreClusterBackupAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, _ := backedUp(t, ctx)
	// Only the streams' configs change, as a cluster's backup has them,
	// and the manifest's digest with them.
	p := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(b), `"num_replicas": 1,`)
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), `"num_replicas": 1,`, `"num_replicas": 3,`)), 0o644); err != nil {
		t.Fatal(err)
	}
	reseal(t, dir)
	_, nc := bare(t)
	m, err := Restore(ctx, nc, dir, Options{})
	if err != nil {
		t.Fatalf("a backup of three replicas into a server alone: %v", err)
	}
	if n != len(m.Streams) {
		t.Fatalf("%d of %d streams' configs set to 3 replicas", n, len(m.Streams))
	}
	js, _ := jetstream.New(nc)
	for _, s := range m.Streams {
		st, err := js.Stream(ctx, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 1 {
			t.Errorf("stream %s restored into a server alone with %d replicas, want 1", s.Name, r)
		}
	}
}
