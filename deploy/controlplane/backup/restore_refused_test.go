package backup

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
)

// TestRestoreForcedRefusedDeletesNothing: a forced restore over a live
// cluster with more replicas than the cluster has servers is refused
// before any live stream is deleted. The server refused it only at the
// first create, once the live status and rollouts buckets were gone.
func TestRestoreForcedRefusedDeletesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, _ := backedUp(t, ctx)

	_, nc := controlplanetest.StartCluster(t)
	live, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Rollouts.Put(ctx, "live", []byte(`{"id":"live"}`)); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	var before []string
	for name := range js.StreamNames(ctx).Name() {
		before = append(before, name)
	}

	_, err = Restore(ctx, nc, dir, Options{Force: true, Replicas: 5})
	if err == nil {
		t.Fatal("restore with 5 replicas into a cluster of 3 succeeded")
	}
	t.Log(err)
	for _, name := range before {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("live stream %s after a refused restore: %v", name, err)
		}
	}
	if _, err := live.Rollouts.Get(ctx, "live"); err != nil {
		t.Errorf("live rollout record after a refused restore: %v", err)
	}
}

// TestRestoreForcedNegativeReplicas: the same on a server alone, with
// `--replicas -1`.
func TestRestoreForcedNegativeReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, _ := backedUp(t, ctx)
	_, live := controlplanetest.Start(t, embedded.Options{})
	if _, err := live.Rollouts.Put(ctx, "live", []byte(`{"id":"live"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(ctx, live.JS.Conn(), dir, Options{Force: true, Replicas: -1})
	if err == nil {
		t.Fatal("restore with -1 replicas succeeded")
	}
	t.Log(err)
	if _, err := live.Rollouts.Get(ctx, "live"); err != nil {
		t.Errorf("live rollout record after a refused restore: %v", err)
	}
}
