// The controller's writes to the control plane: the rollout record (with
// its audit entry) and the regions' desired state, each by compare-and-set
// so that a step repeated after a crash, or a successor, writes safely.

package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// saveAudit records an action. The entry goes out before the record is
// saved: a controller that dies between the two repeats the step and the
// entry (at least once), rather than leaving a step the audit never saw.
func (c *Controller) saveAudit(ctx context.Context, r *Rollout, action, who, region, why string) error {
	if err := publish(ctx, c.s, c.opts.Key, r, action, who, region, why); err != nil {
		return err
	}
	return c.save(ctx, r)
}

// save writes the record. When the CLI queued a command meanwhile it
// keeps those and writes again; when anything else changed, another
// controller took over and wrote its own state, which must not be
// overwritten: save fails and this controller's step ends there.
func (c *Controller) save(ctx context.Context, r *Rollout) error {
	r.Updated = time.Now().UTC()
	for {
		r.Commands = slices.DeleteFunc(r.Commands, func(cmd Instruction) bool { return cmd.Seq <= r.Handled })
		b, _ := json.Marshal(r)
		rev, err := c.s.Rollouts.Update(ctx, r.ID, b, r.rev)
		if err == nil {
			r.rev, r.base = rev, stateOf(b)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("rollout: save %s: %w", r.ID, err)
		}
		fresh, err := Get(ctx, c.s, r.ID)
		if err != nil {
			return err
		}
		if !bytes.Equal(fresh.base, r.base) {
			return fmt.Errorf("rollout: save %s: another controller changed it meanwhile (revision %d): leaving it to that one", r.ID, fresh.rev)
		}
		r.Commands, r.rev = fresh.Commands, fresh.rev
	}
}

// readDesired reads a wedge_desired key (region.<r> or pop.<p>): the
// newest record (by Issued) of the key's history that a trusted controller
// key signed for it, which is what the POPs run, and the key's latest
// revision, to compare-and-set against. over says what that latest
// revision is when it is not that record ("" when it is): an unsigned
// write, a delete or an old record written again, none of which the POPs
// accept, so none is a base to change and sign (signing over a rewritten
// config would give it the signature the POPs refused it for, and a
// delete read as empty would drop every other plugin of the key). A key
// never written is empty; one with history but no trusted record left
// (purged, or signed by keys no longer trusted) is an error rather than
// empty, for the same reason.
func (c *Controller) readDesired(ctx context.Context, key string) (d *manifest.Desired, rev uint64, over string, err error) {
	if c.opts.Key == nil {
		return nil, 0, "", fmt.Errorf("rollout: read desired state %s: no controller key to verify it with", key)
	}
	hist, err := c.s.Desired.History(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &manifest.Desired{Plugins: map[string]manifest.Release{}}, 0, "", nil
	}
	if err != nil {
		return nil, 0, "", fmt.Errorf("rollout: read desired state %s: %w", key, err)
	}
	var base uint64
	for _, e := range hist {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		if v, err := manifest.ParseSignedDesired(e.Value(), key, c.trust); err == nil && (d == nil || v.Issued.After(d.Issued)) {
			d, base = v, e.Revision()
		}
	}
	if d == nil {
		return nil, 0, "", fmt.Errorf("rollout: desired state %s has history but no record a trusted controller key signed (purged, or signed by a key not in Options.Trust): not starting it from empty", key)
	}
	if d.Plugins == nil {
		d.Plugins = map[string]manifest.Release{}
	}
	latest := hist[len(hist)-1]
	switch {
	case latest.Revision() == base:
	case latest.Operation() != jetstream.KeyValuePut:
		over = fmt.Sprintf("revision %d deletes it", latest.Revision())
	default:
		why := "an older record written again"
		if _, err := manifest.ParseSignedDesired(latest.Value(), key, c.trust); err != nil {
			why = manifest.DesiredReason(err)
		}
		over = fmt.Sprintf("revision %d is not the controller's (%s)", latest.Revision(), why)
	}
	return d, latest.Revision(), over, nil
}

