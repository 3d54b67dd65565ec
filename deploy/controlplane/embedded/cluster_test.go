package embedded_test

import (
	"context"
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
	"github.com/talowa/wedge/internal/testutil"
)

// hangGuard bounds each wait: only a hang reaches it.
const hangGuard = time.Minute

// streamReplicas returns every stream's replica count, by name.
func streamReplicas(t *testing.T, ctx context.Context, js jetstream.JetStream) map[string]int {
	t.Helper()
	out := map[string]int{}
	infos := js.ListStreams(ctx)
	for info := range infos.Info() {
		out[info.Config.Name] = info.Config.Replicas
	}
	if err := infos.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestClusterKeepsThreeCopies creates the control plane on a cluster of
// three: every bucket and stream is kept in three copies (on a server
// alone, in one), and with any one member stopped the buckets are read and
// written as before; the member comes back on its files.
func TestClusterKeepsThreeCopies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	_, single := controlplanetest.Start(t, embedded.Options{})
	for name, r := range streamReplicas(t, ctx, single.JS) {
		if r != 1 {
			t.Errorf("on a server alone, %s has %d replicas, want 1", name, r)
		}
	}

	c, nc := controlplanetest.StartCluster(t)
	s, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	got := streamReplicas(t, ctx, s.JS)
	for _, name := range []string{"OBJ_" + manifest.BucketModules, "KV_" + manifest.BucketArtifacts, "KV_" + manifest.BucketRevoked,
		"KV_" + manifest.BucketDesired, "KV_" + manifest.BucketStatus, "KV_" + manifest.BucketRollouts,
		manifest.StreamAudit, manifest.StreamPurge} {
		if got[name] != 3 {
			t.Errorf("on a cluster of three, %s has %d replicas, want 3", name, got[name])
		}
	}

	// The desired state's leader goes.
	info, err := s.JS.Stream(ctx, "KV_"+manifest.BucketDesired)
	if err != nil {
		t.Fatal(err)
	}
	lost := c.Index(info.CachedInfo().Cluster.Leader)
	c.Stop(lost)
	key := manifest.RegionKey("eu-west")
	testutil.Eventually(t, hangGuard, "a write with the leader stopped", func() bool {
		// Each try bounded: one made before a new leader is elected goes
		// unanswered.
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := s.Desired.Put(tctx, key, []byte("v2"))
		return err == nil
	})
	if e, err := s.Desired.Get(ctx, key); err != nil || string(e.Value()) != "v2" {
		t.Fatalf("with the leader stopped: read %v", err)
	}
	if err := c.Restart(lost); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLeafNode reaches the cluster's buckets through a region's leaf node,
// which keeps nothing itself: what a client of the leaf writes, the
// cluster has, and what the cluster writes, a watch through the leaf sees.
// Every link is authenticated and encrypted (routes, the leaf's link to
// the cluster, the client's to the leaf), and the client is a POP, held
// to its permissions by the leaf: it writes its own status, not desired
// state. The leaf runs with a leaf bundle, as `control leaf` does: it
// checks credentials and links without any seed or key of the cluster's.
func TestLeafNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	m := controlplanetest.Auth(t)
	c, err := embedded.StartCluster(t.TempDir(), m, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	nc, err := c.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := m.LeafBundle(bundle, nil); err != nil {
		t.Fatal(err)
	}
	lm, err := auth.LoadLeaf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", Name: "leaf-eu", Hub: c.LeafURLs(), Auth: lm})
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Shutdown()
	creds, err := m.Creds(auth.POP, "eu-west-1", "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "pop.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	sec := controlplane.Security{Creds: credsFile, CA: filepath.Join(bundle, auth.CAFile)}
	lnc, err := nats.Connect(leaf.URL(), sec.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer lnc.Close()
	var edge *controlplane.Stores
	testutil.Eventually(t, hangGuard, "the buckets opened through the leaf", func() bool {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		edge, err = controlplane.OpenEdge(tctx, lnc)
		return err == nil
	})
	if _, err := edge.Status.Put(ctx, manifest.StatusKey("eu-west", "eu-west-1"), []byte("up")); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Status.Get(ctx, manifest.StatusKey("eu-west", "eu-west-1")); err != nil || string(e.Value()) != "up" {
		t.Fatalf("the cluster's copy of a write through the leaf: %v", err)
	}
	w, err := edge.Desired.Watch(ctx, manifest.RegionKey("eu-west"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := s.Desired.Put(ctx, manifest.RegionKey("eu-west"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	for e := range w.Updates() {
		if e != nil && string(e.Value()) == "v2" {
			break
		}
	}
	// Refused, so never acknowledged: the put waits out its timeout.
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	if _, err := edge.Desired.Put(pctx, manifest.RegionKey("eu-west"), []byte("evil")); err == nil {
		t.Fatal("a POP wrote desired state through the leaf")
	}
	if e, err := s.Desired.Get(ctx, manifest.RegionKey("eu-west")); err != nil || string(e.Value()) != "v2" {
		t.Fatalf("desired state after the POP's attempt: %v", err)
	}
}

func TestOptionsRefused(t *testing.T) {
	routes := []string{"127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224"}
	for name, o := range map[string]embedded.Options{
		"bad listen":        {Listen: "127.0.0.1"},
		"no routes":         {Listen: "127.0.0.1:0", Cluster: &embedded.ClusterOptions{Listen: "127.0.0.1:0"}},
		"two members":       {Listen: "127.0.0.1:0", Cluster: &embedded.ClusterOptions{Listen: "127.0.0.1:0", Routes: routes[:2]}},
		"bad route":         {Listen: "127.0.0.1:0", Cluster: &embedded.ClusterOptions{Listen: "127.0.0.1:0", Routes: append([]string{"nats-route://"}, routes[1:]...)}},
		"bad cluster port":  {Listen: "127.0.0.1:0", Cluster: &embedded.ClusterOptions{Listen: "127.0.0.1:x", Routes: routes}},
		"bad hub":           {Listen: "127.0.0.1:0", Hub: []string{"::bad"}},
		"bad leaf listener": {Listen: "127.0.0.1:0", LeafListen: "nowhere"},
	} {
		if s, err := embedded.Start(o); err == nil {
			s.Shutdown()
			t.Errorf("%s: started", name)
		}
	}
	if _, err := embedded.StartCluster(t.TempDir(), nil, "127.0.0.1:0", "127.0.0.1:0"); err == nil {
		t.Error("a cluster of two started")
	}
}
