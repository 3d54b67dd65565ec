// Package rollout rolls a plugin version out across the fleet, region by
// region in waves, each with an optional canary share, and rolls it back
// on its own when a health gate fails while a wave bakes.
//
// The controller (Controller.Run, `wedgectl control`) is the one writer
// of desired state for rollouts. Everything it knows lives in the control
// plane: the rollout records in the wedge_rollouts KV, the desired state it
// writes, the status POPs report and the audit stream. So a controller
// that restarts, or another one that takes over, continues where the last
// one stopped; and the CLI in another process drives a rollout through
// the same records (Start, Command). Controllers take turns through a
// lease in the same KV, renewed before every step and outliving the step;
// and a controller saves a record only if no other one changed it since
// it read it, so one that lost the lease cannot overwrite its successor.
//
// A rollout goes: running (wave by wave: apply, wait for every POP of the
// wave's regions to ACK, bake while the gates hold, promote) -> done; or,
// when a gate fails, a POP NACKs (while the wave applies or bakes), an
// apply times out or an operator says abort or rollback -> rolling_back
// -> rolled_back, with every region it touched restored to what it ran
// before, unless newer work has replaced the rollout's release there
// (that region is left alone and the audit says so). A wave whose region
// stops reporting, and a wave a POP's own override of the key would hide
// from that POP, are rolled back too. What the audit says a POP runs, it
// takes from that POP's report.
//
// # Why
//
// Health is judged from the difference of the POPs' counters since the
// wave was applied (the baseline), over the target version only (plugin
// name and digest): the canary's own traffic, not the region's. A POP
// counts per loaded plugin version and starts again from zero when it
// loads a version again, so a report below its baseline counts whole.
// A gate is checked on every tick once the window holds MinRequests, so a
// bad version is stopped as soon as there is evidence, not at the end of
// the bake. Each step is written as an intent before it touches desired
// state, and desired-state writes compare before they write, so a
// controller that dies between the two repeats the step harmlessly
// instead of recording its own canary as the state to restore.
//
// Commands reach the controller through the rollout record: the CLI
// appends a numbered command with compare-and-set, the controller
// handles those above the number it last handled. Neither loses the
// other's write.
package rollout

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
)

// States of a rollout.
const (
	StateRunning     = "running"
	StateRollingBack = "rolling_back"
	StateDone        = "done"
	StateRolledBack  = "rolled_back"
)

// Phases of the current wave while running.
const (
	PhasePending  = "pending"  // not applied yet
	PhaseApplying = "applying" // written, waiting for the POPs' ACKs
	PhaseBaking   = "baking"   // applied, gates watched
)

// Commands an operator can send to a rollout.
const (
	ActionPause    = "pause"
	ActionResume   = "resume"
	ActionPromote  = "promote"
	ActionAbort    = "abort"
	ActionRollback = "rollback"
)

// Defaults of Spec and Options.
const (
	DefaultMinRequests  = 20
	DefaultApplyTimeout = 30 * time.Second
	DefaultFresh        = 10 * time.Second
	DefaultTick         = 250 * time.Millisecond
)

// Spec is what an operator asks for.
type Spec struct {
	Plugin  string // plugin name
	Version string // target version: its artifact must be in the registry
	// Key is the Desired.Plugins key: "" for Plugin on every route, or
	// "<route>/<plugin>".
	Key         string
	Config      json.RawMessage // the target's config; nil keeps the POPs'
	Waves       string          // e.g. "eu-west:10%,eu-west:100%,us-east,*"
	Gates       string          // e.g. "error_rate<1%,p99<50ms"
	Bake        time.Duration   // how long a wave's gates must hold
	MinRequests uint64          // requests a window needs before it is judged; 0 means 20
	// Split places clients on the canary's side (manifest.ParseSplit):
	// "" or "addr" by address, "header:NAME" or "cookie:NAME" by value.
	Split    string
	Who, Why string // for the audit stream; Who is required
	// Trust is the POPs' trust store (their fleet.trust): a version a key
	// of it revoked is refused here rather than rolled back by the
	// controller. A revocation record none of its keys signed is not one,
	// as for the POPs. Empty: revocations are left to the controller.
	Trust manifest.TrustStore
}

