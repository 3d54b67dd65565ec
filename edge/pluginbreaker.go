// The plugin breaker: a route stops calling a plugin version that keeps
// running out of its CPU budget, for a while, and answers its requests as
// the failure would have.
//
// # Why
//
// A call that runs away is stopped only once it has used its whole budget
// (between one and one and a quarter of it: wasm/instance.go), and its
// instance, milliseconds of CPU to replace, goes with it. A version that
// loops on every request of one route turned each of them into a budget of
// CPU burnt for a 503 (or a skipped step): the node fell behind, and its
// overload controller (overload.go) shed requests at random on every
// route, those that never run the plugin included, while the version went
// on being called. Answering those requests without the call costs
// nothing, and the answer is the one the failure gave.

package edge

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// Breaker states, as wedge_edge_plugin_breaker_state has them (the origin
// breaker's encoding).
const (
	breakerClosed uint32 = iota
	breakerHalfOpen
	breakerOpen
)

// Defaults of PluginBreakerConfig.
const (
	defaultBreakerFailures = 5
	defaultBreakerWindow   = 10 * time.Second
	defaultBreakerOpenFor  = 5 * time.Second
	// maxBreakerFailures bounds failures: the breaker keeps that many
	// trap times.
	maxBreakerFailures = 1000
)

// errBreakerOpen is the failure of a call the breaker skipped: the chain
// marks the step failed for the version's health, so the rollout gates
// and the status page see every request it answered so, and logs nothing,
// the opening having been logged once.
var errBreakerOpen = errors.New("edge: plugin not called: its breaker is open (it kept running out of its deadline)")

// pluginBreaker is the breaker of one phase of a plugin version on one
// route. Closed, it costs a call one atomic load, and a call that ends
// within its budget one atomic add. Failures calls stopped at their
// deadline (wasm.KindTimeout; other failures do not burn a budget) within
// Window, at least half the calls that ran and ended since the oldest of
// them (a call that got no instance, wasm.KindBusy, never ran: it counts
// for neither), open it: for OpenFor the route's calls of that phase of
// the version are not made (skip). Then it is half-open, a call coming or
// not (wake): one call goes through, a probe; the probe ending within its
// budget closes it, and a probe stopped at its deadline opens it again. A
// probe still out after OpenFor (its deadline is longer, or it waited for
// an instance) is replaced; each probe holds a ticket, and a stale one's
// end (its replacement went out, or the breaker moved on) counts for
// nothing.
type pluginBreaker struct {
	state     atomic.Uint32
	openUntil atomic.Int64 // while open, the clock reading at which it turns half-open

	failures        int
	window, openFor int64
	now             func() int64 // a monotonic clock in ns; a fake one in tests

	// oks counts the calls that ran and ended within their budget: the
	// timeouts open it only where they are at least half the calls (one
	// atomic add a call). A version at a thousand requests a second
	// whose calls run out of their deadline once in thousands (a pause, a
	// neighbour's stall) would otherwise meet Failures within Window, and
	// every request of OpenFor would get the failure answer, counted as
	// the version's failures: a few timeouts turned into thousands.
	oks atomic.Uint64

	mu      sync.Mutex
	traps   []int64  // ring of the last failures trap times; 0: none yet
	okAt    []uint64 // oks at each trap of the ring
	next    int      // the ring's oldest entry, where the next goes
	probeAt int64    // half-open: when the probe went through; 0: none out
	gone    bool     // let go (letGo): its state no longer shows in its series
	// wakeAt turns it half-open once OpenFor is over (wake), a request
	// coming or not; nil until it first opens.
	wakeAt *time.Timer

	route, plugin, phase string
	m                    breakerSeries
	log                  *slog.Logger
}

// breakerSeries are a breaker's metric series, resolved at load.
type breakerSeries struct {
	state   *stateSeries
	skipped prometheus.Counter
	opens   prometheus.Counter
}

// noState is no breaker state: what a breaker joining a stateSeries comes
// from, and one let go goes to.
const noState = ^uint32(0)

