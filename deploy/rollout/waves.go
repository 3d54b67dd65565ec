// The waves going forward: apply a wave's release, wait for every POP
// to confirm it, bake it against the gates, promote it, finish. Apart
// from the loop that picks the step (controller.go) and from rolling back
// (rollback.go).

package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// apply starts the current wave: remember what each region ran, then
// write the wave's release into each region's desired state.
func (c *Controller) apply(ctx context.Context, f *fleet, r *Rollout) error {
	if r.Paused {
		return nil
	}
	if r.Wave >= len(r.Waves) {
		return c.finish(ctx, r)
	}
	w := &r.Waves[r.Wave]
	if w.Region == Everywhere && len(w.Regions) == 0 {
		named := map[string]bool{}
		for _, prev := range r.Waves[:r.Wave] {
			named[prev.Region] = true
		}
		w.Regions = f.remaining(named)
		if len(w.Regions) == 0 {
			r.Wave++
			return c.saveAudit(ctx, r, "wave.skip", "controller", "", fmt.Sprintf("wave %d/%d (*) has no regions left to reach", r.Wave, len(r.Waves)))
		}
	}
	regions := waveRegions(*w)
	for _, region := range regions {
		if len(f.pops(region)) == 0 {
			return c.rollback(ctx, f, r, "rollout.fail", "controller", fmt.Sprintf(
				"wave %d/%d %s: region %s has no POP reporting within %s: cannot gate without traffic",
				r.Wave+1, len(r.Waves), w, region, c.opts.Fresh))
		}
	}
	// A POP's own pop.<p> release of the key wins over its region's: that
	// POP would confirm the wave without running the target.
	for _, region := range regions {
		for _, st := range f.pops(region) {
			d, _, _, err := c.readDesired(ctx, manifest.POPKey(st.POP))
			if err != nil {
				return err
			}
			if _, ok := d.Plugins[r.Key]; ok {
				return c.rollback(ctx, f, r, "rollout.fail", "controller", fmt.Sprintf(
					"wave %d/%d %s: POP %s of %s has its own %s in its desired state (%s), which overrides the region's: remove the override or target the POP",
					r.Wave+1, len(r.Waves), w, st.POP, region, r.Key, manifest.POPKey(st.POP)))
			}
		}
	}
	// Intent first: a controller that dies after writing desired state
	// must not take its own canary for the state to restore.
	if r.Previous == nil {
		r.Previous = map[string]*manifest.Release{}
	}
	fresh := false
	for _, region := range regions {
		if _, ok := r.Previous[region]; ok {
			continue
		}
		d, _, _, err := c.readDesired(ctx, manifest.RegionKey(region))
		if err != nil {
			return err
		}
		var prev *manifest.Release
		if rel, ok := d.Plugins[r.Key]; ok {
			prev = &rel
		}
		if prev, err = c.unrevoked(ctx, prev); err != nil {
			return err
		}
		r.Previous[region] = prev
		r.Touched = append(r.Touched, region)
		fresh = true
	}
	if fresh {
		if err := c.save(ctx, r); err != nil {
			return err
		}
	}
	revs := map[string]uint64{}
	for _, region := range regions {
		rel := r.release(region, w.Share)
		why := fmt.Sprintf("rollout %s wave %d/%d: %s@%s at %g%%", r.ID, r.Wave+1, len(r.Waves), r.Plugin, r.Version, w.Share)
		rev, err := c.writeDesired(ctx, r, region, why, func(d *manifest.Desired) { d.Plugins[r.Key] = rel })
		if err != nil {
			return err
		}
		revs[region] = rev
	}
	r.Revisions, r.Phase, r.WaveStart, r.Promote = revs, PhaseApplying, time.Now().UTC(), false
	r.Baseline, r.Seen, r.Carried, r.Window, r.GateValues = nil, nil, Window{}, Window{}, nil
	stable := "the POPs' own version"
	prev := r.Previous[regions[0]]
	if prev != nil && prev.Artifact.Digest != "" {
		stable = prev.Artifact.Version
	}
	what := fmt.Sprintf("%s@%s on every client", r.Plugin, r.Version)
	// Where both sides run one module only their configs tell them apart,
	// by the hash the status page and `rollout status` show.
	configOnly := prev != nil && prev.Artifact.Digest == r.Artifact.Digest
	switch {
	case w.Share < 100 && configOnly:
		what = fmt.Sprintf("%s@%s with config %s on %g%% of clients, with config %s on the rest",
			r.Plugin, r.Version, auditConfig(r.Config), w.Share, auditConfig(prev.Config))
	case w.Share < 100:
		what = fmt.Sprintf("%s@%s on %g%% of clients, %s on the rest", r.Plugin, r.Version, w.Share, stable)
	case configOnly:
		what = fmt.Sprintf("%s@%s with config %s on every client", r.Plugin, r.Version, auditConfig(r.Config))
	}
	return c.saveAudit(ctx, r, "wave.apply", "controller", strings.Join(regions, ","), fmt.Sprintf(
		"wave %d/%d: %s in %s (desired state revision %s)", r.Wave+1, len(r.Waves), what, strings.Join(regions, ", "), fmtRevs(regions, revs)))
}

