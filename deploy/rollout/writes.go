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
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// saveAudit records an action. The entry goes out before the record is
// saved: a controller that dies between the two repeats the step and the
// entry (at least once), rather than leaving a step the audit never saw.
func (c *Controller) saveAudit(ctx context.Context, r *Rollout, action, who, region, why string) error {
	if err := publish(ctx, c.s, r, action, who, region, why); err != nil {
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

// readDesired reads a wedge_desired key (region.<r> or pop.<p>); a missing
// one is empty.
func (c *Controller) readDesired(ctx context.Context, key string) (*manifest.Desired, uint64, error) {
	d := &manifest.Desired{}
	e, err := c.s.Desired.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		d.Plugins = map[string]manifest.Release{}
		return d, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: read desired state %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), d); err != nil {
		return nil, 0, fmt.Errorf("rollout: desired state %s: %w", key, err)
	}
	if d.Plugins == nil {
		d.Plugins = map[string]manifest.Release{}
	}
	return d, e.Revision(), nil
}

// writeDesired changes a region's desired state with compare-and-set and
// returns its revision. A change that is already there is not written
// again, so a step repeated after a crash does not bump the revision.
func (c *Controller) writeDesired(ctx context.Context, region, why string, change func(*manifest.Desired)) (uint64, error) {
	for {
		d, rev, err := c.readDesired(ctx, manifest.RegionKey(region))
		if err != nil {
			return 0, err
		}
		before, _ := json.Marshal(d.Plugins)
		change(d)
		after, _ := json.Marshal(d.Plugins)
		if bytes.Equal(before, after) {
			return rev, nil
		}
		d.By, d.Why = "controller", why
		b, _ := json.Marshal(d)
		if rev == 0 {
			rev, err = c.s.Desired.Create(ctx, manifest.RegionKey(region), b)
		} else {
			rev, err = c.s.Desired.Update(ctx, manifest.RegionKey(region), b, rev)
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
