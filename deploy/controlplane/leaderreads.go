// Buckets as Ensure makes them: no rollups, reads from the stream's leader
// where a stale one misleads.

package controlplane

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// ensureKV creates the bucket cfg describes, or updates its config, with
// rollups off and, for leaderReads, direct gets off, and opens it.
//
// Why rollups off: a put with the header Nats-Rollup: all deletes every
// other key of the bucket, and a permission sees the subject (one key),
// never the headers. A POP that may write only its own status, or the
// revoke role one revocation, emptied the whole bucket so. Nothing here
// purges a key (KV Purge is the rollup it needs).
//
// Why direct gets off for leaderReads: nats.go makes every bucket with
// AllowDirect, and a direct get on a replicated stream may be answered by
// any replica, one that has not yet stored the last write among them
// (nats-server issues #4710, #6557): the controller that wrote a rollout
// record and read it back to compare-and-set it got the older revision
// (TestClusterServerLostMidRollout, once). Without direct gets a Get is
// answered by the stream's leader, which has every acknowledged write. A
// KeyValue decides which way it reads when it is opened, from the stream's
// config, so the bucket is opened again after the update.
//
// CreateOrUpdateKeyValue is not used on an existing bucket: it would turn
// direct gets and rollups back on, and a client opening the bucket in
// between would keep the direct way. The fields Ensure sets are updated
// here instead.
func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, leaderReads bool) (jetstream.KeyValue, error) {
	name := "KV_" + cfg.Bucket
	if _, err := js.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateKeyValue(ctx, cfg); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	sc := st.CachedInfo().Config
	sc.Description, sc.MaxMsgsPerSubject, sc.Replicas = cfg.Description, int64(max(cfg.History, 1)), cfg.Replicas
	sc.MaxMsgSize = -1 // nats.go's "no limit" for a bucket
	if cfg.MaxValueSize > 0 {
		sc.MaxMsgSize = cfg.MaxValueSize
	}
	sc.AllowDirect, sc.AllowRollup = !leaderReads, false
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		return nil, err
	}
	return js.KeyValue(ctx, cfg.Bucket)
}
