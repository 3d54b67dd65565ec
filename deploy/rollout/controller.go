package rollout

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
)

// Options tune a Controller; zero values take the defaults.
type Options struct {
	Tick         time.Duration // how often rollouts advance; 250ms
	Fresh        time.Duration // a POP report older than this is ignored; 10s
	ApplyTimeout time.Duration // how long POPs have to ACK a wave; 30s
	// Lease is how long a controller that stopped without a goodbye
	// keeps others from taking over; 10s (a gate that fails meanwhile
	// rolls back that much later, and a command waits as long). Only the holder writes: it
	// renews the lease before every rollout step and gives a step at
	// most a third of the lease, so a successor cannot take over while
	// a step still writes.
	Lease time.Duration
	// Key signs the desired state the controller writes (manifest's
	// SignDesired); POPs trust its public key as a control key and refuse
	// what it did not sign. Required: Run fails without it.
	Key ed25519.PrivateKey
	// Trust are earlier controller public keys whose records the
	// controller still takes as the base of its changes (it reads a key's
	// newest record signed by Key or one of these): a key rotation, or a
	// control plane restored while the key that signed its records was
	// lost. Rotating: give POPs the new public key next to the old one in
	// fleet.control_keys, restart the controller with the new Key and the
	// old public key here, and drop the old one from both once every
	// region's record was written again.
	Trust []ed25519.PublicKey
	// ArtifactKeys are the POPs' trust store (their fleet.trust): only a
	// revocation one of these signed counts, as only such a one stops a
	// POP. A record signed otherwise is logged as refused and changes
	// nothing: a writer of the revocations bucket alone cannot make the
	// controller refuse a version or drop the one a region runs.
	// Required: Run fails without it.
	ArtifactKeys manifest.TrustStore
	Log          *slog.Logger
}

// DefaultLease is the default of Options.Lease.
const DefaultLease = 10 * time.Second

// Controller advances every active rollout on each tick.
type Controller struct {
	s     *controlplane.Stores
	opts  Options
	id    string
	trust manifest.TrustStore  // Key's public key and Trust: the records readDesired takes
	stuck map[string]stuckStep // by rollout ID: steps failing since (reportStuck)
	// artifacts is ArtifactKeys; refused the digests whose revocation
	// record it refused and logged, so each is logged once, not each tick.
	artifacts manifest.TrustStore
	refused   map[string]bool

	beforeStep func(*Rollout) // tests only: runs before each step's lease check
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
	trust := manifest.NewTrustStore(opts.Trust...)
	if opts.Key != nil {
		pub := opts.Key.Public().(ed25519.PublicKey)
		trust[manifest.KeyID(pub)] = pub
	}
	return &Controller{s: s, opts: opts, id: hex.EncodeToString(b[:]), trust: trust, stuck: map[string]stuckStep{},
		artifacts: opts.ArtifactKeys, refused: map[string]bool{}}
}

// Run advances rollouts until ctx ends, then returns nil. Errors of one
// tick (the control plane unreachable, say) are logged and retried on the
// next: the state is in the KV, so nothing is lost by waiting.
func (c *Controller) Run(ctx context.Context) error {
	if c.opts.Key == nil {
		return errors.New("rollout: no controller key (Options.Key): the desired state the controller writes could not be signed")
	}
	if len(c.artifacts) == 0 {
		return errors.New("rollout: no artifact keys (Options.ArtifactKeys, the POPs' fleet.trust): revocations could not be told from records the POPs refuse")
	}
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
			c.reportStuck(ctx, r, err)
		} else {
			delete(c.stuck, r.ID)
		}
	}
	return nil
}

// stuckStep is a rollout whose steps fail tick after tick: since when,
// and the error last put in the audit.
type stuckStep struct {
	since    time.Time
	reported string
}

// reportStuck puts a step that has failed on every tick for longer than
// ApplyTimeout in the audit (which the overview, `rollout status`, shows),
// once per distinct error: a step that can never pass (a desired-state key
// with no record the controller trusts, say) would otherwise be a log
// line only. Shorter failures (the control plane away for a moment) are
// no news: the step is retried.
func (c *Controller) reportStuck(ctx context.Context, r *Rollout, err error) {
	st, ok := c.stuck[r.ID]
	if !ok {
		st.since = time.Now()
	}
	msg := manifest.Clip(err.Error(), manifest.MaxStatusError)
	if time.Since(st.since) > c.opts.ApplyTimeout && st.reported != msg && ctx.Err() == nil {
		if err := publish(ctx, c.s, c.opts.Key, r, "rollout.stuck", "controller", "", "step failing on every tick: "+msg); err != nil {
			c.opts.Log.Warn("rollout stuck not audited", "rollout", r.ID, "err", err)
		} else {
			st.reported = msg
		}
	}
	c.stuck[r.ID] = st
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
		// A version revoked while it rolls out stops on every POP: its
		// waves would wait for traffic that never comes.
		switch rv, err := c.revocation(ctx, r.Artifact.Digest); {
		case err != nil:
			return err
		case rv != nil:
			return c.rollback(ctx, f, r, "rollout.fail", "controller", fmt.Sprintf("%s@%s was revoked: %s", r.Plugin, r.Version, rv.Reason))
		}
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
