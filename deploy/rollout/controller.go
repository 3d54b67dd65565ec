package rollout

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
)

// Options tune a Controller; zero values take the defaults.
type Options struct {
	Tick         time.Duration // how often rollouts advance; 250ms
	Fresh        time.Duration // a POP report older than this is ignored; 10s
	ApplyTimeout time.Duration // how long POPs have to ACK a wave; 30s
	// Lease is how long a controller that stopped without a goodbye
	// keeps others from taking over; 30s. Only the holder writes: it
	// renews the lease before every rollout step and gives a step at
	// most a third of the lease, so a successor cannot take over while
	// a step still writes.
	Lease time.Duration
	Log   *slog.Logger
}

// DefaultLease is the default of Options.Lease.
const DefaultLease = 30 * time.Second

// Controller advances every active rollout on each tick.
type Controller struct {
	s    *controlplane.Stores
	opts Options
	id   string

	beforeStep func(*Rollout) // tests only: runs before each step's lease check
}

const leaseKey = "controller.lease"

type lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// NewController returns a controller over the control plane's stores.
func NewController(s *controlplane.Stores, opts Options) *Controller {
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.Fresh <= 0 {
		opts.Fresh = DefaultFresh
	}
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = DefaultApplyTimeout
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	var b [6]byte
	rand.Read(b[:])
	return &Controller{s: s, opts: opts, id: hex.EncodeToString(b[:])}
}