// Rollout is the record of one rollout in the wedge_rollouts KV.
type Rollout struct {
	ID          string            `json:"id"`
	Key         string            `json:"key"`
	Plugin      string            `json:"plugin"`
	Version     string            `json:"version"`
	Artifact    manifest.Artifact `json:"artifact"`
	Config      json.RawMessage   `json:"config,omitempty"`
	Waves       []Wave            `json:"waves"`
	Gates       []Gate            `json:"gates"`
	Bake        time.Duration     `json:"bake"`
	MinRequests uint64            `json:"min_requests"`
	Split       string            `json:"split,omitempty"` // the canary's split key, "" for the address
	By          string            `json:"by"`
	Why         string            `json:"why,omitempty"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`

	State  string `json:"state"`
	Paused bool   `json:"paused,omitempty"`
	Reason string `json:"reason,omitempty"` // why it ended or was rolled back

	// The current wave.
	Wave      int                        `json:"wave"`
	Phase     string                     `json:"phase"`
	Revisions map[string]uint64          `json:"revisions,omitempty"` // region -> desired revision written
	AppliedAt time.Time                  `json:"applied_at,omitzero"`
	WaveStart time.Time                  `json:"wave_start,omitzero"`
	Baseline  map[string]manifest.Health `json:"baseline,omitempty"` // POP -> target health when applied
	// Seen is each POP's target health at the last tick, and Carried
	// what POPs that restarted since the wave was applied had served
	// before (from their baseline to their last report): a restart starts
	// a POP's counters again, and a version that crashed its POP would
	// otherwise take its errors with it.
	Seen       map[string]manifest.Health `json:"seen,omitempty"`
	Carried    Window                     `json:"carried,omitzero"`
	Promote    bool                       `json:"promote,omitempty"` // bake cut short by an operator
	Window     Window                     `json:"window"`
	GateValues []GateValue                `json:"gate_values,omitempty"`

	// Previous is what each region the rollout touched ran for Key
	// before it (nil: the key was absent), in the order touched.
	Previous map[string]*manifest.Release `json:"previous,omitempty"`
	Touched  []string                     `json:"touched,omitempty"`

	RollbackStart    time.Time         `json:"rollback_start,omitzero"`
	RollbackRevs     map[string]uint64 `json:"rollback_revisions,omitempty"`
	RollbackDuration time.Duration     `json:"rollback_duration,omitempty"`
	// RollbackKept are the touched regions left alone by the rollback:
	// newer work had replaced the rollout's release there.
	RollbackKept []string `json:"rollback_kept,omitempty"`
	// RollbackRefused says why each POP that refused the restore did, and
	// RollbackUnconfirmed names the POPs that had not confirmed it when
	// the rollback ended (behind, or no longer reporting): none of them
	// is known to run what was restored.
	RollbackRefused     []string `json:"rollback_refused,omitempty"`
	RollbackUnconfirmed []string `json:"rollback_unconfirmed,omitempty"`

	Commands []Instruction `json:"commands,omitempty"` // waiting for the controller
	Handled  uint64        `json:"handled"`            // highest Instruction.Seq handled

	rev  uint64 // KV revision read
	base []byte // stateOf the revision read: what save compares
}

// Instruction is an operator's command, queued on the record.
type Instruction struct {
	Seq    uint64    `json:"seq"`
	Action string    `json:"action"`
	Who    string    `json:"who"`
	Why    string    `json:"why,omitempty"`
	Time   time.Time `json:"time"`
}

// Active reports whether the controller still has work on the rollout.
func (r *Rollout) Active() bool { return r.State == StateRunning || r.State == StateRollingBack }