// auditConfig names a release's config in the audit by the start of its
// manifest.ConfigHash (a config can hold secrets the audit must not), or
// as the POPs' own where the release sets none.
func auditConfig(config json.RawMessage) string {
	if config == nil {
		return "(the POPs' own)"
	}
	return manifest.ConfigHash(config)[:8]
}

func fmtRevs(regions []string, revs map[string]uint64) string {
	parts := make([]string, len(regions))
	for i, r := range regions {
		parts[i] = fmt.Sprintf("%s=%d", r, revs[r])
	}
	return strings.Join(parts, " ")
}

func waveRegions(w Wave) []string {
	if w.Region == Everywhere {
		return w.Regions
	}
	return []string{w.Region}
}

// unrevoked is prev, or nil (the POPs' own version) when its version is
// revoked: that is what POPs run in its place, and every POP refuses a
// release that names a revoked version, as the stable side of a canary
// or as what a rollback restores.
func (c *Controller) unrevoked(ctx context.Context, prev *manifest.Release) (*manifest.Release, error) {
	if prev == nil || prev.Artifact.Digest == "" {
		return prev, nil
	}
	switch rv, err := c.revocation(ctx, prev.Artifact.Digest); {
	case err != nil:
		return nil, err
	case rv != nil:
		return nil, nil
	}
	return prev, nil
}

// revocation is digest's revocation as POPs take it (signed by a key of
// ArtifactKeys), nil for none. A record they refuse is logged, once.
func (c *Controller) revocation(ctx context.Context, digest string) (*manifest.Revocation, error) {
	rv, refused, err := revocation(ctx, c.s, c.artifacts, digest)
	if refused != nil && !c.refused[digest] {
		c.refused[digest] = true
		c.opts.Log.Warn("revocation refused: POPs ignore it, so it revokes nothing", "digest", digest, "err", refused)
	}
	return rv, err
}

// release is what region runs for the key in a wave of share percent:
// the stable side is always what the region ran before the rollout.
func (r *Rollout) release(region string, share float64) manifest.Release {
	if share >= 100 {
		return manifest.Release{Artifact: r.Artifact, Config: r.Config}
	}
	var rel manifest.Release
	if p := r.Previous[region]; p != nil {
		rel.Artifact, rel.Config = p.Artifact, p.Config
	}
	rel.Canary = &manifest.Canary{Artifact: r.Artifact, Config: r.Config, Share: share, Split: r.Split}
	return rel
}

// confirmed sorts the fresh POPs of region by their answer to revision
// rev: ran, those that run it or a later one; waiting, those not there
// yet; nacks, why each that refused it did. A POP refuses rev by failing
// to apply it, or by refusing the record itself (Status.Refused: it does
// not trust this controller's key, say). A refused record at another
// revision is not this wave's NACK: anyone with bucket access could write
// one, and the POP runs on what it had.
//
// Nor is a failure to apply a later revision, from a POP whose report
// shows it running want, what rev wrote for key: rollout locks are per
// key, so another plugin's rollout may write the region after rev, and a
// POP that fails that write keeps what it ran, rev's release included.
// Only that: a POP that refused rev itself is refused whatever it runs
// (a share step or a config change leaves it running much of the same),
// and where its report cannot show want whole (runsRelease: others are
// the releases it may run instead) it is too.
func confirmed(f *fleet, region string, rev uint64, key string, want *manifest.Release, others []manifest.Release) (ran, waiting, nacks []string) {
	for _, st := range f.pops(region) {
		i := slices.IndexFunc(st.Refused, func(rf manifest.Refused) bool {
			return rf.Key == manifest.RegionKey(region) && rf.Revision == rev
		})
		switch {
		case i >= 0:
			nacks = append(nacks, fmt.Sprintf("POP %s refused revision %d: %s", st.POP, rev, st.Refused[i].Error))
		case st.Revision < rev:
			waiting = append(waiting, st.POP)
		case !st.Applied && st.Revision > rev && runsRelease(st.Running[key], want, others):
			ran = append(ran, st.POP)
		case !st.Applied:
			nacks = append(nacks, fmt.Sprintf("POP %s refused revision %d: %s", st.POP, st.Revision, st.Error))
		default:
			ran = append(ran, st.POP)
		}
	}
	return ran, waiting, nacks
}