// stateSeries is a wedge_edge_plugin_breaker_state series, with the
// states of the live breakers that share it, and shows the worst of them.
// Its labels (route, plugin, version, phase) name neither the breaker's
// config nor the plugin's: a config-only canary's breaker shares the
// stable one's series, and so does one made by a reload that changes the
// route's breaker config, or fails, beside the running one. Set by each
// breaker as it moved, the series was cleared by a new closed breaker
// while the running one was open and skipped every call, and
// WedgePluginBreakerOpen resolved.
type stateSeries struct {
	g     prometheus.Gauge
	users int // the breakers that resolved it; metrics.brkMu guards it

	mu sync.Mutex
	in [3]int // live breakers in each state
}

func newStateSeries(g prometheus.Gauge) *stateSeries { return &stateSeries{g: g} }

// move moves one of its breakers from state from to state to (noState:
// joining, or let go) and shows the worst state of its live breakers.
func (s *stateSeries) move(from, to uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from != noState {
		s.in[from]--
	}
	if to != noState {
		s.in[to]++
	}
	worst := breakerClosed
	for st, n := range s.in {
		if n > 0 {
			worst = uint32(st)
		}
	}
	s.g.Set(float64(worst))
}

// monoEpoch anchors monoNow, the breakers' clock.
var monoEpoch = time.Now()

// monoNow is the monotonic clock in ns since monoEpoch, never 0 (0 marks
// an empty trap slot).
func monoNow() int64 { return int64(time.Since(monoEpoch)) + 1 }

func newPluginBreaker(cfg PluginBreakerConfig, route, plugin, phase string, m breakerSeries, log *slog.Logger, now func() int64) *pluginBreaker {
	cfg = cfg.withDefaults()
	b := &pluginBreaker{failures: cfg.Failures, window: int64(cfg.Window), openFor: int64(cfg.OpenFor), now: now,
		traps: make([]int64, cfg.Failures), okAt: make([]uint64, cfg.Failures), route: route, plugin: plugin, phase: phase, m: m, log: log}
	m.state.move(noState, breakerClosed)
	return b
}

