// Package controlplane is the client of Wedge's control plane (NATS
// JetStream, embedded in a control process or an external cluster, reached
// by URL): it dials it, opens the buckets and the audit stream that
// deploy/manifest names (and creates them, for the processes that own the
// control plane), and reads plugin versions back verified against a trust
// store. Everything that uses the control plane goes through it: the edge's
// agent (edge/fleet), the registry, the rollout controller, the status page
// and wedgectl. The server itself is deploy/controlplane/embedded.
//
// # Why
//
// JetStream gives us replicated KV with Watch, an object store with sha256
// digests, leaf nodes for POPs and clustering when one machine is outgrown.
// Wedge keeps no store, consensus or gossip of its own.
//
// Client and server are apart so that the edge binary, which only needs
// the client, links no NATS server.
//
// Nothing read back is trusted: Fetch checks the signature over (name,
// version, digest), the revocation list and the bytes' sha256 itself
// instead of relying on the object store's own digest, because the point
// of signing is that a wrong or compromised control plane cannot make an
// edge run code nobody signed. The edge and the registry's tools fetch
// through the same code, so what a test of one refuses the other refuses.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// Dial connects to a control plane by URL and keeps reconnecting for as
// long as the connection is open: a controller or a POP must outlive any
// outage. url may list a cluster's members, comma-separated
// ("nats://a:4222,nats://b:4222,nats://c:4222"): the connection goes to
// one and, when it goes, to another. log (nil: slog's default) hears
// when the link goes and comes back; opts come after Dial's own, so a
// caller can replace a handler.
func Dial(url, name string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() { // closed on purpose: not lost
				log.Warn("control plane link lost", "url", url, "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("control plane link back", "url", url) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("control plane error", "url", url, "err", err)
		})}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("controlplane: connect %s: %w", url, err)
	}
	return nc, nil
}

// Stores are the control plane's buckets and streams, opened. From
// OpenEdge, Rollouts, Audit and Purges are nil (the agent opens the purge
// stream itself: see edge/fleet's purge.go). From Open, Purges is nil on a
// control plane that predates purges, and Purge fails there.
type Stores struct {
	JS        jetstream.JetStream
	Modules   jetstream.ObjectStore
	Artifacts jetstream.KeyValue
	Revoked   jetstream.KeyValue
	Desired   jetstream.KeyValue
	Status    jetstream.KeyValue
	Rollouts  jetstream.KeyValue
	Audit     jetstream.Stream
	Purges    jetstream.Stream
}

