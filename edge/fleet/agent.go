// Package fleet connects an edge node to Wedge's control plane: it watches
// the desired state of its region and POP, fetches and verifies the plugin
// versions it names, applies them to the node (an atomic swap), keeps the
// last state it applied on disk, and reports what it runs and how each
// plugin version is doing.
//
// # Why
//
// A POP must keep serving whatever happens to the control plane. Nothing
// here is on the request path: the node serves from its current generation
// while the agent fetches, verifies and compiles, and a POP cut off from
// the control plane, or restarted while cut off, serves its last-known-good
// state from disk. Every module is checked against the trust store before
// it is compiled (deploy/manifest's Verify), whatever the control plane says.
// The buckets are opened and modules fetched and verified by
// deploy/controlplane, the client every other user of the control plane
// goes through too.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
)

// Options configure an agent.
type Options struct {
	// URL is the control plane; Conn, when set, is used instead (an
	// in-process connection) and stays the caller's to close.
	URL  string
	Conn *nats.Conn
	// Region and POP say which desired state applies.
	Region, POP string
	// Trust is the set of keys whose signatures the POP accepts.
	Trust manifest.TrustStore
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
	// Desired states by content (their releases as JSON): the one the
	// node runs, those refused for good, and failed fetches of others.
	// Content, not revision, decides whether to apply, so a control plane
	// rebuilt from scratch (revisions from 1 again) is followed too.
	applied string
	stopped string // what of the applied state the node does not run
	refused map[string]bool
	tries   map[string]int
	force   bool // apply even if in step: a running version was revoked

	applies   *prometheus.CounterVec
	revision  prometheus.Gauge
	connected prometheus.Gauge

	// compiling is held while a module compiles (prefetch) or a state
	// applies, so an apply of a version being prefetched waits for the
	// compile and loads it from the cache instead of compiling it again.
	compiling sync.Mutex
}

// keyState is the last value and revision seen of one desired-state key.
type keyState struct {
	rev uint64
	d   *manifest.Desired
}

// state is what the agent keeps on disk: the releases it applied, with the
// artifacts that name the module files next to it.
type state struct {
	Revision uint64                         `json:"revision"`
	Releases map[string]manifest.Release    `json:"releases"`
	Revoked  map[string]manifest.Revocation `json:"revoked"`
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
	if o.URL == "" && o.Conn == nil {
		return nil, errors.New("fleet: no control plane URL")
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
		applied: "{}", refused: map[string]bool{}, tries: map[string]int{}}
	a.status = manifest.Status{POP: o.POP, Region: o.Region, Applied: true, Source: "config"}
	a.applies = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wedge_fleet_applies_total",
		Help: "Desired states applied (ok) or refused (nack), and states restored from disk (disk)."}, []string{"result"})
	a.revision = prometheus.NewGauge(prometheus.GaugeOpts{Name: "wedge_fleet_revision",
		Help: "Revision of the desired state the POP runs."})
	a.connected = prometheus.NewGauge(prometheus.GaugeOpts{Name: "wedge_fleet_connected",
		Help: "1 while the POP's link to the control plane is up."})
	reg := node.Registry()
	if err := errors.Join(reg.Register(a.applies), reg.Register(a.revision), reg.Register(a.connected)); err != nil {
		return nil, fmt.Errorf("fleet: metrics: %w", err)
	}
	return a, nil
}

// Status is what the agent reports now.
func (a *Agent) Status() manifest.Status {
	a.mu.Lock()
	s := a.status
	a.mu.Unlock()
	s.Time = time.Now().UTC()
	s.Running = a.node.Running()
	s.Health = a.node.Health()
	return s
}