// Progress is "wave 2/4 eu-west:100% baking" for tables.
func (r *Rollout) Progress() string {
	switch r.State {
	case StateDone:
		return fmt.Sprintf("%d/%d waves", len(r.Waves), len(r.Waves))
	case StateRunning:
		if r.Wave < len(r.Waves) {
			s := fmt.Sprintf("wave %d/%d %s %s", r.Wave+1, len(r.Waves), r.Waves[r.Wave], r.Phase)
			if r.Phase == PhaseBaking && r.Window.Requests < r.MinRequests {
				s += fmt.Sprintf(", waiting for traffic (%d/%d requests)", r.Window.Requests, r.MinRequests)
			}
			if r.Paused {
				s += " (paused)"
			}
			return s
		}
	case StateRolledBack:
		// "restored" only where every POP that answered says so.
		switch {
		case len(r.RollbackRefused) > 0 || len(r.RollbackUnconfirmed) > 0:
			return fmt.Sprintf("rolled back in the desired state; %d POPs refused it, %d did not confirm it",
				len(r.RollbackRefused), len(r.RollbackUnconfirmed))
		case r.RollbackDuration > 0:
			return fmt.Sprintf("restored in %s", r.RollbackDuration.Round(time.Millisecond))
		}
	}
	return r.State
}

// Plan is a rollout resolved against the fleet as it is now.
type Plan struct {
	Plugin, Version, Key string
	Digest               string
	Waves                []PlannedWave
	Gates                []Gate
	Bake                 time.Duration
	MinRequests          uint64
	// Refused is why a revocation record of the version does not count:
	// POPs refuse it (signed by no key they trust), so they run the
	// version, and so does the rollout.
	Refused error
}

// PlannedWave is a wave with the regions and POPs it would reach now.
type PlannedWave struct {
	Wave    Wave
	Regions []string
	POPs    map[string][]string // region -> fresh POPs
}

// String prints the plan for a dry run.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rollout %s@%s (digest %.12s) as %q\n", p.Plugin, p.Version, p.Digest, p.Key)
	for i, w := range p.Waves {
		fmt.Fprintf(&b, "  wave %d  %-22s", i+1, w.Wave)
		if len(w.Regions) == 0 {
			b.WriteString(" no regions: skipped")
		}
		for j, r := range w.Regions {
			if j > 0 {
				b.WriteString(",")
			}
			if len(w.POPs[r]) == 0 {
				// What Start would do with it: a wave nothing reports on
				// cannot be gated, and rolls back.
				fmt.Fprintf(&b, " %s (no POP reports: the wave would roll back)", r)
				continue
			}
			fmt.Fprintf(&b, " %s (%d POPs: %s)", r, len(w.POPs[r]), strings.Join(w.POPs[r], " "))
		}
		b.WriteString("\n")
	}
	gates := make([]string, len(p.Gates))
	for i, g := range p.Gates {
		gates[i] = g.String()
	}
	fmt.Fprintf(&b, "  gates %s, bake %s each wave, judged after %d requests\n", strings.Join(gates, ", "), p.Bake, p.MinRequests)
	if p.Refused != nil {
		fmt.Fprintf(&b, "  not revoked: %v\n", p.Refused)
	}
	return b.String()
}

// Resolve validates spec against the registry and the fleet and returns
// the plan, changing nothing: the dry run, and the first half of Start.
func Resolve(ctx context.Context, s *controlplane.Stores, spec Spec) (*Plan, error) {
	r, refused, err := prepare(ctx, s, spec)
	if err != nil {
		return nil, err
	}
	p, err := plan(ctx, s, r)
	if err != nil {
		return nil, err
	}
	p.Refused = refused
	return p, nil
}

