package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// TestEnsureAndReconnect starts an embedded server with a store on disk,
// creates the buckets twice (Ensure is idempotent), and checks that what
// was written survives a restart of the server on the same directory, as a
// control plane restarted by ops must.
func TestEnsureAndReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	s, err := Start(Options{Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() == "" {
		t.Fatal("no client URL for a listening server")
	}
	nc, err := Dial(s.URL(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(ctx, nc); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if _, err := st.Desired.Put(ctx, manifest.RegionKey("eu-west"), []byte(`{"plugins":{}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.JS.Publish(ctx, manifest.SubjectAudit+".test", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()

	s, err = Start(Options{Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	in, err := s.Connect("in-process")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, err = Ensure(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.Desired.Get(ctx, manifest.RegionKey("eu-west"))
	if err != nil {
		t.Fatalf("desired state lost over a restart: %v", err)
	}
	if string(e.Value()) != `{"plugins":{}}` {
		t.Fatalf("desired state = %q", e.Value())
	}
	info, err := st.Audit.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("audit stream holds %d entries after a restart, want 1", info.State.Msgs)
	}
	// The audit stream is append-only.
	if err := st.Audit.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("deleting an audit entry succeeded")
	}
	if err := st.Audit.Purge(ctx); err == nil {
		t.Fatal("purging the audit stream succeeded")
	}
}

// TestOpen checks that Open neither creates nor updates anything: on an
// empty server it fails, naming the fix; after Ensure it opens the same
// buckets and leaves a config an operator changed as it is.
func TestOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := s.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := Open(ctx, nc); err == nil || !strings.Contains(err.Error(), "control plane not initialised: run wedgectl up or wedgectl control") {
		t.Fatalf("Open on an empty server: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.ObjectStore(ctx, manifest.BucketModules); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("after a failed Open, bucket %s: %v; want it still missing", manifest.BucketModules, err)
	}

	ens, err := Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ens.Desired.Put(ctx, manifest.RegionKey("eu-west"), []byte(`{"plugins":{}}`)); err != nil {
		t.Fatal(err)
	}
	// An operator raised the rollouts' history: Open must not undo it
	// (Ensure would).
	if _, err := js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: manifest.BucketRollouts, History: 32, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	st, err := Open(ctx, nc)
	if err != nil {
		t.Fatalf("Open after Ensure: %v", err)
	}
	if e, err := st.Desired.Get(ctx, manifest.RegionKey("eu-west")); err != nil || string(e.Value()) != `{"plugins":{}}` {
		t.Fatalf("desired state through Open: %v", err)
	}
	if _, err := st.JS.Publish(ctx, manifest.SubjectAudit+".test", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if info, err := st.Audit.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("audit stream through Open: %+v, %v", info, err)
	}
	if status, err := st.Rollouts.Status(ctx); err != nil || status.History() != 32 {
		t.Fatalf("history of %s after Open = %v; want 32", manifest.BucketRollouts, err)
	}
}

// TestReadAllUnderWrites: every key is read while all of them are being
// rewritten, as POPs rewrite their status every second. A watch's
// end-of-initial-values marker came early under such writes, and the
// controller planned and gated waves without POPs that were reporting.
func TestReadAllUnderWrites(t *testing.T) {
	s, ctx0 := testStores(t)
	const keys = 16
	ctx, stop := context.WithCancel(ctx0)
	var writers sync.WaitGroup
	defer func() { stop(); writers.Wait() }()
	for i := range keys {
		key := manifest.POPKey(fmt.Sprintf("pop-%02d", i))
		if _, err := s.Status.Put(ctx0, key, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		writers.Go(func() {
			for ctx.Err() == nil {
				s.Status.Put(ctx, key, []byte("{}"))
			}
		})
	}
	for round := range 100 {
		got, err := s.ReadAll(ctx0, s.Status, "pop.>")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != keys {
			t.Fatalf("round %d: read %d of %d keys", round, len(got), keys)
		}
	}
}

// testStores runs an embedded control plane for one test and opens its
// buckets.
func testStores(t *testing.T) (*Stores, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	srv, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s, err := Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	return s, ctx
}