// ReadAll returns the latest entry of every live key of kv, one of s's
// buckets, that matches filter, in key order.
//
// The keys come from the bucket's stream (its subjects matching filter),
// and each key's entry from a Get. A watch, or KeyValue.Keys (a watch
// too), is not used: its marker for "the initial values are all in" comes
// when a delivered entry says no more are pending, and under concurrent
// writes (every POP rewrites its status each second) that count reaches 0
// before every key was delivered, so a watch read missed POPs that were
// reporting (TestReadAllUnderWrites).
func (s *Stores) ReadAll(ctx context.Context, kv jetstream.KeyValue, filter string) ([]jetstream.KeyValueEntry, error) {
	prefix := "$KV." + kv.Bucket() + "."
	st, err := s.JS.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return nil, fmt.Errorf("controlplane: bucket %s: %w", kv.Bucket(), err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
	if err != nil {
		return nil, fmt.Errorf("controlplane: bucket %s: %w", kv.Bucket(), err)
	}
	keys := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subj, prefix))
	}
	slices.Sort(keys)
	out := make([]jetstream.KeyValueEntry, 0, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted or purged: its subject holds the marker
		}
		if err != nil {
			return nil, fmt.Errorf("controlplane: %s %s: %w", kv.Bucket(), k, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// errNotInitialised is what Open says when a bucket or the stream is
// missing: only `wedgectl up` and `wedgectl control` create them.
var errNotInitialised = errors.New("control plane not initialised: run wedgectl up or wedgectl control")

// Ensure creates whatever of the buckets and stream does not exist yet
// and updates the configs of those that do (it is idempotent), and opens
// them, each kept in Replicas(nc) copies. Only the processes that own the
// control plane should call it, one at a time: JetStream may leave
// concurrent creates of one stream unanswered.
func Ensure(ctx context.Context, nc *nats.Conn) (*Stores, error) {
	return open(ctx, nc, true, false)
}

// Open opens the buckets and streams, which must exist, and changes
// nothing: what a CLI command uses, so that running one never rewrites
// the control plane's configuration. The purge stream alone may be missing
// (a control plane not yet upgraded): only Purge needs it.
func Open(ctx context.Context, nc *nats.Conn) (*Stores, error) {
	return open(ctx, nc, false, false)
}

// OpenEdge opens the buckets a POP's agent reads and writes (modules,
// artifacts, revocations, desired state, status), as Open does, leaving
// Rollouts, Audit and Purges nil: a POP whose credentials cover only what
// it uses joins too, and a control plane's rollout state is none of its
// business. Besides these buckets the agent reads the purge stream
// (edge/fleet's purge.go), publishes on wedge.purge.ack.<id>.<its name>
// and publishes on wedge.ratelimit.<scope>.<its name> and subscribes on
// wedge.ratelimit.> (edge/limitsync).
func OpenEdge(ctx context.Context, nc *nats.Conn) (*Stores, error) {
	return open(ctx, nc, false, true)
}

// openTimeout bounds opening the stores when the caller's context does
// not: a cluster without a majority of its servers answers nothing.
const openTimeout = time.Minute

// attemptTimeout bounds one attempt of a step of opening (jetstream's own
// default for a request without a deadline).
const attemptTimeout = 5 * time.Second

// retryUnanswered runs op until it succeeds, fails otherwise than for want
// of an answer, or ctx ends, each attempt bounded by attemptTimeout. A
// request about a stream whose leader was on a server just lost goes
// unanswered until the survivors elect another (seconds), and one sent
// while the connection moves to another server is lost: the first command
// an operator ran after losing a server failed with "context deadline
// exceeded" where the next one worked.
func retryUnanswered(ctx context.Context, op func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unanswered says whether err is a request's going without an answer, or
// JetStream's saying it cannot answer now (503), rather than an answer.
func unanswered(err error) bool {
	var api *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		(errors.As(err, &api) && api.Code == 503)
}

func open(ctx context.Context, nc *nats.Conn, create, edge bool) (*Stores, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	missing := func(what, name string, err error) error {
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("controlplane: %w (%s %s is missing)", errNotInitialised, what, name)
		}
		return fmt.Errorf("controlplane: %s %s: %w", what, name, err)
	}
	s := &Stores{JS: js}
	osCfg := jetstream.ObjectStoreConfig{
		Bucket: manifest.BucketModules, Description: "plugin modules by sha256", Storage: jetstream.FileStorage,
	}
	replicas := Replicas(nc)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	err = retryUnanswered(ctx, func(ctx context.Context) (err error) {
		if create {
			osCfg.Replicas = replicas
			s.Modules, err = js.CreateOrUpdateObjectStore(ctx, osCfg)
		} else {
			s.Modules, err = js.ObjectStore(ctx, osCfg.Bucket)
		}
		return err
	})
	if err != nil {
		return nil, missing("bucket", osCfg.Bucket, err)
	}
	// A bucket with leader set is read through its stream's leader, since
	// its readers must see the last write (ensureKV): the
	// rollout and desired records are read, then compared-and-set; an
	// artifact is pushed, then a rollout of it starts; a revocation is
	// written, then checked. Status is rewritten by each POP every second
	// and read by pages and gates that want any recent value: its reads
	// stay direct, spread over the replicas.
	type bucket struct {
		kv      *jetstream.KeyValue
		name    string
		history uint8
		what    string
		leader  bool
	}
	kvs := []bucket{
		{&s.Artifacts, manifest.BucketArtifacts, 1, "signed plugin versions", true},
		{&s.Revoked, manifest.BucketRevoked, 1, "revoked module digests", true},
		{&s.Desired, manifest.BucketDesired, 64, "desired state per region and POP", true},
		{&s.Status, manifest.BucketStatus, 1, "what each POP runs, and its health", false},
	}
	if !edge {
		kvs = append(kvs, bucket{&s.Rollouts, manifest.BucketRollouts, 16, "rollouts", true})
	}
	for _, k := range kvs {
		cfg := jetstream.KeyValueConfig{
			Bucket: k.name, Description: k.what, History: k.history, Storage: jetstream.FileStorage,
			Replicas: replicas, MaxValueSize: map[string]int32{manifest.BucketDesired: manifest.MaxDesiredSize}[k.name],
		}
		err := retryUnanswered(ctx, func(ctx context.Context) (err error) {
			switch {
			case create:
				*k.kv, err = ensureKV(ctx, js, cfg, k.leader)
			default:
				*k.kv, err = js.KeyValue(ctx, k.name)
			}
			return err
		})
		if err != nil {
			return nil, missing("bucket", k.name, err)
		}
	}
	if edge {
		return s, nil
	}
	err = retryUnanswered(ctx, func(ctx context.Context) (err error) {
		if create {
			s.Audit, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name: manifest.StreamAudit, Subjects: []string{manifest.SubjectAudit + ".>"},
				Description: "who did what to which rollout, and why", Storage: jetstream.FileStorage,
				DenyDelete: true, DenyPurge: true, Replicas: replicas,
			})
		} else {
			s.Audit, err = js.Stream(ctx, manifest.StreamAudit)
		}
		return err
	})
	if err != nil {
		return nil, missing("stream", manifest.StreamAudit, err)
	}
	err = retryUnanswered(ctx, func(ctx context.Context) (err error) {
		if create {
			purgeCfg := PurgeStreamConfig
			purgeCfg.Replicas = replicas
			s.Purges, err = js.CreateOrUpdateStream(ctx, purgeCfg)
		} else {
			s.Purges, err = js.Stream(ctx, manifest.StreamPurge)
		}
		return err
	})
	if !create && errors.Is(err, jetstream.ErrStreamNotFound) {
		return s, nil // Purge says so
	}
	if err != nil {
		return nil, missing("stream", manifest.StreamPurge, err)
	}
	return s, nil
}