// Run advances rollouts until ctx ends, then returns nil. Errors of one
// tick (the control plane unreachable, say) are logged and retried on the
// next: the state is in the KV, so nothing is lost by waiting.
func (c *Controller) Run(ctx context.Context) error {
	defer c.release()
	t := time.NewTicker(c.opts.Tick)
	defer t.Stop()
	for {
		if err := c.tick(ctx); err != nil && ctx.Err() == nil {
			c.opts.Log.Warn("rollout controller tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// lead takes or renews the lease; false means another controller holds it.
func (c *Controller) lead(ctx context.Context) (bool, error) {
	b, _ := json.Marshal(lease{Holder: c.id, Expires: time.Now().Add(c.opts.Lease)})
	e, err := c.s.Rollouts.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		_, err = c.s.Rollouts.Create(ctx, leaseKey, b)
		return err == nil, ignoreConflict(err)
	}
	if err != nil {
		return false, err
	}
	var l lease
	json.Unmarshal(e.Value(), &l)
	if l.Holder != c.id && time.Now().Before(l.Expires) {
		return false, nil
	}
	_, err = c.s.Rollouts.Update(ctx, leaseKey, b, e.Revision())
	return err == nil, ignoreConflict(err)
}

func ignoreConflict(err error) error {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}

// release gives the lease up so a successor need not wait for it to expire.
func (c *Controller) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := c.s.Rollouts.Get(ctx, leaseKey)
	if err != nil {
		return
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) == nil && l.Holder == c.id {
		c.s.Rollouts.Delete(ctx, leaseKey, jetstream.LastRevision(e.Revision()))
	}
}

func (c *Controller) tick(ctx context.Context) error {
	ok, err := c.lead(ctx)
	if err != nil || !ok {
		return err
	}
	rs, err := list(ctx, c.s, c.opts.Log)
	if err != nil {
		return err
	}
	var f *fleet
	for _, r := range rs {
		if !r.Active() && !r.pending() {
			continue
		}
		if c.beforeStep != nil {
			c.beforeStep(r)
		}
		// Renewed before every step, the lease outlives the step (a third
		// of it at most): another controller can only take over between
		// steps, and then this tick stops here.
		if ok, err := c.lead(ctx); err != nil || !ok {
			return err
		}
		if f == nil {
			if f, err = readFleet(ctx, c.s, c.opts.Fresh); err != nil {
				return err
			}
		}
		// A step is a few writes that belong together: a controller being
		// stopped finishes the step rather than leave half of it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Lease/3)
		err := c.step(sctx, f, r)
		cancel()
		if err != nil {
			c.opts.Log.Warn("rollout step", "rollout", r.ID, "err", err)
		}
	}
	return nil
}

func (r *Rollout) pending() bool {
	return slices.ContainsFunc(r.Commands, func(c Instruction) bool { return c.Seq > r.Handled })
}

// step advances one rollout as far as the fleet allows now.
func (c *Controller) step(ctx context.Context, f *fleet, r *Rollout) error {
	if err := c.commands(ctx, f, r); err != nil {
		return err
	}
	switch r.State {
	case StateRollingBack:
		return c.rollingBack(ctx, f, r)
	case StateRunning:
		switch r.Phase {
		case PhasePending:
			return c.apply(ctx, f, r)
		case PhaseApplying:
			return c.applying(ctx, f, r)
		case PhaseBaking:
			return c.baking(ctx, f, r)
		}
	}
	return nil
}

func (c *Controller) commands(ctx context.Context, f *fleet, r *Rollout) error {
	cmds := slices.Clone(r.Commands)
	slices.SortFunc(cmds, func(a, b Instruction) int { return int(a.Seq) - int(b.Seq) })
	for _, cmd := range cmds {
		if cmd.Seq <= r.Handled {
			continue
		}
		r.Handled = cmd.Seq
		at := r.Progress()
		why := cmd.Why
		if why == "" {
			why = "no reason given"
		}
		var err error
		switch {
		case cmd.Action == ActionPause && r.State == StateRunning && !r.Paused:
			r.Paused = true
			err = c.saveAudit(ctx, r, "rollout.pause", cmd.Who, "", fmt.Sprintf("paused at %s: %s", at, why))
		case cmd.Action == ActionResume && r.State == StateRunning && r.Paused:
			r.Paused = false
			err = c.saveAudit(ctx, r, "rollout.resume", cmd.Who, "", fmt.Sprintf("resumed at %s: %s", at, why))
		case cmd.Action == ActionPromote && r.State == StateRunning:
			r.Promote = true
			err = c.saveAudit(ctx, r, "rollout.promote", cmd.Who, "", fmt.Sprintf("promote requested at %s, skipping the rest of the bake: %s", at, why))
		case cmd.Action == ActionRollback && r.State == StateDone:
			// A finished rollout no longer holds its key: it takes it
			// again, so no new rollout starts while it restores (the
			// lock goes when it is rolled back).
			var holder string
			if holder, err = c.lock(ctx, r); err != nil {
				return err
			}
			if holder != r.ID {
				err = c.saveAudit(ctx, r, "rollout.ignored", "controller", "", fmt.Sprintf(
					"rollback from %s ignored: rollout %s of %s is active, and restoring the state before %s would undo it", cmd.Who, holder, r.Key, r.ID))
				break
			}
			err = c.rollback(ctx, f, r, "rollout."+cmd.Action, cmd.Who, fmt.Sprintf("%s by %s at %s: %s", cmd.Action, cmd.Who, at, why))
		case (cmd.Action == ActionAbort || cmd.Action == ActionRollback) && r.State == StateRunning:
			err = c.rollback(ctx, f, r, "rollout."+cmd.Action, cmd.Who, fmt.Sprintf("%s by %s at %s: %s", cmd.Action, cmd.Who, at, why))
		default:
			err = c.saveAudit(ctx, r, "rollout.ignored", "controller", "", fmt.Sprintf("%s from %s ignored: rollout is %s", cmd.Action, cmd.Who, at))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

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
			d, _, err := c.readDesired(ctx, manifest.POPKey(st.POP))
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
		d, _, err := c.readDesired(ctx, manifest.RegionKey(region))
		if err != nil {
			return err
		}
		var prev *manifest.Release
		if rel, ok := d.Plugins[r.Key]; ok {
			prev = &rel
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
		rev, err := c.writeDesired(ctx, region, why, func(d *manifest.Desired) { d.Plugins[r.Key] = rel })
		if err != nil {
			return err
		}
		revs[region] = rev
	}
	r.Revisions, r.Phase, r.WaveStart, r.Promote = revs, PhaseApplying, time.Now().UTC(), false
	r.Baseline, r.Window, r.GateValues = nil, Window{}, nil
	stable := "the POPs' own version"
	if p := r.Previous[regions[0]]; p != nil && p.Artifact.Digest != "" {
		stable = p.Artifact.Version
	}
	what := fmt.Sprintf("%s@%s on every client", r.Plugin, r.Version)
	if w.Share < 100 {
		what = fmt.Sprintf("%s@%s on %g%% of clients, %s on the rest", r.Plugin, r.Version, w.Share, stable)
	}
	return c.saveAudit(ctx, r, "wave.apply", "controller", strings.Join(regions, ","), fmt.Sprintf(
		"wave %d/%d: %s in %s (desired state revision %s)", r.Wave+1, len(r.Waves), what, strings.Join(regions, ", "), fmtRevs(regions, revs)))
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
	rel.Canary = &manifest.Canary{Artifact: r.Artifact, Config: r.Config, Share: share}
	return rel
}

// confirmed reports whether every fresh POP of region runs revision rev
// or later; nack is the first POP that refused it.
func confirmed(f *fleet, region string, rev uint64) (ok bool, waiting []string, nack *manifest.Status) {
	for _, st := range f.pops(region) {
		switch {
		case st.Revision < rev:
			waiting = append(waiting, st.POP)
		case !st.Applied:
			return false, waiting, &st
		}
	}
	return len(waiting) == 0 && len(f.pops(region)) > 0, waiting, nil
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
	all := true
	var waiting []string
	for _, region := range regions {
		ok, wait, nack := confirmed(f, region, r.Revisions[region])
		if nack != nil {
			return c.rollback(ctx, f, r, "wave.nack", "controller", fmt.Sprintf(
				"wave %d/%d %s: POP %s of %s refused revision %d: %s", r.Wave+1, len(r.Waves), w, nack.POP, region, nack.Revision, nack.Error))
		}
		if !ok {
			all = false
			if len(f.pops(region)) == 0 {
				wait = append(wait, "(no POP of "+region+" reporting)")
			}
			waiting = append(waiting, wait...)
		}
	}
	took := time.Since(r.WaveStart)
	if !all {
		if took > c.opts.ApplyTimeout {
			return c.rollback(ctx, f, r, "wave.timeout", "controller", fmt.Sprintf(
				"wave %d/%d %s not applied within %s: waiting for %s", r.Wave+1, len(r.Waves), w, c.opts.ApplyTimeout, strings.Join(waiting, ", ")))
		}
		return nil
	}
	r.Baseline = map[string]manifest.Health{}
	n := 0
	for _, region := range regions {
		for _, st := range f.pops(region) {
			n++
			if h, ok := r.health(st); ok {
				r.Baseline[st.POP] = h
			}
		}
	}
	r.Phase, r.AppliedAt = PhaseBaking, time.Now().UTC()
	return c.saveAudit(ctx, r, "wave.applied", "controller", strings.Join(regions, ","), fmt.Sprintf(
		"wave %d/%d %s applied on all %d POPs in %s; baking for %s", r.Wave+1, len(r.Waves), w, n, took.Round(time.Millisecond), r.Bake))
}

// health is the POP's counters of the target version.
func (r *Rollout) health(st manifest.Status) (manifest.Health, bool) {
	for _, h := range st.Health {
		if h.Plugin == r.Plugin && h.Digest == r.Artifact.Digest {
			return h, true
		}
	}
	return manifest.Health{}, false
}

func (c *Controller) baking(ctx context.Context, f *fleet, r *Rollout) error {
	w := r.Waves[r.Wave]
	if done, err := c.rollbackSilent(ctx, f, r); done || err != nil {
		return err
	}
	var win Window
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
			win.add(h, base)
		}
	}
	changed := win.Requests != r.Window.Requests || win.Errors != r.Window.Errors
	r.Window = win
	r.GateValues = r.GateValues[:0]
	var failed []string
	for _, g := range r.Gates {
		v := win.Value(g.Metric)
		gv := GateValue{Gate: g.String(), Value: formatMetric(g.Metric, v), Raw: v, OK: g.Holds(v)}
		r.GateValues = append(r.GateValues, gv)
		if !gv.OK {
			failed = append(failed, fmt.Sprintf("%s %s is not %s %s", g.Metric, gv.Value, g.Op, formatMetric(g.Metric, g.Limit)))
		}
	}
	enough := win.Requests >= r.MinRequests
	if enough && len(failed) > 0 {
		why := fmt.Sprintf("wave %d/%d %s: %s over %d requests (%d errors) after %s",
			r.Wave+1, len(r.Waves), w, strings.Join(failed, ", "), win.Requests, win.Errors, time.Since(r.AppliedAt).Round(time.Millisecond))
		if err := publish(ctx, c.s, r, "gate.fail", "controller", strings.Join(waveRegions(w), ","), why); err != nil {
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

// rollback records the intent to restore, then restores every region the
// rollout touched to what it ran before.
func (c *Controller) rollback(ctx context.Context, f *fleet, r *Rollout, action, who, why string) error {
	r.State, r.Phase, r.Reason = StateRollingBack, "", why
	r.RollbackStart, r.RollbackRevs, r.RollbackDuration = time.Now().UTC(), nil, 0
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
			prev := r.Previous[region]
			why := fmt.Sprintf("rollout %s rolled back: %s restored", r.ID, r.Key)
			var now string // what the region runs, when newer work replaced the rollout's release
			rev, err := c.writeDesired(ctx, region, why, func(d *manifest.Desired) {
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
				if err := publish(ctx, c.s, r, "region.skip", "controller", region, fmt.Sprintf(
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
	var waiting []string
	for _, region := range r.Touched {
		ok, wait, nack := confirmed(f, region, r.RollbackRevs[region])
		switch {
		case nack != nil:
			waiting = append(waiting, nack.POP+" (NACK: "+nack.Error+")")
		case !ok && len(f.pops(region)) > 0:
			waiting = append(waiting, wait...)
		}
	}
	took := time.Since(r.RollbackStart)
	if len(waiting) > 0 && took <= c.opts.ApplyTimeout {
		return nil
	}
	r.State, r.RollbackDuration = StateRolledBack, took
	restored := slices.DeleteFunc(slices.Clone(r.Touched), func(region string) bool { return slices.Contains(r.RollbackKept, region) })
	why := fmt.Sprintf("%s restored in %s on every POP of %s", r.Key, took.Round(time.Millisecond), strings.Join(restored, ", "))
	if len(restored) == 0 {
		why = "nothing to restore"
	}
	if len(waiting) > 0 {
		why = fmt.Sprintf("%s restored in the desired state, but after %s these POPs have not confirmed it: %s",
			r.Key, c.opts.ApplyTimeout, strings.Join(waiting, ", "))
	}
	if len(r.RollbackKept) > 0 {
		why += fmt.Sprintf("; %s left as they are: newer work replaced the rollout there", strings.Join(r.RollbackKept, ", "))
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

// lock takes the key's active lock for r and returns its holder: r.ID
// when r has it (now or from before a restart).
func (c *Controller) lock(ctx context.Context, r *Rollout) (string, error) {
	_, err := c.s.Rollouts.Create(ctx, lockKey(r.Key), []byte(r.ID))
	if err == nil {
		return r.ID, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("rollout: lock %s: %w", r.Key, err)
	}
	e, err := c.s.Rollouts.Get(ctx, lockKey(r.Key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return c.lock(ctx, r) // released meanwhile
	}
	if err != nil {
		return "", fmt.Errorf("rollout: lock %s: %w", r.Key, err)
	}
	return string(e.Value()), nil
}

func (c *Controller) unlock(ctx context.Context, r *Rollout) error {
	e, err := c.s.Rollouts.Get(ctx, lockKey(r.Key))
	if err != nil || string(e.Value()) != r.ID {
		return nil
	}
	if err := c.s.Rollouts.Delete(ctx, lockKey(r.Key), jetstream.LastRevision(e.Revision())); err != nil && ignoreConflict(err) != nil {
		return fmt.Errorf("rollout: unlock %s: %w", r.Key, err)
	}
	return nil
}

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
