// Rolling back: restore every region the rollout touched to what it ran
// before, except where newer work replaced the rollout's release, and
// wait for the POPs to confirm. Apart from the waves, which only start it.

package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// rollback records the intent to restore, then restores every region the
// rollout touched to what it ran before.
func (c *Controller) rollback(ctx context.Context, f *fleet, r *Rollout, action, who, why string) error {
	r.State, r.Phase, r.Reason = StateRollingBack, "", why
	r.RollbackStart, r.RollbackRevs, r.RollbackDuration = time.Now().UTC(), nil, 0
	r.RollbackRefused, r.RollbackUnconfirmed = nil, nil
	touched := "nothing to restore"
	if len(r.Touched) > 0 {
		touched = "restoring " + strings.Join(r.Touched, ", ")
	}
	if err := c.saveAudit(ctx, r, action, who, strings.Join(r.Touched, ","), why+"; "+touched); err != nil {
		return err
	}
	return c.rollingBack(ctx, f, r)
}

func (c *Controller) rollingBack(ctx context.Context, f *fleet, r *Rollout) error {
	if len(r.RollbackRevs) < len(r.Touched) {
		revs := map[string]uint64{}
		var kept []string
		for _, region := range slices.Backward(r.Touched) {
			prev, err := c.unrevoked(ctx, r.Previous[region]) // revoked since the rollout began
			if err != nil {
				return err
			}
			why := fmt.Sprintf("rollout %s rolled back: %s restored", r.ID, r.Key)
			var now string // what the region runs, when newer work replaced the rollout's release
			rev, err := c.writeDesired(ctx, r, region, why, func(d *manifest.Desired) {
				now = ""
				cur, ok := d.Plugins[r.Key]
				switch {
				case sameRelease(cur, ok, prev):
					// Restored already (a repeated step).
				case ok && slices.ContainsFunc(r.written(region), func(w manifest.Release) bool { return sameRelease(cur, true, &w) }):
					if prev == nil {
						delete(d.Plugins, r.Key)
					} else {
						d.Plugins[r.Key] = *prev
					}
				case ok:
					now = describe(cur)
				default:
					now = "absent"
				}
			})
			if err != nil {
				return err
			}
			revs[region] = rev
			if now != "" {
				kept = append(kept, region)
				if err := publish(ctx, c.s, c.opts.Key, r, "region.skip", "controller", region, fmt.Sprintf(
					"%s left as it is: its %s is now %s, not what rollout %s wrote there, so newer work replaced it", region, r.Key, now, r.ID)); err != nil {
					return err
				}
			}
		}
		r.RollbackRevs, r.RollbackKept = revs, kept
		if err := c.save(ctx, r); err != nil {
			return err
		}
	}
	// Each POP's answer, from its own report: the audit claims a restore
	// only where a POP runs the revision that restores it.
	var ran, waiting, refused, quiet, silent []string
	for _, region := range r.Touched {
		if slices.Contains(r.RollbackKept, region) {
			continue // not restored, so nothing to confirm
		}
		prev, err := c.unrevoked(ctx, r.Previous[region]) // what the restore wrote
		if err != nil {
			return err
		}
		done, wait, nacks := confirmed(f, region, r.RollbackRevs[region], r.Key, prev, r.written(region))
		for _, p := range done {
			ran = append(ran, p+" ("+region+")")
		}
		for _, p := range wait {
			waiting = append(waiting, p+" ("+region+")")
		}
		refused = append(refused, nacks...)
		quiet = append(quiet, r.quiet(f, region)...)
		if len(f.pops(region)) == 0 {
			// Nothing to wait for, and nothing to claim either.
			silent = append(silent, region)
		}
	}
	// A NACK is a POP's last word on a revision, so only POPs that have
	// not answered yet are waited for.
	took := time.Since(r.RollbackStart)
	if len(waiting) > 0 && took <= c.opts.ApplyTimeout {
		return nil
	}
	r.State, r.RollbackDuration = StateRolledBack, took
	r.RollbackRefused = refused
	r.RollbackUnconfirmed = append(waiting, quiet...)
	var says []string
	if len(ran) > 0 {
		says = append(says, fmt.Sprintf("%s restored in %s on %s", r.Key, took.Round(time.Millisecond), strings.Join(ran, ", ")))
	}
	if len(refused) > 0 {
		says = append(says, fmt.Sprintf("%s not restored where the POPs refused it, which serve what they ran before it: %s",
			r.Key, strings.Join(refused, "; ")))
	}
	if len(waiting) > 0 {
		says = append(says, fmt.Sprintf("%s restored in the desired state, but after %s these POPs have not confirmed it: %s",
			r.Key, c.opts.ApplyTimeout, strings.Join(waiting, ", ")))
	}
	if len(quiet) > 0 {
		says = append(says, fmt.Sprintf("%s not confirmed by POPs that stopped reporting: %s", r.Key, strings.Join(quiet, ", ")))
	}
	if len(silent) > 0 {
		says = append(says, fmt.Sprintf("%s restored in the desired state of %s, where no POP reports, so none has confirmed it",
			r.Key, strings.Join(silent, ", ")))
	}
	if len(r.RollbackKept) > 0 {
		says = append(says, fmt.Sprintf("%s left as they are: newer work replaced the rollout there", strings.Join(r.RollbackKept, ", ")))
	}
	why := strings.Join(says, "; ")
	if len(says) == 0 {
		why = "nothing to restore"
	}
	if err := c.saveAudit(ctx, r, "rollout.rolled_back", "controller", strings.Join(r.Touched, ","), why); err != nil {
		return err
	}
	return c.unlock(ctx, r)
}

// written is every release the rollout may have written to region: one
// per wave up to the current that reached it.
func (r *Rollout) written(region string) []manifest.Release {
	var out []manifest.Release
	for i, w := range r.Waves {
		if i <= r.Wave && slices.Contains(waveRegions(w), region) {
			out = append(out, r.release(region, w.Share))
		}
	}
	return out
}

// sameRelease reports whether cur (present: ok) is want (nil: absent).
func sameRelease(cur manifest.Release, ok bool, want *manifest.Release) bool {
	if want == nil || !ok {
		return want == nil && !ok
	}
	a, _ := json.Marshal(cur)
	b, _ := json.Marshal(want)
	return bytes.Equal(a, b)
}

func describe(rel manifest.Release) string {
	s := rel.Artifact.Name + "@" + rel.Artifact.Version
	if rel.Artifact.Digest == "" {
		s = "the POPs' own version"
	}
	if rel.Canary != nil {
		s += fmt.Sprintf(" with %s@%s on %g%%", rel.Canary.Artifact.Name, rel.Canary.Artifact.Version, rel.Canary.Share)
	}
	return s
}