func plan(ctx context.Context, s *controlplane.Stores, r *Rollout) (*Plan, error) {
	fleet, err := readFleet(ctx, s, DefaultFresh)
	if err != nil {
		return nil, err
	}
	if err := fleet.runs(r.Plugin, r.Key); err != nil {
		return nil, err
	}
	p := &Plan{Plugin: r.Plugin, Version: r.Version, Key: r.Key, Digest: r.Artifact.Digest,
		Gates: r.Gates, Bake: r.Bake, MinRequests: r.MinRequests}
	named := map[string]bool{}
	for _, w := range r.Waves {
		pw := PlannedWave{Wave: w, POPs: map[string][]string{}}
		if w.Region == Everywhere {
			pw.Regions = fleet.remaining(named)
		} else {
			if !fleet.known[w.Region] {
				return nil, fmt.Errorf("rollout: region %q is unknown: no POP reports it and it has no desired state (known: %s)",
					w.Region, strings.Join(fleet.regions(), ", "))
			}
			pw.Regions = []string{w.Region}
			named[w.Region] = true
		}
		for _, region := range pw.Regions {
			for _, st := range fleet.pops(region) {
				pw.POPs[region] = append(pw.POPs[region], st.POP)
			}
		}
		p.Waves = append(p.Waves, pw)
	}
	return p, nil
}

// prepare validates spec and builds the record Start would store;
// refused is a revocation record of the version that POPs ignore.
func prepare(ctx context.Context, s *controlplane.Stores, spec Spec) (r *Rollout, refused, err error) {
	if err := manifest.CheckName("plugin", spec.Plugin); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	if err := manifest.CheckVersion(spec.Version); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	key := spec.Key
	if key == "" {
		key = spec.Plugin
	}
	if key != spec.Plugin {
		route, plugin, ok := strings.Cut(key, "/")
		if !ok || plugin != spec.Plugin || route == "" || strings.ContainsAny(route, "/ .*>") {
			return nil, nil, fmt.Errorf("rollout: key %q: want %q or ROUTE/%s", key, spec.Plugin, spec.Plugin)
		}
	}
	if spec.Config != nil && !json.Valid(spec.Config) {
		return nil, nil, fmt.Errorf("rollout: config of %s@%s is not valid JSON", spec.Plugin, spec.Version)
	}
	if spec.Bake < 0 {
		return nil, nil, fmt.Errorf("rollout: bake %s is negative", spec.Bake)
	}
	waves, err := ParseWaves(spec.Waves)
	if err != nil {
		return nil, nil, err
	}
	gates, err := ParseGates(spec.Gates)
	if err != nil {
		return nil, nil, err
	}
	if _, _, err := manifest.ParseSplit(spec.Split); err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	split := spec.Split
	if split == manifest.SplitAddr {
		split = "" // as records written before splits say it
	}
	a, err := s.Artifact(ctx, spec.Plugin, spec.Version)
	if errors.Is(err, controlplane.ErrNotFound) {
		return nil, nil, fmt.Errorf("rollout: %s@%s is not in the registry: push it first", spec.Plugin, spec.Version)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rollout: %w", err)
	}
	// Edges would refuse it anyway; refusing it here fails the start, not
	// every wave.
	if a.Digest == "" || len(a.Sig) == 0 {
		return nil, nil, fmt.Errorf("rollout: artifact record %s@%s (digest %q, %d signature bytes) is not signed: refusing it",
			spec.Plugin, spec.Version, a.Digest, len(a.Sig))
	}
	// Without the POPs' trust store a revocation cannot be told from a
	// record they ignore; the controller, which has it, rolls a revoked
	// version back at its first step.
	if len(spec.Trust) > 0 {
		switch rv, why, err := revocation(ctx, s, spec.Trust, a.Digest); {
		case err != nil:
			return nil, nil, err
		case rv != nil:
			return nil, nil, fmt.Errorf("rollout: %s@%s (digest %.12s) is revoked (%q): edges refuse it",
				spec.Plugin, spec.Version, a.Digest, rv.Reason)
		case why != nil:
			refused = fmt.Errorf("the revocations bucket holds a record for digest %.12s that POPs refuse, so it revokes nothing: %w", a.Digest, why)
		}
	}
	minReq := spec.MinRequests
	if minReq == 0 {
		minReq = DefaultMinRequests
	}
	now := time.Now().UTC()
	return &Rollout{
		ID: newID(spec.Plugin, now), Key: key, Plugin: spec.Plugin, Version: spec.Version, Artifact: *a,
		Config: spec.Config, Waves: waves, Gates: gates, Bake: spec.Bake, MinRequests: minReq, Split: split,
		By: spec.Who, Why: spec.Why, Created: now, Updated: now,
		State: StateRunning, Phase: PhasePending,
	}, refused, nil
}