// Run follows the control plane until ctx ends. Losing the control plane
// is not an error: the node keeps serving what it runs, and Run keeps
// trying to reconnect. Run returns only once everything it started has
// stopped (a prefetch may finish a compile first), so the node can be shut
// down after it: closing the node's runtime under a compile is not safe.
func (a *Agent) Run(ctx context.Context) error {
	nc := a.o.Conn
	if nc == nil {
		var err error
		nc, err = controlplane.Dial(a.o.URL, "wedge-edge-"+a.o.POP, a.o.Logger,
			// A first connect after starting cut off is not a reconnect.
			nats.ConnectHandler(func(*nats.Conn) { a.connected.Set(1) }))
		if err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		defer nc.Close()
	}
	// Say when the link goes and comes back, as it happens: the POP serves
	// on either way, and that is worth a log line and a metric.
	a.connected.Set(b2f(nc.IsConnected()))
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		a.connected.Set(0)
		a.o.Logger.Warn("control plane link lost; serving the current state", "err", err)
	})
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		a.o.Logger.Warn("control plane error", "err", err)
	})
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

// follow opens the buckets and watches them until ctx ends or the link
// breaks; the caller starts it again, and the watchers' first values then
// catch up with whatever changed meanwhile.
func (a *Agent) follow(ctx context.Context, nc *nats.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	var workers sync.WaitGroup // prefetch and reports: they use the node
	defer func() { cancel(); workers.Wait() }()
	stores, err := controlplane.Open(ctx, nc)
	if err != nil {
		return err
	}
	// The watch replays the current values: take them whatever their
	// revisions, and give failed fetches a fresh set of tries.
	for _, ks := range a.desired {
		ks.rev = 0
	}
	clear(a.tries)
	dw, err := stores.Desired.WatchFiltered(ctx, []string{manifest.RegionKey(a.o.Region), manifest.POPKey(a.o.POP)})
	if err != nil {
		return err
	}
	defer dw.Stop()
	rw, err := stores.Revoked.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer rw.Stop()
	aw, err := stores.Artifacts.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer aw.Stop()
	pushed := make(chan manifest.Artifact, 16)
	workers.Go(func() { a.prefetch(ctx, pushed, stores) })
	// Reports go on while an apply compiles: a POP that is busy is not
	// a POP that is gone.
	applied := make(chan struct{}, 1)
	workers.Go(func() { a.reportEvery(ctx, stores.Status, applied) })

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
	var d *manifest.Desired // a deleted key desires nothing
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if d, err = manifest.ParseDesired(e.Value()); err != nil {
			// Refused whole: the key keeps its last good value.
			a.nack(e.Revision(), fmt.Errorf("fleet: %s: %w", e.Key(), err))
			return false
		}
	}
	ks.rev, ks.d = e.Revision(), d
	return true
}

// revoke records a change of the revocation list; true if the desired
// state must be applied again: a version the node runs was revoked (and
// must stop), or a revocation that stopped one was withdrawn.
func (a *Agent) revoke(e jetstream.KeyValueEntry) bool {
	// Copy on write: module() reads the map outside the lock.
	a.mu.Lock()
	m := maps.Clone(a.revoked)
	if e.Operation() != jetstream.KeyValuePut {
		delete(m, e.Key())
	} else {
		var r manifest.Revocation
		if json.Unmarshal(e.Value(), &r) != nil {
			a.mu.Unlock()
			return false
		}
		r.Digest = e.Key()
		m[e.Key()] = r
	}
	a.revoked = m
	a.mu.Unlock()
	clear(a.refused) // a state refused for a revocation may pass now
	switch {
	case e.Operation() == jetstream.KeyValuePut && a.running()[e.Key()]:
		a.o.Logger.Error("a version this POP runs was revoked; stopping it", "digest", e.Key())
	case e.Operation() != jetstream.KeyValuePut && a.stopped != "":
		a.o.Logger.Info("a revocation was withdrawn; applying the desired state again", "digest", e.Key())
	default:
		return false
	}
	a.force = true
	return true
}

