// Verifying desired state before believing it: a record must be signed by
// a controller key of Options.Control for the key it is read under, and
// not be older than the latest record accepted for that key (here or, via
// the disk state, before a restart; without a disk state, the newest
// record of the key's history that verifies: floor). A refused record
// changes nothing the POP runs; it is logged, counted by reason and
// reported in the status (Status.Refused, apart from the revision the POP
// runs) until a good record for that key arrives.

package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// errDeleted refuses the deletion of a record the POP accepted: a delete
// carries no signature, so anyone who can write to the bucket could make
// a POP drop its plugins (an auth plugin included) with one. The
// controller withdraws plugins with a signed empty record instead.
var errDeleted = errors.New("fleet: a delete is not signed")

// verify decodes and checks an update of a desired-state key; a nil
// Desired with no error is a deletion that desires nothing.
func (a *Agent) verify(e jetstream.KeyValueEntry, ks *keyState) (*manifest.Desired, error) {
	if e.Operation() != jetstream.KeyValuePut {
		if !a.o.Unsigned && !ks.issued.IsZero() {
			return nil, errDeleted
		}
		return nil, nil
	}
	if a.o.Unsigned {
		return manifest.ParseDesired(e.Value())
	}
	d, err := manifest.ParseSignedDesired(e.Value(), e.Key(), a.o.Control)
	if err != nil {
		return nil, err
	}
	if d.Issued.Before(ks.issued) {
		return nil, fmt.Errorf("%w: issued %s, the latest accepted %s", manifest.ErrDesiredStale,
			d.Issued.Format(time.RFC3339Nano), ks.issued.Format(time.RFC3339Nano))
	}
	return d, nil
}

// refuse records a refused update of a key: the key keeps its last good
// value, and the status says why until a good one arrives.
func (a *Agent) refuse(e jetstream.KeyValueEntry, ks *keyState, err error) {
	reason := manifest.DesiredReason(err)
	if errors.Is(err, errDeleted) {
		reason = "deleted"
	}
	a.refusals.WithLabelValues(reason).Inc()
	a.applies.WithLabelValues("nack").Inc()
	a.o.Logger.Warn("desired state refused; serving the previous one", "key", e.Key(), "revision", e.Revision(), "reason", reason, "err", err)
	ks.refusal = &manifest.Refused{Key: e.Key(), Revision: e.Revision(), Reason: reason,
		Error: manifest.Clip(fmt.Sprintf("fleet: %s revision %d refused (%s): %v", e.Key(), e.Revision(), reason, err), manifest.MaxStatusError)}
	a.reportRefused()
}

// reportRefused puts the keys holding a refused record in the status.
func (a *Agent) reportRefused() {
	var rs []manifest.Refused
	for _, ks := range a.desired {
		if ks.refusal != nil {
			rs = append(rs, *ks.refusal)
		}
	}
	slices.SortFunc(rs, func(x, y manifest.Refused) int { return strings.Compare(x.Key, y.Key) })
	a.mu.Lock()
	a.status.Refused = rs
	a.mu.Unlock()
}

// floor raises the replay floor of each key to the newest Issued among the
// records in the key's history that verify, as the POP (re)connects.
// Without it, the first record a POP without a floor (a new one, or one
// whose disk state was lost) sees would be accepted however old, so a
// replayed one would be; and a POP with one, back from a spell away in
// which the controller wrote B and then C (a rollback), would take B
// written again over C. A history that cannot be read leaves the floor as
// it was.
func (a *Agent) floor(ctx context.Context, kv jetstream.KeyValue) {
	if a.o.Unsigned {
		return
	}
	for key, ks := range a.desired {
		hist, err := kv.History(ctx, key)
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyNotFound) {
				a.o.Logger.Warn("desired-state history unreadable; no replay floor for it yet", "key", key, "err", err)
			}
			continue
		}
		for _, e := range hist {
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if d, err := manifest.ParseSignedDesired(e.Value(), key, a.o.Control); err == nil && d.Issued.After(ks.issued) {
				ks.issued = d.Issued
			}
		}
	}
}