// runsRelease reports whether run, what a POP reports it serves for a
// key, is rel whole: each side's module by digest, with its config, and
// the canary's share and split. A rel that is nil or names no module is
// the POP's own version, which no report tells apart from what it ran
// before: never run by this reckoning. A side whose config rel leaves to
// the POP runs the POP's own, whose hash only the POP knows: it is taken
// for it unless it is the config one of others (the releases the rollout
// replaces or wrote) set for that module, which the POP would run had it
// not applied rel. The edge keeps a share in hundredths of a percent,
// truncated: the share is compared in those.
func runsRelease(run manifest.Running, rel *manifest.Release, others []manifest.Release) bool {
	config := func(digest, hash string, set json.RawMessage) bool {
		if set != nil {
			return hash == manifest.ConfigHash(set)
		}
		for _, o := range others {
			if o.Artifact.Digest == digest && o.Config != nil && hash == manifest.ConfigHash(o.Config) ||
				o.Canary != nil && o.Canary.Artifact.Digest == digest && o.Canary.Config != nil && hash == manifest.ConfigHash(o.Canary.Config) {
				return false
			}
		}
		return true
	}
	if rel == nil || rel.Artifact.Digest == "" || run.Digest != rel.Artifact.Digest || !config(run.Digest, run.Config, rel.Config) {
		return false
	}
	c := rel.Canary
	if c == nil {
		return run.CanaryDigest == ""
	}
	return run.CanaryDigest == c.Artifact.Digest && config(run.CanaryDigest, run.CanaryConfig, c.Config) &&
		manifest.ShareUnits(c.Share) == uint32(math.Round(run.Share*100)) && run.Split == c.Split
}

// silent returns a region of the current wave none of whose POPs has
// reported for longer than ApplyTimeout (counted from the wave's start at
// the earliest), and how long: a wave there can neither confirm nor bake.
func (c *Controller) silent(f *fleet, r *Rollout) (string, time.Duration) {
	for _, region := range waveRegions(r.Waves[r.Wave]) {
		if len(f.pops(region)) > 0 {
			continue
		}
		since := f.last[region]
		if since.Before(r.WaveStart) {
			since = r.WaveStart
		}
		if q := time.Since(since); q > c.opts.ApplyTimeout {
			return region, q
		}
	}
	return "", 0
}

func (c *Controller) rollbackSilent(ctx context.Context, f *fleet, r *Rollout) (bool, error) {
	region, q := c.silent(f, r)
	if region == "" {
		return false, nil
	}
	return true, c.rollback(ctx, f, r, "wave.silent", "controller", fmt.Sprintf(
		"wave %d/%d %s: POPs of %s stopped reporting for %s", r.Wave+1, len(r.Waves), r.Waves[r.Wave], region, q.Round(time.Second)))
}