// revocation is digest's revocation if a key of trust signed it, as POPs
// take it, nil for none. A record no key of trust signed stops no POP, so
// it is no revocation here either: refused says why POPs ignore it.
// Counting it would refuse a version the POPs run, and replace it with
// the POPs' own version as the stable side of a canary and in a rollback.
func revocation(ctx context.Context, s *controlplane.Stores, trust manifest.TrustStore, digest string) (rv *manifest.Revocation, refused, err error) {
	e, err := s.Revoked.Get(ctx, digest)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("rollout: revocations: %w", err)
	}
	rv, refused = trust.CheckRevocation(digest, e.Value())
	return rv, refused, nil
}

// errNoWho refuses an audit entry without an actor: "unknown" in an
// audit answers nothing.
var errNoWho = errors.New("rollout: no operator named for the audit: say who (wedgectl --who or WEDGE_WHO)")

func newID(plugin string, now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return plugin + "-" + now.Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// lockKey holds the ID of the one active rollout of a plugin key.
func lockKey(key string) string { return "active." + key }

func isRecord(kvKey string) bool {
	return !strings.HasPrefix(kvKey, "active.") && !strings.HasPrefix(kvKey, manifest.ControllerKeys)
}

// startingFor is how long a lock whose rollout has no record yet counts
// as a Start under way: a Start writes the record well within it, and one
// killed in between left the lock. A variable for the tests.
var startingFor = time.Minute

// takeLock takes key's active lock for id. A lock left by a rollout that
// has ended is taken over: the controller saves a rollout's end, then
// releases its lock, so an operator who saw a rollout end and started the
// next at once was refused, and a controller stopped in between left the
// lock for good. So is one left by a Start killed before it wrote its
// record, startingFor on.
func takeLock(ctx context.Context, s *controlplane.Stores, key, id string) error {
	for {
		_, err := s.Rollouts.Create(ctx, lockKey(key), []byte(id))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("rollout: lock %s: %w", key, err)
		}
		e, err := s.Rollouts.Get(ctx, lockKey(key))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("rollout: lock %s: %w", key, err)
		}
		holder := string(e.Value())
		rec, err := s.Rollouts.Get(ctx, holder)
		switch {
		case err == nil:
			if r, err := decode(rec); err != nil || r.Active() {
				return fmt.Errorf("rollout: %s already has an active rollout, %s: abort it or wait for it to end", key, holder)
			}
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey):
			if time.Since(e.Created()) < startingFor {
				return fmt.Errorf("rollout: %s already has a rollout starting, %s", key, holder)
			}
		default:
			return fmt.Errorf("rollout: lock %s: %w", key, err)
		}
		if err := s.Rollouts.Delete(ctx, lockKey(key), jetstream.LastRevision(e.Revision())); err != nil && ignoreConflict(err) != nil {
			return fmt.Errorf("rollout: lock %s: %w", key, err)
		}
	}
}

// Start validates spec, resolves it against the fleet and stores the
// rollout for the controller to run. It refuses a second active rollout
// of the same plugin key.
func Start(ctx context.Context, s *controlplane.Stores, spec Spec) (string, error) {
	if spec.Who == "" {
		return "", errNoWho
	}
	r, _, err := prepare(ctx, s, spec) // a refused revocation is the controller's to log
	if err != nil {
		return "", err
	}
	if _, err := plan(ctx, s, r); err != nil {
		return "", err
	}
	if err := takeLock(ctx, s, r.Key, r.ID); err != nil {
		return "", err
	}
	// Released even when ctx is what failed: a lock left behind would
	// refuse the next start.
	unlock := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		s.Rollouts.Delete(ctx, lockKey(r.Key))
	}
	// The audit entry before the record, as the controller's steps do
	// (saveAudit): a rollout that runs has its start audited, and one
	// whose entry could not be written never ran, so starting it again
	// is not refused.
	if err := publish(ctx, s, nil, r, "rollout.start", r.By, "", startWhy(r, spec.Why)); err != nil {
		unlock()
		return "", err
	}
	b, _ := json.Marshal(r)
	if _, err := s.Rollouts.Create(ctx, r.ID, b); err != nil {
		unlock()
		return "", fmt.Errorf("rollout: store %s: %w", r.ID, err)
	}
	return r.ID, nil
}