// running is the set of digests the node serves, canaries included.
func (a *Agent) running() map[string]bool {
	out := map[string]bool{}
	for _, r := range a.node.Running() {
		out[r.Digest] = true
		if r.CanaryDigest != "" {
			out[r.CanaryDigest] = true
		}
	}
	return out
}

// reconcileOrRetry reconciles, reports at once, and returns when to try
// again after a transient failure (nil: no need).
func (a *Agent) reconcileOrRetry(ctx context.Context, stores *controlplane.Stores, applied chan<- struct{}) <-chan time.Time {
	again := a.reconcile(ctx, stores)
	select {
	case applied <- struct{}{}:
	default:
	}
	if again {
		return time.After(500 * time.Millisecond)
	}
	return nil
}

// maxTries bounds the attempts at a desired state whose modules could not
// be fetched (a timeout, the link down) before it is refused; the next
// time the agent reconnects it tries again.
const maxTries = 10

// reconcile applies the merged desired state unless the node runs it
// already or it was refused for good. It reports true when a fetch failed
// in a way that may pass: the state is then neither applied nor refused
// yet, and the caller tries again.
func (a *Agent) reconcile(ctx context.Context, stores *controlplane.Stores) (again bool) {
	region := a.desired[manifest.RegionKey(a.o.Region)]
	pop := a.desired[manifest.POPKey(a.o.POP)]
	rev := max(region.rev, pop.rev)
	releases := manifest.Merge(region.d, pop.d)
	b, _ := json.Marshal(releases) // map keys sorted: equal states, equal bytes
	key := string(b)
	switch {
	case key == a.applied && !a.force:
		a.ack(rev, a.stopped)
		return false
	case a.refused[key]:
		return false
	}
	start := time.Now()
	warning, err := a.apply(ctx, releases, stores)
	if err != nil {
		a.tries[key]++
		if errors.Is(err, controlplane.ErrUnavailable) && a.tries[key] < maxTries && ctx.Err() == nil {
			a.o.Logger.Warn("desired state not applied yet; trying again", "revision", rev, "try", a.tries[key], "err", err)
			return true
		}
		if !errors.Is(err, controlplane.ErrUnavailable) {
			a.refused[key] = true
		}
		a.nack(rev, err)
		return false
	}
	delete(a.tries, key)
	a.applied, a.stopped, a.force = key, warning, false
	a.applies.WithLabelValues("ok").Inc()
	a.ack(rev, warning)
	a.o.Logger.Info("desired state applied", "revision", rev, "plugins", len(releases), "took", time.Since(start))
	a.mu.Lock()
	revoked := a.revoked
	a.mu.Unlock()
	if err := a.save(state{Revision: rev, Releases: releases, Revoked: revoked}); err != nil {
		a.o.Logger.Error("last-known-good state not saved", "err", err)
	}
	return false
}

// ack reports the node in step with revision rev; warning says what of it
// the node could not run (a revoked version it stopped).
func (a *Agent) ack(rev uint64, warning string) {
	a.revision.Set(float64(rev))
	a.mu.Lock()
	a.status.Revision, a.status.Applied, a.status.Error, a.status.Source = rev, true, warning, "control"
	a.mu.Unlock()
}

func (a *Agent) nack(rev uint64, err error) {
	a.o.Logger.Warn("desired state refused; serving the previous one", "revision", rev, "err", err)
	a.applies.WithLabelValues("nack").Inc()
	a.mu.Lock()
	a.status.Revision, a.status.Applied, a.status.Error = rev, false, err.Error()
	a.mu.Unlock()
}

