package controlplane

import (
	"context"
	"testing"
	"time"

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
	nc, err := Dial(s.URL(), "test")
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
