// Package fleet connects an edge node to Wedge's control plane: it watches
// the desired state of its region and POP, fetches and verifies the plugin
// versions it names, applies them to the node (an atomic swap), keeps the
// last state it applied on disk, and reports what it runs and how each
// plugin version is doing. It also applies the purges issued to its region
// or the fleet to the node's cache, and acknowledges them (purge.go).
//
// The agent also keeps a view of the fleet (Peers gives its region's,
// OnPeers every region's, for a shield region's tier): the POPs whose
// status reports keep arriving, with the address each says its peers
// reach it at (manifest.Status.Peer). A POP silent for 3 of
// this agent's report intervals is out of Peers, measured from when its
// last report arrived here, and OnPeers callbacks hear of it within one
// interval more (3-4 s at the default); a deleted report leaves at once.
// The POPs of a region are expected to report at the same interval. Cut
// off from the control plane, a POP's view soon holds itself alone, which
// is what a tier built on it should fall back to. The view is what the
// regional cache tier hashes keys over (edge/internal/rendezvous).
//
// It is not the only view of the region: edge/limitsync keeps its own,
// per rate-limit scope (region or global), from the usage batches and
// heartbeats the POPs publish. This one, from status reports, governs
// which POP owns which keys of the cache tier; limitsync's only decides
// whether a scope is cut off and, if so, the share of its limit each POP
// enforces. They may disagree for a few seconds; neither is derived from
// the other.
//
// # Why
//
// A POP must keep serving whatever happens to the control plane. Nothing
// here is on the request path: the node serves from its current generation
// while the agent fetches, verifies and compiles, and a POP cut off from
// the control plane, or restarted while cut off, serves its last-known-good
// state from disk. Every module is checked against the trust store before
// it is compiled (deploy/manifest's Verify), whatever the control plane says,
// and every desired-state record against the controller's keys before it
// is believed (verify.go): a write to the bucket without the controller's
// signature, for this key and newer than what the POP accepted, changes
// nothing the POP runs.
// The buckets are opened and modules fetched and verified by
// deploy/controlplane, the client every other user of the control plane
// goes through too.
package fleet

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
)

// Options configure an agent.
type Options struct {
	// URL is the control plane; Conn, when set, is used instead (an
	// in-process connection) and stays the caller's to close.
	URL  string
	Conn *nats.Conn
	// Security is the POP's credential and the control plane's CA, for
	// URL (deploy/controlplane/auth): a POP's credential lets it read
	// what it runs and write its own status only.
	Security controlplane.Security
	// Region and POP say which desired state applies.
	Region, POP string
	// Trust is the set of keys whose signatures the POP accepts.
	Trust manifest.TrustStore
	// Control is the set of controller keys whose signed desired state
	// the POP applies (verify.go); a record none of them signed for its
	// key is refused. Required unless Unsigned is set.
	Control manifest.TrustStore
	// Unsigned accepts desired state without checking its signature:
	// anyone who can write to the bucket then sets the POP's plugins and
	// their configs. For a control plane that predates signing only.
	Unsigned bool
	// Dir keeps the last-known-good state and the verified modules; ""
	// keeps nothing (a restart then serves the config file's plugins).
	Dir string
	// Report is how often the POP reports its status. Default 1 s.
	Report time.Duration
	// MaxModule bounds a module's size. Default manifest.MaxModuleSize.
	MaxModule int64
	Logger    *slog.Logger
}

// Agent runs one node's side of the control plane.
type Agent struct {
	node *edge.Node
	o    Options

	// Lock order: compiling, then mu (apply holds compiling throughout and
	// takes mu for moments); never compiling while holding mu, which Status
	// takes from other goroutines.
	mu      sync.Mutex // guards the fields below, read by Status
	status  manifest.Status
	revoked map[string]manifest.Revocation

	desired map[string]*keyState // by wedge_desired key: the region's and the POP's
	// refusals counts desired-state records refused by reason (verify.go).
	refusals *prometheus.CounterVec
	// Desired states by content (their releases as JSON): the one the
	// node runs, those refused until the node's config is reloaded, and
	// failed fetches of others. Content, not revision, decides whether to
	// apply, so a control plane rebuilt from scratch (revisions from 1
	// again) is followed too. The watch loop alone touches these.
	applied string
	stopped string           // what of the applied state the node does not run
	refused map[string]error // why each was refused
	tries   map[string]int
	force   bool // apply even if in step: a running version was revoked
	// reloaded asks the watch loop to forget refused and reconcile
	// (Reloaded); one pending request stands for any number.
	reloaded chan struct{}

	purge     *purger // the place in the purge stream (purge.go)
	applies   *prometheus.CounterVec
	revision  prometheus.Gauge
	connected prometheus.Gauge

	members members // the region's POPs, by their reports (members.go)

	// compiling is held while a module compiles (prefetch) or a state
	// applies, so an apply of a version being prefetched waits for the
	// compile and loads it from the cache instead of compiling it again.
	compiling sync.Mutex
}