// startWhy is the rollout.start entry's text: what the rollout will do,
// and the operator's reason.
func startWhy(r *Rollout, reason string) string {
	waves := make([]string, len(r.Waves))
	for i, w := range r.Waves {
		waves[i] = w.String()
	}
	gates := make([]string, len(r.Gates))
	for i, g := range r.Gates {
		gates[i] = g.String()
	}
	why := fmt.Sprintf("start %s@%s on %s: waves %s, gates %s, bake %s, min %d requests",
		r.Plugin, r.Version, r.Key, strings.Join(waves, ","), strings.Join(gates, ","), r.Bake, r.MinRequests)
	if r.Split != "" {
		why += ", canary split by " + r.Split
	}
	if reason != "" {
		why += ": " + reason
	}
	return why
}

// Command sends an action (pause, resume, promote, abort, rollback) to a
// rollout; the controller carries it out on its next tick.
func Command(ctx context.Context, s *controlplane.Stores, id, action, who, why string) error {
	switch action {
	case ActionPause, ActionResume, ActionPromote, ActionAbort, ActionRollback:
	default:
		return fmt.Errorf("rollout: unknown action %q: want pause, resume, promote, abort or rollback", action)
	}
	if who == "" {
		return errNoWho
	}
	for {
		r, err := Get(ctx, s, id)
		if err != nil {
			return err
		}
		// Paused as the controller will have it, queued commands applied.
		paused := r.Paused
		for _, c := range r.Commands {
			if c.Seq > r.Handled && (c.Action == ActionPause || c.Action == ActionResume) {
				paused = c.Action == ActionPause
			}
		}
		switch {
		case r.State == StateDone && action == ActionRollback:
			if e, err := s.Rollouts.Get(ctx, lockKey(r.Key)); err == nil && string(e.Value()) != r.ID {
				return fmt.Errorf("rollout: %s: rollout %s of %s is active: restoring the state before %s would undo it", id, e.Value(), r.Key, id)
			}
		case !r.Active():
			return fmt.Errorf("rollout: %s is %s: nothing to %s", id, r.State, action)
		case r.State == StateRollingBack:
			return fmt.Errorf("rollout: %s is already rolling back", id)
		case paused && action == ActionPromote:
			// It would wait, unseen, and promote at the resume.
			return fmt.Errorf("rollout: %s is paused: resume it, then promote", id)
		case paused && action == ActionPause:
			return fmt.Errorf("rollout: %s is paused already", id)
		case !paused && action == ActionResume:
			return fmt.Errorf("rollout: %s is not paused: nothing to resume", id)
		}
		seq := r.Handled
		for _, c := range r.Commands {
			seq = max(seq, c.Seq)
		}
		r.Commands = append(slices.DeleteFunc(r.Commands, func(c Instruction) bool { return c.Seq <= r.Handled }),
			Instruction{Seq: seq + 1, Action: action, Who: who, Why: why, Time: time.Now().UTC()})
		b, _ := json.Marshal(r)
		_, err = s.Rollouts.Update(ctx, id, b, r.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // the controller wrote meanwhile: queue on the new record
		}
		if err != nil {
			return fmt.Errorf("rollout: %s %s: %w", action, id, err)
		}
		return nil
	}
}

// Get reads one rollout.
func Get(ctx context.Context, s *controlplane.Stores, id string) (*Rollout, error) {
	if !isRecord(id) {
		return nil, fmt.Errorf("rollout: %q is not a rollout ID", id)
	}
	e, err := s.Rollouts.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("rollout: no rollout %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("rollout: read %s: %w", id, err)
	}
	return decode(e)
}