// signDesired returns the record of d under key signed by the controller's
// key, issued now or, if the clock is behind the record it replaces, just
// after that one: a POP refuses a record older than one it applied.
func (c *Controller) signDesired(key string, d *manifest.Desired) ([]byte, error) {
	if c.opts.Key == nil {
		return nil, fmt.Errorf("rollout: write desired state %s: no controller key to sign it with", key)
	}
	issued := time.Now().UTC()
	if !issued.After(d.Issued) {
		issued = d.Issued.Add(time.Nanosecond)
	}
	b, err := manifest.SignDesired(c.opts.Key, key, issued, d)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return b, nil
}

// dropRevoked takes out of d what other keys than own hold of a revoked
// version (a release, or its canary) and names what it took. A POP refuses
// a whole desired state that holds a revoked version, so a region that
// ran a version revoked since refused every rollout of any other key
// until that key got a new version; it already runs its config file's
// plugin for the key, as a POP does while it refuses the record.
func (c *Controller) dropRevoked(ctx context.Context, d *manifest.Desired, own string) ([]string, error) {
	revoked := func(a manifest.Artifact) (bool, error) {
		if a.Digest == "" {
			return false, nil
		}
		rv, err := c.revocation(ctx, a.Digest)
		return rv != nil, err
	}
	var dropped []string
	for _, k := range slices.Sorted(maps.Keys(d.Plugins)) {
		if k == own {
			continue
		}
		rel := d.Plugins[k]
		if gone, err := revoked(rel.Artifact); err != nil {
			return nil, err
		} else if gone {
			delete(d.Plugins, k)
			dropped = append(dropped, fmt.Sprintf("%s (%s@%s)", k, rel.Artifact.Name, rel.Artifact.Version))
			continue
		}
		if rel.Canary == nil {
			continue
		}
		if gone, err := revoked(rel.Canary.Artifact); err != nil {
			return nil, err
		} else if gone {
			dropped = append(dropped, fmt.Sprintf("%s's canary (%s@%s)", k, rel.Canary.Artifact.Name, rel.Canary.Artifact.Version))
			rel.Canary = nil
			d.Plugins[k] = rel
		}
	}
	return dropped, nil
}

// writeDesired changes a region's desired state with compare-and-set and
// returns its revision. A change that is already there is not written
// again, so a step repeated after a crash does not bump the revision,
// unless the latest revision is not the controller's record (readDesired):
// then the record is written again over it, so the POPs' state and the
// key's latest revision agree, and the audit says what was written over.
func (c *Controller) writeDesired(ctx context.Context, r *Rollout, region, why string, change func(*manifest.Desired)) (uint64, error) {
	key := manifest.RegionKey(region)
	for {
		d, rev, over, err := c.readDesired(ctx, key)
		if err != nil {
			return 0, err
		}
		before, _ := json.Marshal(d.Plugins)
		change(d)
		dropped, err := c.dropRevoked(ctx, d, r.Key)
		if err != nil {
			return 0, err
		}
		after, _ := json.Marshal(d.Plugins)
		if bytes.Equal(before, after) && over == "" {
			return rev, nil
		}
		d.By, d.Why = "controller", why
		b, err := c.signDesired(key, d)
		if err != nil {
			return 0, err
		}
		if len(dropped) > 0 {
			if err := publish(ctx, c.s, c.opts.Key, r, "desired.drop_revoked", "controller", region, fmt.Sprintf(
				"%s: dropped %s, revoked: the POPs refuse a desired state that holds a revoked version, and run their config file's instead",
				key, strings.Join(dropped, ", "))); err != nil {
				return 0, err
			}
		}
		if over != "" {
			if err := publish(ctx, c.s, c.opts.Key, r, "desired.overwrite", "controller", region, fmt.Sprintf(
				"%s: %s, which the POPs refuse; written over with the controller's last record of %s issued %s and this change: %s",
				key, over, key, d.Issued.Format(time.RFC3339Nano), why)); err != nil {
				return 0, err
			}
		}
		if rev == 0 {
			rev, err = c.s.Desired.Create(ctx, key, b)
		} else {
			rev, err = c.s.Desired.Update(ctx, key, b, rev)
		}
		if err == nil {
			return rev, nil
		}
		if ignoreConflict(err) != nil {
			return 0, fmt.Errorf("rollout: write desired state of %s: %w", region, err)
		}
		// Someone else wrote the region meanwhile: redo on theirs.
	}
}