// allow says whether a call of the plugin may go through now, and, for
// the half-open probe, its ticket (its probeAt; 0: not a probe); a call
// that goes through is reported to done with it. A call it refuses is
// counted as skipped.
func (b *pluginBreaker) allow() (call bool, probe int64) {
	if b.state.Load() == breakerClosed {
		return true, 0
	}
	now := b.now()
	if b.state.Load() == breakerOpen && now < b.openUntil.Load() {
		b.m.skipped.Inc()
		return false, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state.Load() {
	case breakerClosed: // closed by a probe meanwhile
		return true, 0
	case breakerOpen:
		if now < b.openUntil.Load() { // opened again meanwhile
			b.m.skipped.Inc()
			return false, 0
		}
		b.halfOpen()
	}
	if b.probeAt == 0 || now-b.probeAt >= b.openFor {
		if now == b.probeAt {
			now++ // a ticket of its own
		}
		b.probeAt = now
		return true, now
	}
	b.m.skipped.Inc()
	return false, 0
}

// done reports how a call allow let through ended, with the probe's
// ticket allow gave it (0 for a call that was no probe).
func (b *pluginBreaker) done(ticket int64, err error) {
	ce, ok := err.(*wasm.CallError) // what Module returns, unwrapped: no allocation
	overtime := ok && ce.Kind == wasm.KindTimeout
	busy := ok && ce.Kind == wasm.KindBusy
	if !overtime && ticket == 0 {
		// A call that got no instance (the version's pool held by its
		// runaway calls) never ran, and says nothing of the version:
		// counted as ending in time, the many such calls of a runaway
		// version under more requests than instances kept its timeouts
		// below half of the calls, and the breaker closed for good.
		if !busy {
			b.oks.Add(1)
		}
		return // the hot path: one count
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	probe := ticket != 0
	if probe && (b.state.Load() != breakerHalfOpen || ticket != b.probeAt) {
		// A stale probe: replaced after OpenFor, or the breaker closed or
		// opened since by its replacement. Its end says nothing the
		// breaker still waits for, and it never counts as a closed
		// breaker's timeout (one would open what needs Failures).
		return
	}
	if probe && busy {
		// The probe got no instance (the version's pool is held by its
		// calls elsewhere, another route's runaways): it never ran, and
		// says nothing of the version. The next call probes.
		b.probeAt = 0
		return
	}
	switch {
	case probe && !overtime:
		if b.state.Load() == breakerHalfOpen {
			b.probeAt = 0
			clear(b.traps)
			b.setState(breakerClosed)
			b.log.Info("plugin breaker closed: the probe ended within its deadline", "plugin", b.plugin, "route", b.route, "phase", b.phase)
		}
	case probe:
		b.open(now, "probe", 1)
	case b.state.Load() == breakerClosed:
		// A call let through while closed, ending after the breaker
		// opened, adds nothing: the opening counted what it needed.
		oks := b.oks.Load()
		b.traps[b.next], b.okAt[b.next] = now, oks
		b.next = (b.next + 1) % len(b.traps)
		// Failures timeouts within Window, and no more calls that ended
		// in time since the oldest of them than there were timeouts.
		if oldest := b.traps[b.next]; oldest != 0 && now-oldest <= b.window && oks-b.okAt[b.next] <= uint64(b.failures) {
			b.open(now, "failures", b.failures)
		}
	}
}

// open opens the breaker at now; b.mu is held.
func (b *pluginBreaker) open(now int64, rule string, traps int) {
	b.probeAt = 0
	clear(b.traps)
	b.openUntil.Store(now + b.openFor)
	b.setState(breakerOpen)
	// A timer turns it half-open once OpenFor is over: moved by a call
	// alone, on a quiet route wedge_edge_plugin_breaker_state stayed 2
	// long after OpenFor, and WedgePluginBreakerOpen fired for a breaker
	// that would let the next call probe. One let go shows nowhere, and
	// needs none.
	switch {
	case b.gone:
	case b.wakeAt == nil:
		b.wakeAt = time.AfterFunc(time.Duration(b.openFor), b.wake)
	default:
		b.wakeAt.Reset(time.Duration(b.openFor))
	}
	b.m.opens.Inc()
	b.log.Warn("plugin breaker opened: its calls keep running out of their deadline; the route's requests get its failure answer without calling it",
		"plugin", b.plugin, "route", b.route, "phase", b.phase, "rule", rule, "timeouts", traps,
		"window", time.Duration(b.window), "open_for", time.Duration(b.openFor))
}

// wake, the func of its timer, turns the open breaker half-open once
// OpenFor is over, as the next call would. One that opened again since
// waits for its new OpenFor (the timer was reset). On monoNow's clock the
// timer never fires before openUntil; on a fake one (tests) that has not
// reached it, wake leaves it to the next call, as allow would.
func (b *pluginBreaker) wake() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone || b.state.Load() != breakerOpen || b.now() < b.openUntil.Load() {
		return
	}
	b.halfOpen()
}

// halfOpen turns the open breaker half-open: the next call probes; b.mu
// is held.
func (b *pluginBreaker) halfOpen() {
	b.setState(breakerHalfOpen)
	b.log.Info("plugin breaker half-open: the next call probes", "plugin", b.plugin, "route", b.route, "phase", b.phase)
}

// setState moves the breaker to state s; b.mu is held.
func (b *pluginBreaker) setState(s uint32) {
	if was := b.state.Swap(s); !b.gone {
		b.m.state.move(was, s)
	}
}

// letGo takes the breaker's state out of its series, no step of the
// current generation using it: requests of a retiring generation may
// still reach it, but a breaker of a route that is gone, or of a config
// that is replaced, has no say in the state shown. It reports whether the
// breaker was live.
func (b *pluginBreaker) letGo() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		return false
	}
	b.gone = true
	if b.wakeAt != nil {
		b.wakeAt.Stop()
	}
	b.m.state.move(b.state.Load(), noState)
	return true
}