func decode(e jetstream.KeyValueEntry) (*Rollout, error) {
	r := &Rollout{}
	if err := json.Unmarshal(e.Value(), r); err != nil {
		return nil, fmt.Errorf("rollout: record %s: %w", e.Key(), err)
	}
	r.rev, r.base = e.Revision(), stateOf(e.Value())
	return r, nil
}

// stateOf is a stored record without its command queue, normalised: the
// fields only a controller writes.
func stateOf(b []byte) []byte {
	var r Rollout
	json.Unmarshal(b, &r)
	r.Commands = nil
	out, _ := json.Marshal(&r)
	return out
}

// List returns every rollout, oldest first. A record that cannot be read
// is logged and left out, so that it does not hide the others.
func List(ctx context.Context, s *controlplane.Stores) ([]*Rollout, error) {
	return list(ctx, s, slog.Default())
}

func list(ctx context.Context, s *controlplane.Stores, log *slog.Logger) ([]*Rollout, error) {
	entries, err := s.ReadAll(ctx, s.Rollouts, ">")
	if err != nil {
		return nil, fmt.Errorf("rollout: list: %w", err)
	}
	var out []*Rollout
	for _, e := range entries {
		if !isRecord(e.Key()) {
			continue
		}
		r, err := decode(e)
		if err != nil {
			log.Warn("rollout: skipping an unreadable record", "key", e.Key(), "revision", e.Revision(), "err", err)
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Rollout) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// publish appends an audit entry and waits for the stream's ack. key is
// the controller's, nil for a command's own entry (see auditID).
func publish(ctx context.Context, s *controlplane.Stores, key ed25519.PrivateKey, r *Rollout, action, who, region, why string) error {
	a := manifest.Audit{Time: time.Now().UTC(), Who: who, Action: action, Rollout: r.ID,
		Plugin: r.Plugin, Version: r.Version, Region: region, Why: why}
	b, _ := json.Marshal(a)
	if _, err := s.JS.Publish(ctx, manifest.SubjectAudit+"."+action, b, jetstream.WithMsgID(auditID(key, r, action, region))); err != nil {
		return fmt.Errorf("rollout: audit %s: %w", action, err)
	}
	return nil
}

// auditID is an entry's Nats-Msg-Id, which makes a retried step's entry
// (a publish the server took but whose ack was lost, or the step run again
// by the next controller) a duplicate the stream drops. The stream drops
// any entry whose ID it has seen, on any subject: from what every role
// reads alone (the rollout, its record's revision, the action, the
// region), a push or revoke credential could publish a controller's next
// entry's ID first and have its rollback dropped. So a controller's ID
// ends in a MAC under its key, which every controller holds and no other
// role does.
func auditID(key ed25519.PrivateKey, r *Rollout, action, region string) string {
	id := fmt.Sprintf("%s.%d.%s.%s", r.ID, r.rev, action, region)
	if key == nil {
		return id
	}
	m := hmac.New(sha256.New, key.Seed())
	m.Write([]byte("wedge audit id\x00" + id))
	return id + "." + hex.EncodeToString(m.Sum(nil)[:16])
}

// fleet is the POP status reports and desired-state regions read at once.
type fleet struct {
	status []manifest.Status // fresh reports only, sorted by POP
	// stale are the reports that are not fresh, sorted by POP: POPs that
	// stopped reporting, which confirm nothing.
	stale []staleStatus
	// known are the regions with a region.<r> key or any POP report,
	// fresh or not: a region whose POPs went quiet is still a region, and
	// a "*" wave must fail on it rather than skip it.
	known map[string]bool
	// last is the newest report of any POP of a region, by the server's
	// clock, fresh or not.
	last map[string]time.Time
}

func readFleet(ctx context.Context, s *controlplane.Stores, fresh time.Duration) (*fleet, error) {
	f := &fleet{known: map[string]bool{}, last: map[string]time.Time{}}
	entries, err := s.ReadAll(ctx, s.Status, manifest.StatusKey("*", "*"))
	if err != nil {
		return nil, fmt.Errorf("rollout: read status: %w", err)
	}
	now := time.Now()
	for _, e := range entries {
		// One POP's garbage must not stop every rollout, and a report
		// naming another region than its key (a POP's credential writes
		// its own region's) must not count there.
		st, ok := manifest.StatusOf(e.Key(), e.Value())
		if !ok {
			continue
		}
		f.known[st.Region] = true
		// The server's time of the report, not the POP's own: a POP whose
		// clock is off must look neither fresh nor stale for it.
		at := e.Created()
		if at.After(f.last[st.Region]) {
			f.last[st.Region] = at
		}
		if now.Sub(at) <= fresh {
			f.status = append(f.status, st)
		} else {
			f.stale = append(f.stale, staleStatus{st, at})
		}
	}
	slices.SortFunc(f.status, func(a, b manifest.Status) int { return strings.Compare(a.POP, b.POP) })
	slices.SortFunc(f.stale, func(a, b staleStatus) int { return strings.Compare(a.POP, b.POP) })
	entries, err = s.ReadAll(ctx, s.Desired, "region.>")
	if err != nil {
		return nil, fmt.Errorf("rollout: read desired state: %w", err)
	}
	for _, e := range entries {
		f.known[strings.TrimPrefix(e.Key(), "region.")] = true
	}
	return f, nil
}

// runs refuses a rollout of key that no reporting POP could take: a POP
// refuses a release of a plugin no route of its config file runs (edge:
// "no route has that plugin"), so every wave would be NACKed and rolled
// back. It goes by the fresh reports' Running keys, which name every
// plugin of every route: the plugin, or ROUTE/PLUGIN where that route
// has its own release. A key ROUTE/PLUGIN is taken where a POP reports
// it, or the plugin alone (which may be on that route). POPs that have
// not reported lately are not counted, and with none reporting nothing
// is refused here: a fleet still starting up is no evidence, and a wave
// with no POP reporting rolls back by itself.
func (f *fleet) runs(plugin, key string) error {
	if len(f.status) == 0 {
		return nil
	}
	var has []string
	for _, st := range f.status {
		for k := range st.Running {
			if k == plugin || k == key || (key == plugin && strings.HasSuffix(k, "/"+plugin)) {
				return nil
			}
		}
		keys := slices.Sorted(maps.Keys(st.Running))
		if len(keys) == 0 {
			keys = []string{"no plugins"}
		}
		has = append(has, fmt.Sprintf("%s (%s): %s", st.POP, st.Region, strings.Join(keys, " ")))
	}
	what := "plugin " + plugin
	if key != plugin {
		what = fmt.Sprintf("plugin %s on route %s", plugin, strings.TrimSuffix(key, "/"+plugin))
	}
	return fmt.Errorf("rollout: %s: none of the %d POPs reporting runs %s, and a POP refuses a release for a plugin none of its routes has; they run: %s",
		key, len(f.status), what, strings.Join(has, "; "))
}

func (f *fleet) pops(region string) []manifest.Status {
	var out []manifest.Status
	for _, st := range f.status {
		if st.Region == region {
			out = append(out, st)
		}
	}
	return out
}

// staleStatus is a report that is not fresh, and when the server took it.
type staleStatus struct {
	manifest.Status
	at time.Time
}

// quiet are the POPs of region that reported once but not lately.
func (f *fleet) quiet(region string) []staleStatus {
	var out []staleStatus
	for _, st := range f.stale {
		if st.Region == region {
			out = append(out, st)
		}
	}
	return out
}

func (f *fleet) regions() []string {
	return slices.Sorted(maps.Keys(f.known))
}

// remaining is the known regions not in named, sorted.
func (f *fleet) remaining(named map[string]bool) []string {
	return slices.DeleteFunc(f.regions(), func(r string) bool { return named[r] })
}
