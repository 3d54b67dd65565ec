package controlplane_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/internal/testutil"
)

// TestEnsureAndReconnect starts an embedded server with a store on disk,
// creates the buckets twice (Ensure is idempotent), and checks that what
// was written survives a restart of the server on the same directory, as a
// control plane restarted by ops must.
func TestEnsureAndReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	s, err := embedded.Start(embedded.Options{Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() == "" {
		t.Fatal("no client URL for a listening server")
	}
	nc, err := controlplane.Dial(s.URL(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := controlplane.Ensure(ctx, nc); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if _, err := st.Desired.Put(ctx, manifest.RegionKey("eu-west"), []byte(`{"plugins":{}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.JS.Publish(ctx, manifest.SubjectAudit+".test", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()

	s, err = embedded.Start(embedded.Options{Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	in, err := s.Connect("in-process")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, err = controlplane.Ensure(ctx, in)
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
// TestDialLogs: a link closed on purpose logs no "link lost" (every
// wedgectl command ended with one, err=<nil>). The closed handler runs
// after the disconnect one, on the same queue: by then the log holds
// whatever the close wrote.
func TestDialLogs(t *testing.T) {
	srv, _ := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	var log testutil.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	closed := make(chan struct{})
	nc, err := controlplane.Dial(srv.URL(), "test", logger, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	<-closed
	if strings.Contains(log.String(), "link lost") {
		t.Fatalf("a link closed on purpose logged:\n%s", log.String())
	}
}

func TestOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := s.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := controlplane.Open(ctx, nc); err == nil || !strings.Contains(err.Error(), "control plane not initialised: run wedgectl up or wedgectl control") {
		t.Fatalf("Open on an empty server: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.ObjectStore(ctx, manifest.BucketModules); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("after a failed Open, bucket %s: %v; want it still missing", manifest.BucketModules, err)
	}

	ens, err := controlplane.Ensure(ctx, nc)
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
	st, err := controlplane.Open(ctx, nc)
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
	_, s := controlplanetest.Start(t, embedded.Options{})
	ctx0, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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

// TestFetchErrors pins the classification edge/fleet retries by: a module
// the store lacks is ErrNotFound, for good; a control plane that does not
// answer is ErrUnavailable, which may pass.
func TestFetchErrors(t *testing.T) {
	_, s := controlplanetest.Start(t, embedded.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	trust := manifest.NewTrustStore(pub)
	bin := []byte("\x00asm\x01\x00\x00\x00")
	art, err := manifest.Sign(key, "p", "1", bin, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(ctx, trust, art, nil, manifest.MaxModuleSize); !errors.Is(err, controlplane.ErrNotFound) || errors.Is(err, controlplane.ErrUnavailable) {
		t.Fatalf("Fetch of a module never stored: %v; want ErrNotFound only", err)
	}
	if _, err := s.Modules.PutBytes(ctx, art.Digest, bin); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Fetch(ctx, trust, art, nil, manifest.MaxModuleSize); err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("Fetch = %q, %v; want the stored module", got, err)
	}
	s.JS.Conn().Close()
	if _, err := s.Fetch(ctx, trust, art, nil, manifest.MaxModuleSize); !errors.Is(err, controlplane.ErrUnavailable) {
		t.Fatalf("Fetch over a closed link: %v; want ErrUnavailable", err)
	}
}

// TestOpenEdge: a POP's agent opens only the buckets it uses, so it joins
// a control plane whose rollout bucket and audit stream it cannot see (a
// POP's credentials cover its own buckets), where Open refuses.
func TestOpenEdge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js := ensured(t, ctx)
	if err := js.DeleteKeyValue(ctx, manifest.BucketRollouts); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, manifest.StreamAudit); err != nil {
		t.Fatal(err)
	}
	if _, err := controlplane.Open(ctx, nc); err == nil {
		t.Fatal("Open without the rollouts bucket and audit stream succeeded")
	}
	st, err := controlplane.OpenEdge(ctx, nc)
	if err != nil {
		t.Fatalf("OpenEdge: %v", err)
	}
	if st.Modules == nil || st.Artifacts == nil || st.Revoked == nil || st.Desired == nil || st.Status == nil {
		t.Fatalf("OpenEdge left a bucket the agent uses unopened: %+v", st)
	}
}

// TestOpenWithoutPurgeStream: a control plane that predates purges has no
// purge stream. Open still opens it (every other command works), and only
// Purge fails, saying why.
func TestOpenWithoutPurgeStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js := ensured(t, ctx)
	if err := js.DeleteStream(ctx, manifest.StreamPurge); err != nil {
		t.Fatal(err)
	}
	st, err := controlplane.Open(ctx, nc)
	if err != nil {
		t.Fatalf("Open without the purge stream: %v", err)
	}
	if _, err := st.Purge(ctx, manifest.Purge{Tag: "t"}, time.Minute, time.Millisecond); err == nil || !strings.Contains(err.Error(), "predates purges") {
		t.Fatalf("Purge without the purge stream: %v", err)
	}
}

// ensured is a connection to a new control plane that Ensure set up, and
// JetStream on it; both go when the test ends.
func ensured(t *testing.T, ctx context.Context) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	s, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := s.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := controlplane.Ensure(ctx, nc); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestOpenAfterServerLost: a command run just after the control plane lost
// a server opens the stores, as a command run a few seconds later does.
// The server led the stream Open asks about first; until the survivors
// elect another leader (seconds) nothing answers for it, and the first
// command an operator ran after losing a server failed with "context
// deadline exceeded" (jetstream's 5 s for a request without a deadline).
func TestOpenAfterServerLost(t *testing.T) {
	cluster, nc := controlplanetest.StartCluster(t)
	ctx := context.Background() // a command's: no deadline
	s, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.JS.Stream(ctx, "OBJ_"+manifest.BucketModules)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("no leader for %s: %+v", info.Config.Name, info.Cluster)
	}
	cluster.Stop(cluster.Index(info.Cluster.Leader))
	cmd, err := nats.Connect(cluster.URL()) // a new command's connection
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Close()
	if _, err := controlplane.Open(ctx, cmd); err != nil {
		t.Fatalf("open right after a server was lost: %v", err)
	}
}

// TestPurgeAudited: a purge is recorded in the audit stream, with who
// issued it, what it named and who confirmed it; the purge stream keeps a
// day at most, and the README lists purge among the audited commands.
func TestPurgeAudited(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	_, s := controlplanetest.Start(t, embedded.Options{})
	res, err := s.Purge(ctx, manifest.Purge{Tag: "products", Who: "carol"}, time.Minute, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Audit.GetLastMsgForSubject(ctx, manifest.SubjectAudit+".purge")
	if err != nil {
		t.Fatalf("no audit entry for the purge: %v", err)
	}
	var a manifest.Audit
	if err := json.Unmarshal(m.Data, &a); err != nil {
		t.Fatal(err)
	}
	if a.Who != "carol" || a.Action != "purge" || !strings.Contains(a.Why, "purge "+res.Purge.ID+" of tag products: 0 of 0 POPs confirmed") {
		t.Errorf("audit entry %+v", a)
	}
}
