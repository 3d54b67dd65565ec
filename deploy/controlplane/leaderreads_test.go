package controlplane_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
)

// TestLeaderReads: after Ensure, on new buckets and on buckets made
// before with direct gets (as nats.go makes them), the buckets whose
// readers need their last write have direct gets off, so that a Get is
// answered by the stream's leader and not by a replica behind it; the
// status bucket keeps them. The Stores Ensure returns read the buckets
// the way their streams now allow (a KeyValue opened while direct gets
// were on sends direct gets, which nothing answers once they are off).
func TestLeaderReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bounds a hang
	defer cancel()
	for _, existing := range []bool{false, true} {
		srv, err := embedded.Start(embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()
		nc, err := srv.Connect(t.Name())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if existing { // as an older Ensure left them
			for _, b := range []string{manifest.BucketDesired, manifest.BucketRollouts, manifest.BucketArtifacts, manifest.BucketRevoked} {
				if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, History: 2}); err != nil {
					t.Fatal(err)
				}
			}
		}
		s, err := controlplane.Ensure(ctx, nc)
		if err != nil {
			t.Fatal(err)
		}
		for b, direct := range map[string]bool{
			manifest.BucketDesired: false, manifest.BucketRollouts: false, manifest.BucketArtifacts: false,
			manifest.BucketRevoked: false, manifest.BucketStatus: true,
		} {
			st, err := js.Stream(ctx, "KV_"+b)
			if err != nil {
				t.Fatal(err)
			}
			cfg := st.CachedInfo().Config
			if cfg.AllowDirect != direct {
				t.Errorf("existing %v: %s: AllowDirect %v, want %v", existing, b, cfg.AllowDirect, direct)
			}
			if b == manifest.BucketDesired && (cfg.MaxMsgsPerSubject != 64 || cfg.MaxMsgSize != manifest.MaxDesiredSize) {
				t.Errorf("existing %v: %s: history %d, max value %d: Ensure did not update them", existing, b, cfg.MaxMsgsPerSubject, cfg.MaxMsgSize)
			}
		}
		for _, kv := range []jetstream.KeyValue{s.Desired, s.Rollouts, s.Artifacts, s.Revoked, s.Status} {
			rev, err := kv.Put(ctx, "k", []byte("v"))
			if err != nil {
				t.Fatal(err)
			}
			gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
			e, err := kv.Get(gctx, "k")
			gcancel()
			if err != nil || e.Revision() != rev {
				t.Errorf("existing %v: %s: read back %v, %v", existing, kv.Bucket(), e, err)
			}
		}
		// Ensure again changes nothing and keeps them off.
		if _, err := controlplane.Ensure(ctx, nc); err != nil {
			t.Fatal(err)
		}
		if st, err := js.Stream(ctx, "KV_"+manifest.BucketDesired); err != nil || st.CachedInfo().Config.AllowDirect {
			t.Errorf("existing %v: a second Ensure: %v", existing, err)
		}
	}
}
