package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
)

// TestRestorePublishesCheckedBytes: a file that changes between Verify
// and its restore (a copy or sync into the directory still going on, a
// network file system) is refused, not published as read the second
// time, unchecked. Here the desired state's file is rewritten once Verify
// is done, when Restore first asks the control plane about a stream
// (holdAt, order_test.go).
func TestRestorePublishesCheckedBytes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, _ := backedUp(t, ctx)
	p := filepath.Join(dir, "streams", "KV_"+manifest.BucketDesired+".jsonl")
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte(strings.ReplaceAll(string(good), "step 2", "evil 2"))
	if string(bad) == string(good) {
		t.Fatal("no value to change")
	}
	srv, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(holdAt(t, srv.URL(), "$JS.API.STREAM.INFO.KV_"+manifest.BucketStatus, func() {
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Error(err)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := Restore(ctx, nc, dir, Options{}); err != nil {
		t.Logf("restore: %v", err)
		return // refused: nothing unchecked restored
	}
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Desired.Get(ctx, manifest.RegionKey("eu-west"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), "evil") {
		t.Fatalf("restored desired state %s: bytes that no check saw", e.Value())
	}
}
