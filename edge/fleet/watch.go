// The control-plane link and the watch loop: Run keeps the link up, and
// follow turns the desired-state, revocation and artifact watches into
// reconciles (apply.go), prefetches (module.go) and reports (report.go).

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge/limitsync"
)

// Run follows the control plane until ctx ends. Losing the control plane
// is not an error: the node keeps serving what it runs, and Run keeps
// trying to reconnect. Run returns only once everything it started has
// stopped (a prefetch may finish a compile first), so the node can be shut
// down after it: closing the node's runtime under a compile is not safe.
func (a *Agent) Run(ctx context.Context) error {
	nc := a.o.Conn
	if nc == nil {
		var err error
		nc, err = controlplane.Dial(a.o.URL, "wedge-edge-"+a.o.POP, a.o.Logger, append(a.o.Security.Options(),
			// A first connect after starting cut off is not a reconnect.
			nats.ConnectHandler(func(*nats.Conn) { a.connected.Set(1) }),
			// A link that drops silently must be seen as down soon: shared
			// rate limits fall back to shares only then.
			nats.PingInterval(limitsync.PingInterval))...)
		if err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		defer nc.Close()
		// Closed as ctx ends, before what Run started sees it end: a
		// watch that stops asks the control plane to delete its consumer,
		// which on a link that is down waits out a 5 s timeout, per watch.
		parent := ctx
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(context.WithoutCancel(parent))
		defer cancel()
		defer context.AfterFunc(parent, func() { nc.Close(); cancel() })()
	}
	// Say when the link goes and comes back, as it happens: the POP serves
	// on either way, and that is worth a log line and a metric.
	a.connected.Set(b2f(nc.IsConnected()))
	nc.SetDisconnectErrHandler(a.linkLost)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		a.o.Logger.Warn("control plane error", "err", err)
	})
	// Rate limits of region and global scope share usage over the same link.
	ls, err := limitsync.Start(limitsync.Options{Conn: nc, Limits: a.node.Limits(),
		Region: a.o.Region, POP: a.o.POP, Logger: a.o.Logger, Registerer: a.node.Registry()})
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	defer ls.Stop()
	// Silent POPs leave the view even while the control plane is away.
	expiring := make(chan struct{})
	go func() { a.expirePeers(ctx); close(expiring) }()
	defer func() { <-expiring }()
	for ctx.Err() == nil {
		err := a.follow(ctx, nc)
		if ctx.Err() != nil {
			break
		}
		a.o.Logger.Warn("control plane unreachable; serving the current state", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// stopSoon stops a watch without waiting for it: stopping asks the
// control plane to delete the watch's consumer, and after a reconnect to
// another server that consumer may have lived on the one lost, so the
// request waits out nats.go's 5 s timeout. Three watches in a row kept a
// POP from following desired state, rollbacks included, for 15 s after
// its link came back.
func stopSoon(w interface{ Stop() error }) { go w.Stop() }

// follow opens the buckets and watches them until ctx ends or the link
// breaks; the caller starts it again, and the watchers' first values then
// catch up with whatever changed meanwhile.
func (a *Agent) follow(ctx context.Context, nc *nats.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	var workers sync.WaitGroup // prefetch and reports: they use the node
	defer func() { cancel(); workers.Wait() }()
	stores, err := controlplane.OpenEdge(ctx, nc)
	if err != nil {
		return err
	}
	// The watch replays the current values: take them whatever their
	// revisions, and give failed fetches a fresh set of tries.
	for _, ks := range a.desired {
		ks.rev = 0
	}
	clear(a.tries)
	a.floor(ctx, stores.Desired)
	dw, err := stores.Desired.WatchFiltered(ctx, []string{manifest.RegionKey(a.o.Region), manifest.POPKey(a.o.POP)})
	if err != nil {
		return err
	}
	defer stopSoon(dw)
	rw, err := stores.Revoked.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer stopSoon(rw)
	aw, err := stores.Artifacts.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer stopSoon(aw)
	pushed := make(chan manifest.Artifact, 16)
	workers.Go(func() { a.prefetch(ctx, pushed, stores) })
	// Reports go on while an apply compiles: a POP that is busy is not
	// a POP that is gone.
	applied := make(chan struct{}, 1)
	workers.Go(func() { a.reportEvery(ctx, stores.Status, applied) })
	workers.Go(func() { a.followPurges(ctx, nc) })
	workers.Go(func() { a.watchPeers(ctx, stores.Status) })

	// A reconnect may have missed updates; watching again replays the
	// current values.
	lost := make(chan struct{}, 1)
	nc.SetReconnectHandler(func(*nats.Conn) {
		a.connected.Set(1)
		a.o.Logger.Info("control plane link back; catching up")
		select {
		case lost <- struct{}{}:
		default:
		}
	})
	synced := false // the watcher delivered the current values
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-lost:
			return errors.New("fleet: reconnected to the control plane")
		case e, ok := <-aw.Updates():
			if !ok {
				return errors.New("fleet: artifact watch ended")
			}
			var art manifest.Artifact
			if e != nil && e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &art) == nil {
				select {
				case pushed <- art:
				default: // behind: the apply will fetch it
				}
			}
		case e, ok := <-rw.Updates():
			if !ok {
				return errors.New("fleet: revocation watch ended")
			}
			if e != nil && a.revoke(e) && synced {
				retry = a.reconcileOrRetry(ctx, stores, applied)
			}
		case e, ok := <-dw.Updates():
			if !ok {
				return errors.New("fleet: desired-state watch ended")
			}
			if e == nil {
				synced = true
			} else if !a.see(e) {
				continue
			}
			if synced {
				retry = a.reconcileOrRetry(ctx, stores, applied)
			}
		case <-a.reloaded:
			clear(a.refused)
			// Before the first values, they reconcile as they come.
			if synced {
				retry = a.reconcileOrRetry(ctx, stores, applied)
			}
		case <-retry:
			retry = a.reconcileOrRetry(ctx, stores, applied)
		}
	}
}