func (c *Controller) applying(ctx context.Context, f *fleet, r *Rollout) error {
	w := r.Waves[r.Wave]
	regions := waveRegions(w)
	if done, err := c.rollbackSilent(ctx, f, r); done || err != nil {
		return err
	}
	var waiting, nacks []string
	behind := false // a fresh POP has not answered yet
	for _, region := range regions {
		want := r.release(region, w.Share)
		others := r.written(region)
		if prev := r.Previous[region]; prev != nil {
			others = append(others, *prev)
		}
		_, wait, nack := confirmed(f, region, r.Revisions[region], r.Key, &want, others)
		for _, n := range nack {
			nacks = append(nacks, "in "+region+", "+n)
		}
		behind = behind || len(wait) > 0
		if len(f.pops(region)) == 0 {
			wait = append(wait, "(no POP of "+region+" reporting)")
		}
		waiting = append(waiting, wait...)
	}
	took := time.Since(r.WaveStart)
	// A NACK fails the wave, but the rollback waits for the POPs still
	// applying it (as the wave would have, within ApplyTimeout): their
	// answers complete the reason's list of POPs that refused it, which
	// the first NACK alone, or the first region's, left short.
	if len(nacks) > 0 && (!behind || took > c.opts.ApplyTimeout) {
		why := fmt.Sprintf("wave %d/%d %s: %s", r.Wave+1, len(r.Waves), w, strings.Join(nacks, "; "))
		if behind {
			why += fmt.Sprintf("; no answer within %s from %s", c.opts.ApplyTimeout, strings.Join(waiting, ", "))
		}
		return c.rollback(ctx, f, r, "wave.nack", "controller", why)
	}
	if len(waiting) > 0 {
		if took > c.opts.ApplyTimeout {
			return c.rollback(ctx, f, r, "wave.timeout", "controller", fmt.Sprintf(
				"wave %d/%d %s not applied within %s: waiting for %s", r.Wave+1, len(r.Waves), w, c.opts.ApplyTimeout, strings.Join(waiting, ", ")))
		}
		return nil
	}
	r.Baseline = map[string]manifest.Health{}
	n := 0
	var quiet []string
	for _, region := range regions {
		for _, st := range f.pops(region) {
			n++
			if h, ok := r.health(st); ok {
				r.Baseline[st.POP] = h
			}
		}
		quiet = append(quiet, r.quiet(f, region)...)
	}
	r.Phase, r.AppliedAt = PhaseBaking, time.Now().UTC()
	why := fmt.Sprintf("wave %d/%d %s applied on all %d POPs reporting in %s; baking for %s", r.Wave+1, len(r.Waves), w, n, took.Round(time.Millisecond), r.Bake)
	if len(quiet) > 0 {
		// "All" is all that report: these may not run it.
		why += fmt.Sprintf("; not confirmed by POPs that stopped reporting: %s", strings.Join(quiet, ", "))
	}
	return c.saveAudit(ctx, r, "wave.applied", "controller", strings.Join(regions, ","), why)
}

// quiet names the POPs of region that reported since the rollout began
// but not lately, and when they last did: they confirm nothing. One gone
// before the rollout runs nothing of it.
func (r *Rollout) quiet(f *fleet, region string) []string {
	var out []string
	for _, st := range f.quiet(region) {
		if !st.at.Before(r.Created) {
			out = append(out, fmt.Sprintf("%s (%s, last report %s ago)", st.POP, region, time.Since(st.at).Round(time.Second)))
		}
	}
	return out
}

// runsTarget reports whether st serves the target of a wave of share
// percent for the key: as the stable side at 100%, as the canary below.
func (r *Rollout) runsTarget(st manifest.Status, share float64) bool {
	run := st.Running[r.Key]
	if share >= 100 {
		return run.Digest == r.Artifact.Digest
	}
	return run.CanaryDigest == r.Artifact.Digest
}

// health is the POP's counters of the target version, summed over the
// configs it runs with (a route of the POP's config file may give it its
// own). But where the canary runs the stable side's module, as a canary
// that changes only the config does, only the canary's config is its: by
// digest alone the canary would be judged on the stable side's requests
// too. A POP that reports no configs reports "" for each, and is judged
// by digest.
func (r *Rollout) health(st manifest.Status) (manifest.Health, bool) {
	run := st.Running[r.Key]
	configOnly := r.Waves[r.Wave].Share < 100 && run.Canary != "" && run.CanaryDigest == run.Digest
	var sum manifest.Health
	found := false
	for _, h := range st.Health {
		switch {
		case h.Plugin != r.Plugin || h.Digest != r.Artifact.Digest || (configOnly && h.Config != run.CanaryConfig):
		case !found:
			sum, found = h, true
			sum.Buckets = slices.Clone(h.Buckets)
		default:
			sum.Requests += h.Requests
			sum.Errors += h.Errors
			for i := range min(len(sum.Buckets), len(h.Buckets)) {
				sum.Buckets[i] += h.Buckets[i]
			}
		}
	}
	return sum, found
}