// keyState is the last value and revision seen of one desired-state key,
// and the issue time of the latest record accepted for it: an older one is
// a replay (verify.go).
type keyState struct {
	rev     uint64
	d       *manifest.Desired
	issued  time.Time
	refusal *manifest.Refused // why the latest update was refused, nil if it was not
}

// New returns an agent for node. Run starts it.
func New(node *edge.Node, o Options) (*Agent, error) {
	if err := manifest.CheckName("region", o.Region); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if err := manifest.CheckName("pop", o.POP); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if len(o.Trust) == 0 {
		return nil, errors.New("fleet: empty trust store: no module could ever be accepted")
	}
	if len(o.Control) == 0 && !o.Unsigned {
		return nil, errors.New("fleet: no control keys: the desired state could not be verified (set the controller's public key, or accept unsigned desired state explicitly)")
	}
	if o.URL == "" && o.Conn == nil {
		return nil, errors.New("fleet: no control plane URL")
	}
	if o.Security.Creds != "" {
		creds, err := os.ReadFile(o.Security.Creds)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		if err := auth.CheckPOPCreds(creds, o.POP, o.Region); err != nil {
			return nil, fmt.Errorf("fleet: %s: %w", o.Security.Creds, err)
		}
	}
	if o.Report <= 0 {
		o.Report = time.Second
	}
	if o.MaxModule <= 0 {
		o.MaxModule = manifest.MaxModuleSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Agent{node: node, o: o, revoked: map[string]manifest.Revocation{},
		desired: map[string]*keyState{manifest.RegionKey(o.Region): {}, manifest.POPKey(o.POP): {}},
		applied: "{}", refused: map[string]error{}, tries: map[string]int{}, reloaded: make(chan struct{}, 1)}
	a.status = manifest.Status{POP: o.POP, Region: o.Region, Applied: true, Source: "config"}
	a.members = members{ttl: peerTTL * o.Report, others: map[string]Peer{}}
	a.applies = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wedge_fleet_applies_total",
		Help: "Desired states applied (ok) or refused (nack), and states restored from disk (disk)."}, []string{"result"})
	a.revision = prometheus.NewGauge(prometheus.GaugeOpts{Name: "wedge_fleet_revision",
		Help: "Revision of the desired state the POP runs."})
	a.connected = prometheus.NewGauge(prometheus.GaugeOpts{Name: "wedge_fleet_connected",
		Help: "1 while the POP's link to the control plane is up."})
	a.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wedge_fleet_desired_refused_total",
		Help: "Desired-state records refused before applying, by reason: unsigned, unknown_key, bad_signature, wrong_key, stale, deleted or invalid."}, []string{"reason"})
	// Every series from 0: a counter that first appears at 1 has no
	// increase() to show, and the alert on a first NACK would not fire.
	for _, result := range []string{"ok", "nack", "disk"} {
		a.applies.WithLabelValues(result)
	}
	for _, reason := range []string{"unsigned", "unknown_key", "bad_signature", "wrong_key", "stale", "deleted", "invalid"} {
		a.refusals.WithLabelValues(reason)
	}
	a.purge = newPurger(a)
	reg := node.Registry()
	if err := errors.Join(reg.Register(a.applies), reg.Register(a.refusals), reg.Register(a.revision), reg.Register(a.connected),
		reg.Register(a.purge.applied)); err != nil {
		return nil, fmt.Errorf("fleet: metrics: %w", err)
	}
	return a, nil
}

// Reloaded tells the agent that the node took its config file again. A
// desired state refused before may fit the new config (a route running
// the plugin it sets: "no route has that plugin"), and an operator who
// fixed the file expects it taken now, not at a restart or the next
// write of another state; so the agent forgets its refusals and
// reconciles the current state at once. Everything refused is tried
// again, not only what the node refused: a reload is rare, and a module
// refused again costs a fetch and a check. Safe from any goroutine: the
// watch loop does the work.
func (a *Agent) Reloaded() {
	select {
	case a.reloaded <- struct{}{}:
	default: // one pending already: it sees this config too
	}
}
