package backup

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
)

// TestRestoreIntoCluster restores a backup of a server alone into an empty
// cluster of three with --replicas 3: the same content, every stream kept
// three times, and the control plane's own Ensure content with it.
func TestRestoreIntoCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, src := backedUp(t, ctx)
	want := snapshot(t, ctx, src.JS.Conn())

	c, err := embedded.StartCluster(t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	nc, err := c.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := Restore(ctx, nc, dir, Options{Replicas: 3}); err != nil {
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
}