// see records a desired-state update; false if it changes nothing.
func (a *Agent) see(e jetstream.KeyValueEntry) bool {
	ks := a.desired[e.Key()]
	if ks == nil || e.Revision() <= ks.rev {
		return false
	}
	d, err := a.verify(e, ks) // nil: a deleted key desires nothing
	if err != nil {
		// Refused whole: the key keeps its last good value.
		a.refuse(e, ks, err)
		return false
	}
	if ks.refusal != nil {
		ks.refusal = nil
		a.reportRefused()
	}
	ks.rev, ks.d = e.Revision(), d
	if d != nil && d.Issued.After(ks.issued) {
		ks.issued = d.Issued
	}
	return true
}

// revoke records a revocation; true if the desired state must be applied
// again: a version the node runs was revoked, and must stop. Only a
// revocation signed by a key of the trust store counts, and none is
// withdrawn by a delete: a writer of the bucket alone could otherwise stop
// a version (and with it the desired config) or bring a revoked one back.
// A revoked module stays refused; a fixed one is a new version.
func (a *Agent) revoke(e jetstream.KeyValueEntry) bool {
	if e.Operation() != jetstream.KeyValuePut {
		if _, ok := a.revokedNow()[e.Key()]; ok {
			a.o.Logger.Warn("a revocation was deleted from the control plane; it stays in force", "digest", e.Key())
		}
		return false
	}
	r, err := a.o.Trust.CheckRevocation(e.Key(), e.Value())
	if err != nil {
		a.o.Logger.Warn("revocation refused", "digest", e.Key(), "err", err)
		return false
	}
	// Copy on write: module() reads the map outside the lock.
	a.mu.Lock()
	m := maps.Clone(a.revoked)
	m[e.Key()] = *r
	a.revoked = m
	a.mu.Unlock()
	if !a.running()[e.Key()] {
		return false
	}
	a.o.Logger.Error("a version this POP runs was revoked; stopping it", "digest", e.Key())
	a.force = true
	return true
}

// revokedNow is the revocation list as it stands.
func (a *Agent) revokedNow() map[string]manifest.Revocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.revoked
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// linkLost is the link's disconnect handler. A link closed on purpose, as
// the POP stops, is not lost: no warning then.
func (a *Agent) linkLost(nc *nats.Conn, err error) {
	a.connected.Set(0)
	if nc.IsClosed() {
		return
	}
	a.o.Logger.Warn("control plane link lost; serving the current state", "err", err)
}