// breakers are a version's breakers on a route, one per phase (request,
// response): a version that runs away in one phase is probed in that one,
// and the other phase ending in time closes nothing. (With one breaker,
// the response phase of the very request whose request phase failed as
// the probe closed it again.)
type breakers [2]*pluginBreaker

// onRequest runs l's request phase through its breaker: skipped, the
// request gets what the failure policy gives a failed call, and
// errBreakerOpen.
func (bs *breakers) onRequest(l *loaded, ex host.Exchange) (abi.Action, error) {
	if l.m.Features()&abi.FeatureRequest == 0 {
		return l.m.OnRequest(ex) // nothing to call, nor to count
	}
	b := bs[0]
	call, probe := b.allow()
	if !call {
		return l.m.Fail(ex), errBreakerOpen
	}
	act, err := l.m.OnRequest(ex)
	b.done(probe, err)
	return act, err
}

// onResponse runs l's response phase through its breaker, as onRequest
// does the request's.
func (bs *breakers) onResponse(l *loaded, ex host.Exchange) error {
	if l.m.Features()&abi.FeatureResponse == 0 {
		return nil
	}
	b := bs[1]
	call, probe := b.allow()
	if !call {
		l.m.Fail(ex)
		return errBreakerOpen
	}
	err := l.m.OnResponse(ex)
	b.done(probe, err)
	return err
}

// breakerOf is the breakers of the version l of step s, one of its two.
func (s *step) breakerOf(l *loaded) *breakers {
	if l == s.canary && l != s.stable {
		return s.canaryBrk
	}
	return s.stableBrk
}

// breakerKey names a breaker of a loaded version: one per route, and per
// configuration of it, which a reload may change while the version stays.
type breakerKey struct {
	route string
	cfg   PluginBreakerConfig
}

// breaker returns l's breakers for route with cfg, made on first use. Only
// the reload path (under reloadMu, or New's) calls it.
func (n *Node) breaker(l *loaded, route string, cfg PluginBreakerConfig) *breakers {
	k := breakerKey{route, cfg}
	if bs := l.brk[k]; bs != nil {
		return bs
	}
	if l.brk == nil {
		l.brk = map[breakerKey]*breakers{}
	}
	id := wasm.PluginID(l.m.Name(), l.m.Version())
	bs := new(breakers)
	for i, phase := range breakerPhases {
		bs[i] = newPluginBreaker(cfg, route, id, phase, n.m.pluginBreaker(route, l.m.Name(), l.m.Version(), phase), n.log, monoNow)
	}
	l.brk[k] = bs
	return bs
}

// breakerPhases name the phases of breakers, as the metrics and logs do.
var breakerPhases = [2]string{"request", "response"}

// dropBreakers lets go of l's breakers and their series, l being closed.
func (n *Node) dropBreakers(l *loaded) {
	for k, bs := range l.brk {
		n.letGo(l, k.route, bs)
	}
}

// letGo lets go of bs, l's breakers on route, and of their series where
// no other breaker shares them.
func (n *Node) letGo(l *loaded, route string, bs *breakers) {
	for i, b := range bs {
		if b.letGo() {
			n.m.dropPluginBreaker(route, l.m.Name(), l.m.Version(), breakerPhases[i])
		}
	}
}

// pruneBreakers lets go of the breakers of the versions cur runs that no
// step of cur uses (a route removed or renamed, or its breaker's config
// changed, while the version stays loaded for another), and of their
// series: an open one's state would stay at 2 for a route that is gone.
// Requests of a retiring generation may still reach them, their counts
// lost with the series.
func (n *Node) pruneBreakers(cur *generation) {
	used := map[*breakers]bool{}
	for _, rt := range cur.routes {
		for _, s := range rt.chain {
			used[s.stableBrk], used[s.canaryBrk] = true, true
		}
	}
	for _, l := range cur.loaded {
		for k, bs := range l.brk {
			if used[bs] {
				continue
			}
			delete(l.brk, k)
			n.letGo(l, k.route, bs)
		}
	}
}
