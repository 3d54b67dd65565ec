package backup

import (
	"context"
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
// it. A backup of that cluster comes back into a server alone with one.
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

	back := filepath.Join(t.TempDir(), "backup")
	if _, err := Backup(ctx, nc, back); err != nil {
		t.Fatal(err)
	}
	_, one := bare(t)
	if _, err := Restore(ctx, one, back, Options{}); err != nil {
		t.Fatalf("a cluster's backup into a server alone: %v", err)
	}
	js, _ = jetstream.New(one)
	for name := range want {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 1 {
			t.Errorf("stream %s of the cluster restored into a server alone with %d replicas, want 1", name, r)
		}
	}
}