func (c *Controller) baking(ctx context.Context, f *fleet, r *Rollout) error {
	w := r.Waves[r.Wave]
	if done, err := c.rollbackSilent(ctx, f, r); done || err != nil {
		return err
	}
	// A POP of the wave that refuses its release after the wave applied
	// (one that joined the region since, or restarted and failed to load
	// it) serves without the target: promoting would claim the wave, and
	// in the end the rollout, where it does not run.
	var refusing []string
	for _, region := range waveRegions(w) {
		for _, st := range f.pops(region) {
			if !st.Applied && !r.runsTarget(st, w.Share) {
				refusing = append(refusing, fmt.Sprintf("in %s, POP %s refused revision %d and does not run %s@%s: %s",
					region, st.POP, st.Revision, r.Plugin, r.Version, st.Error))
			}
		}
	}
	if len(refusing) > 0 {
		return c.rollback(ctx, f, r, "wave.nack", "controller", fmt.Sprintf(
			"wave %d/%d %s, while baking: %s", r.Wave+1, len(r.Waves), w, strings.Join(refusing, "; ")))
	}
	if r.Seen == nil {
		r.Seen = map[string]manifest.Health{}
	}
	var now Window
	for _, region := range waveRegions(w) {
		for _, st := range f.pops(region) {
			h, ok := r.health(st)
			if !ok {
				continue
			}
			var base *manifest.Health
			if b, ok := r.Baseline[st.POP]; ok {
				base = &b
			}
			if last, ok := r.Seen[st.POP]; ok && h.Requests < last.Requests {
				// Restarted since the last tick: what it served before
				// stays in the window, and it counts from zero now.
				r.Carried.add(last, base)
				delete(r.Baseline, st.POP)
				base = nil
			}
			r.Seen[st.POP] = h
			now.add(h, base)
		}
	}
	var win Window
	win.merge(r.Carried)
	win.merge(now)
	changed := win.Requests != r.Window.Requests || win.Errors != r.Window.Errors
	r.Window = win
	r.GateValues = r.GateValues[:0]
	var failed []string
	for _, g := range r.Gates {
		v := win.Value(g.Metric)
		gv := GateValue{Gate: g.String(), Value: formatValue(g.Metric, v), Raw: v, OK: g.Holds(v)}
		r.GateValues = append(r.GateValues, gv)
		if !gv.OK {
			failed = append(failed, fmt.Sprintf("%s %s is not %s %s", g.Metric, gv.Value, g.Op, formatMetric(g.Metric, g.Limit)))
		}
	}
	enough := win.Requests >= r.MinRequests
	if enough && len(failed) > 0 {
		why := fmt.Sprintf("wave %d/%d %s: %s over %d requests (%d errors) after %s",
			r.Wave+1, len(r.Waves), w, strings.Join(failed, ", "), win.Requests, win.Errors, time.Since(r.AppliedAt).Round(time.Millisecond))
		if err := publish(ctx, c.s, c.opts.Key, r, "gate.fail", "controller", strings.Join(waveRegions(w), ","), why); err != nil {
			return err
		}
		return c.rollback(ctx, f, r, "rollout.rollback", "controller", "automatic rollback: "+why)
	}
	baked := time.Since(r.AppliedAt)
	if r.Paused || !(r.Promote || (enough && baked >= r.Bake)) {
		if changed {
			return c.save(ctx, r)
		}
		return nil
	}
	values := make([]string, len(r.GateValues))
	for i, gv := range r.GateValues {
		values[i] = gv.Gate + " was " + gv.Value
	}
	why := fmt.Sprintf("wave %d/%d %s held its gates for %s over %d requests (%s)",
		r.Wave+1, len(r.Waves), w, baked.Round(time.Millisecond), win.Requests, strings.Join(values, ", "))
	if r.Promote && !(enough && baked >= r.Bake) {
		why = fmt.Sprintf("wave %d/%d %s promoted by an operator after %s of %s bake, %d requests",
			r.Wave+1, len(r.Waves), w, baked.Round(time.Millisecond), r.Bake, win.Requests)
	}
	r.Wave++
	r.Phase, r.Promote = PhasePending, false
	if err := c.saveAudit(ctx, r, "wave.promote", "controller", strings.Join(waveRegions(w), ","), why); err != nil {
		return err
	}
	// Straight on to the next wave: a tick of delay per wave buys nothing.
	return c.apply(ctx, f, r)
}

func (c *Controller) finish(ctx context.Context, r *Rollout) error {
	r.State, r.Phase = StateDone, ""
	var regions []string
	for _, w := range r.Waves {
		regions = append(regions, waveRegions(w)...)
	}
	slices.Sort(regions)
	if err := c.saveAudit(ctx, r, "rollout.done", "controller", "", fmt.Sprintf(
		"%s@%s is on %s in %s, %s after the start", r.Plugin, r.Version, r.Key, strings.Join(slices.Compact(regions), ", "),
		time.Since(r.Created).Round(time.Millisecond))); err != nil {
		return err
	}
	return c.unlock(ctx, r)
}