// apply fetches and verifies every module the releases name, then swaps
// them in at once: all or nothing. A revoked version is refused, unless the
// node runs it already: that one is stopped (the slot falls back to the
// config file's version, a canary is dropped) and the warning says so.
func (a *Agent) apply(ctx context.Context, releases map[string]manifest.Release, stores *controlplane.Stores) (warning string, err error) {
	a.compiling.Lock()
	defer a.compiling.Unlock()
	a.mu.Lock()
	revoked := a.revoked
	a.mu.Unlock()
	running := a.running()
	var stopped []string
	stop := func(key string, art *manifest.Artifact) bool {
		r, ok := revoked[art.Digest]
		if ok && running[art.Digest] {
			stopped = append(stopped, fmt.Sprintf("%s: %s@%s revoked (%s)", key, art.Name, art.Version, r.Reason))
		}
		return ok && running[art.Digest]
	}
	rel := make(map[string]*edge.Release, len(releases))
	for key, r := range releases {
		er := &edge.Release{Config: r.Config}
		if r.Artifact.Digest != "" {
			if stop(key, &r.Artifact) {
				er = &edge.Release{}
			} else {
				bin, err := a.module(ctx, &r.Artifact, stores)
				if err != nil {
					return "", fmt.Errorf("fleet: %s: %w", key, err)
				}
				er.Version, er.Binary = r.Artifact.Version, bin
			}
		}
		if c := r.Canary; c != nil && !stop(key+" canary", &c.Artifact) {
			bin, err := a.module(ctx, &c.Artifact, stores)
			if err != nil {
				return "", fmt.Errorf("fleet: %s canary: %w", key, err)
			}
			er.Canary = &edge.Release{Version: c.Artifact.Version, Binary: bin, Config: c.Config}
			er.Share = c.Share
		}
		rel[key] = er
	}
	if len(stopped) > 0 {
		slices.Sort(stopped)
		warning = "stopped: " + strings.Join(stopped, "; ")
	}
	return warning, a.node.SetReleases(ctx, rel)
}

// module returns the verified bytes of an artifact: from the local copy
// if there is one, else from the control plane (then kept locally). stores
// is nil when restoring from disk.
func (a *Agent) module(ctx context.Context, art *manifest.Artifact, stores *controlplane.Stores) ([]byte, error) {
	a.mu.Lock()
	revoked := a.revoked
	a.mu.Unlock()
	// Refuse what no bytes could fix before touching the disk: the digest
	// names the local file, and an unsigned record (a prefetch takes any
	// the artifacts bucket holds) could otherwise point the read anywhere.
	if err := manifest.CheckDigest(art.Digest); err != nil {
		return nil, fmt.Errorf("%s@%s: %w", art.Name, art.Version, err)
	}
	if err := a.o.Trust.Verify(art, nil, revoked); err != nil {
		return nil, err
	}
	path := a.modulePath(art.Digest)
	// A local copy passes the checks a fetched one does; one whose bytes
	// are not the signed ones is fetched again.
	if bin, err := readLimited(path, a.o.MaxModule); err == nil {
		if manifest.Digest(bin) == art.Digest {
			return bin, nil
		}
	}
	if stores == nil {
		return nil, fmt.Errorf("module %s not on disk", art.Digest)
	}
	bin, err := stores.Fetch(ctx, a.o.Trust, art, revoked, a.o.MaxModule)
	if err != nil {
		return nil, err
	}
	if a.o.Dir != "" {
		if err := writeFile(path, bin); err != nil {
			a.o.Logger.Warn("module not kept on disk", "digest", art.Digest, "err", err)
		}
	}
	return bin, nil
}

// readLimited reads the file at path, refusing one over limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	if path == "" {
		return nil, os.ErrNotExist
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bin, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(bin)) > limit {
		err = fmt.Errorf("%s: over the %d byte limit", path, limit)
	}
	return bin, err
}

func (a *Agent) modulePath(digest string) string {
	if a.o.Dir == "" {
		return ""
	}
	return filepath.Join(a.o.Dir, "modules", digest+".wasm")
}

// prefetch fetches, verifies and compiles newly pushed versions of the
// plugins the node runs, one at a time, so that a rollout reaching this POP
// later only has to load them: publish to applied in well under the
// seconds a compile of a Go plugin takes.
func (a *Agent) prefetch(ctx context.Context, pushed <-chan manifest.Artifact, stores *controlplane.Stores) {
	for {
		select {
		case <-ctx.Done():
			return
		case art := <-pushed:
			if !a.runs(art.Name) || ctx.Err() != nil {
				continue // the next round returns if ctx ended
			}
			start := time.Now()
			a.compiling.Lock()
			bin, err := a.module(ctx, &art, stores)
			if err == nil {
				err = a.node.Precompile(ctx, bin)
			}
			a.compiling.Unlock()
			if err != nil {
				a.o.Logger.Warn("pushed version not prefetched", "plugin", art.Name, "version", art.Version, "err", err)
				continue
			}
			a.o.Logger.Info("pushed version prefetched", "plugin", art.Name, "version", art.Version, "took", time.Since(start))
		}
	}
}

// runs reports whether any route of the node runs the plugin.
func (a *Agent) runs(plugin string) bool {
	for key := range a.node.Running() {
		if key == plugin || strings.HasSuffix(key, "/"+plugin) {
			return true
		}
	}
	return false
}

// reportEvery writes the POP's status every Report interval and at once
// after each apply. A failed write only means the control plane is away;
// the next one tries again.
func (a *Agent) reportEvery(ctx context.Context, kv jetstream.KeyValue, applied <-chan struct{}) {
	tick := time.NewTicker(a.o.Report)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-applied:
		}
		b, err := json.Marshal(a.Status())
		if err != nil {
			continue
		}
		if _, err := kv.Put(ctx, manifest.POPKey(a.o.POP), b); err != nil {
			a.o.Logger.Debug("status not reported", "err", err)
		}
	}
}

// Restore applies the last-known-good state from disk, verifying every
// module again (the trust store may have changed since). Call it before the
// node serves, so a restarted POP never serves older plugins than it did.
// Only a disk that cannot be read is an error; a state that no longer
// verifies is logged and the node keeps the config file's plugins.
func (a *Agent) Restore(ctx context.Context) error {
	if a.o.Dir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(a.o.Dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		a.o.Logger.Error("last-known-good state unreadable; serving the config file's plugins", "err", err)
		return nil
	}
	a.mu.Lock()
	if st.Revoked != nil {
		a.revoked = st.Revoked
	}
	a.mu.Unlock()
	// The same checks as anything from the control plane.
	d, _ := json.Marshal(manifest.Desired{Plugins: st.Releases})
	if _, err = manifest.ParseDesired(d); err == nil {
		_, err = a.apply(ctx, st.Releases, nil)
	}
	if err != nil {
		a.o.Logger.Error("last-known-good state refused; serving the config file's plugins", "err", err)
		return nil
	}
	applied, _ := json.Marshal(st.Releases)
	a.applied = string(applied)
	a.applies.WithLabelValues("disk").Inc()
	a.revision.Set(float64(st.Revision))
	a.mu.Lock()
	a.status.Revision, a.status.Source = st.Revision, "disk"
	a.mu.Unlock()
	a.o.Logger.Info("serving the last-known-good state from disk", "revision", st.Revision, "plugins", len(st.Releases))
	return nil
}

// save writes the state, then removes module files it does not name that
// are older than an hour (younger ones may be prefetched for a rollout).
func (a *Agent) save(st state) error {
	if a.o.Dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(a.o.Dir, "state.json"), b); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, r := range st.Releases {
		keep[r.Artifact.Digest+".wasm"] = true
		if r.Canary != nil {
			keep[r.Canary.Artifact.Digest+".wasm"] = true
		}
	}
	files, _ := os.ReadDir(filepath.Join(a.o.Dir, "modules"))
	for _, f := range files {
		if info, err := f.Info(); err == nil && !keep[f.Name()] && time.Since(info.ModTime()) > time.Hour {
			os.Remove(filepath.Join(a.o.Dir, "modules", f.Name()))
		}
	}
	return nil
}

// writeFile replaces path atomically, so a crash leaves the old state or
// the new, never half of one.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
