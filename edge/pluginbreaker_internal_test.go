package edge

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/talowa/wedge/internal/testutil"

	"github.com/talowa/wedge/wasm"
)

// fakeBreaker is a breaker on a clock the test moves, with its series.
// The clock is atomic: the breaker's timer (wake) reads it too.
type fakeBreaker struct {
	*pluginBreaker
	clock atomic.Int64
	s     breakerSeries
}

func newFakeBreaker(cfg PluginBreakerConfig) *fakeBreaker {
	return newFakeBreakerOn(cfg, breakerSeries{state: newStateSeries(prometheus.NewGauge(prometheus.GaugeOpts{Name: "s"})),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "k"}),
		opens:   prometheus.NewCounter(prometheus.CounterOpts{Name: "o"})})
}

// newFakeBreakerOn is a fake breaker on series s, which another may share.
func newFakeBreakerOn(cfg PluginBreakerConfig, s breakerSeries) *fakeBreaker {
	f := &fakeBreaker{s: s}
	f.clock.Store(1)
	f.pluginBreaker = newPluginBreaker(cfg, "r", "p@1", "request", f.s, slog.New(slog.DiscardHandler), f.clock.Load)
	return f
}

func (f *fakeBreaker) advance(d time.Duration) { f.clock.Add(int64(d)) }

var (
	errOvertime = &wasm.CallError{Plugin: "p", Version: "1", Phase: "request", Kind: wasm.KindTimeout}
	errTrapped  = &wasm.CallError{Plugin: "p", Version: "1", Phase: "request", Kind: wasm.KindTrap}
)

// call runs one call through the breaker, ending with err; it reports
// whether the call was made and whether it was the probe.
func (f *fakeBreaker) call(err error) (called, probe bool) {
	called, ticket := f.allow()
	if called {
		f.done(ticket, err)
	}
	return called, ticket != 0
}

func (f *fakeBreaker) want(t *testing.T, state uint32, opens, skipped float64) {
	t.Helper()
	if got := f.state.Load(); got != state {
		t.Fatalf("state %d, want %d", got, state)
	}
	if got := value(f.s.state.g); got != float64(state) {
		t.Fatalf("state gauge %v, want %d", got, state)
	}
	if got := value(f.s.opens); got != opens {
		t.Fatalf("opens %v, want %v", got, opens)
	}
	if got := value(f.s.skipped); got != skipped {
		t.Fatalf("skipped %v, want %v", got, skipped)
	}
}

// TestPluginBreakerStates walks the breaker through its states on a fake
// clock: Failures timeouts within Window open it, it skips calls for
// OpenFor, lets one probe through (skipping the others while it is out),
// opens again on a probe that times out and closes on one that ends in
// time.
func TestPluginBreakerStates(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 3, Window: Duration(10 * time.Second), OpenFor: Duration(5 * time.Second)})
	for range 2 {
		if called, _ := f.call(errOvertime); !called {
			t.Fatal("a call refused while closed")
		}
		f.advance(time.Second)
	}
	f.call(nil) // a success between counts for nothing: timeouts open it
	f.want(t, breakerClosed, 0, 0)
	f.call(errOvertime) // the third within 10 s
	f.want(t, breakerOpen, 1, 0)

	for range 4 {
		if called, _ := f.call(nil); called {
			t.Fatal("a call made while open")
		}
		f.advance(time.Second)
	}
	f.want(t, breakerOpen, 1, 4)
	f.advance(time.Second) // 5 s open
	called, probe := f.allow()
	if !called || probe == 0 {
		t.Fatalf("after open_for: called %v probe %v, want the probe", called, probe)
	}
	f.want(t, breakerHalfOpen, 1, 4)
	if called, _ := f.call(nil); called {
		t.Fatal("a second call let through while the probe is out")
	}
	f.done(probe, errOvertime) // the probe ran out of its deadline
	f.want(t, breakerOpen, 2, 5)
	if called, _ := f.call(nil); called {
		t.Fatal("a call made after the probe failed")
	}
	f.advance(5 * time.Second)
	if called, probe := f.call(errTrapped); !called || !probe { // a trap ended within its budget
		t.Fatalf("second probe: called %v probe %v", called, probe)
	}
	f.want(t, breakerClosed, 2, 6)

	// Closed again, it counts afresh: two timeouts do not open it.
	f.call(errOvertime)
	f.call(errOvertime)
	f.want(t, breakerClosed, 2, 6)
}

// TestPluginBreakerBelowThreshold: timeouts fewer than Failures in any
// Window, and failures of other kinds however many, never open it.
func TestPluginBreakerBelowThreshold(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 3, Window: Duration(10 * time.Second)})
	for range 100 {
		f.call(errOvertime)
		f.advance(5*time.Second + 1) // two at most in any 10 s
		for range 10 {
			f.call(errTrapped)
			f.call(errors.New("some other failure"))
			f.call(nil)
		}
	}
	f.want(t, breakerClosed, 0, 0)
	// The defaults: 5 within 10 s.
	f = newFakeBreaker(PluginBreakerConfig{})
	f.call(errOvertime)
	f.advance(9 * time.Second)
	for range 3 {
		f.call(errOvertime)
	}
	f.want(t, breakerClosed, 0, 0)
	f.advance(time.Second + 1) // the first has left the window: four in it
	f.call(errOvertime)
	f.want(t, breakerClosed, 0, 0)
	f.call(errOvertime)
	f.want(t, breakerOpen, 1, 0)
	f.advance(5*time.Second - 1)
	f.call(nil)
	f.want(t, breakerOpen, 1, 1)
}

// TestPluginBreakerLostProbe: a probe that never reports is replaced by
// another once OpenFor has passed since it went, not waited for forever.
func TestPluginBreakerLostProbe(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 1, OpenFor: Duration(time.Second)})
	f.call(errOvertime)
	f.advance(time.Second)
	if called, probe := f.allow(); !called || probe == 0 {
		t.Fatal("no probe")
	}
	f.advance(time.Second - 1)
	if called, _ := f.allow(); called {
		t.Fatal("a second probe while the first may still report")
	}
	f.advance(1)
	if called, probe := f.call(nil); !called || !probe {
		t.Fatal("the lost probe was never replaced")
	}
	f.want(t, breakerClosed, 1, 1)
}

// TestPluginBreakerAllocs: the breaker's checks allocate nothing, closed
// (every call's) or open (every skipped call's).
func TestPluginBreakerAllocs(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 1, OpenFor: Duration(time.Hour)})
	if a := testing.AllocsPerRun(1000, func() { f.call(nil) }); a != 0 {
		t.Errorf("closed: %v allocations a call, want 0", a)
	}
	f.call(errOvertime)
	if a := testing.AllocsPerRun(1000, func() { f.call(nil) }); a != 0 {
		t.Errorf("open: %v allocations a call, want 0", a)
	}
}

// value is a gauge's or a counter's value.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return testutil.Value(&m)
}

// TestPluginBreakerStaleProbeKeepsClosed: a probe replaced after OpenFor
// (its deadline is longer than open_for, or it waited for an instance)
// that ends after its replacement closed the breaker is stale: one
// timeout of it must not open a closed breaker that needs Failures.
func TestPluginBreakerStaleProbeKeepsClosed(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 5, OpenFor: Duration(time.Second)})
	for range 5 {
		f.call(errOvertime)
	}
	f.want(t, breakerOpen, 1, 0)
	f.advance(time.Second)
	c1, p1 := f.allow() // the first probe, slow
	if !c1 || p1 == 0 {
		t.Fatal("no first probe")
	}
	f.advance(time.Second)
	c2, p2 := f.allow() // its replacement
	if !c2 || p2 == 0 {
		t.Fatal("no replacement probe")
	}
	f.done(p2, nil) // the replacement ends in time: closed
	f.want(t, breakerClosed, 1, 0)
	f.done(p1, errOvertime) // the stale first probe runs out of its deadline
	if s := f.state.Load(); s != breakerClosed {
		t.Fatalf("a stale probe's single timeout moved a closed breaker to state %d (opens %v): closed needs %d timeouts in the window",
			s, value(f.s.opens), 5)
	}
}

var errBusy = &wasm.CallError{Plugin: "p", Version: "1", Phase: "request", Kind: wasm.KindBusy}

// TestPluginBreakerBusyProbeDoesNotClose: a probe that got no instance
// (KindBusy: the version's pool is held by its runaway calls on another
// route, whose breaker is still closed) never ran the plugin: it says
// nothing of whether it still runs away, and must not close the breaker.
func TestPluginBreakerBusyProbeDoesNotClose(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 1, OpenFor: Duration(time.Second)})
	f.call(errOvertime)
	f.advance(time.Second)
	if called, probe := f.call(errBusy); !called || !probe {
		t.Fatal("no probe")
	}
	if s := f.state.Load(); s == breakerClosed {
		t.Fatal("a probe that never got an instance (KindBusy) closed the breaker")
	}
	if called, probe := f.call(nil); !called || !probe {
		t.Fatal("after a busy probe the next call should probe")
	}
	f.want(t, breakerClosed, 1, 0)
}

// TestPluginBreakerSporadicTimeouts: a version at 1000 requests a second
// whose calls run out of their deadline once in 2000 (0.05%, a GC pause or
// a neighbour's stall: well within any rollout gate) opens its breaker,
// which then fails every request for open_for, counted as the version's
// failures: 5 timeouts turn into thousands of failure answers (503s where
// it fails closed) and an error rate that rolls a healthy canary back.
func TestPluginBreakerSporadicTimeouts(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{}) // the defaults: 5 in 10 s, open 5 s
	timeouts, failed := 0, 0
	for i := range 20000 { // 20 s at 1000/s
		var err error
		if i%2000 == 1999 {
			err = errOvertime
			timeouts++
		}
		if called, _ := f.call(err); !called {
			failed++
		}
		f.advance(time.Millisecond)
	}
	if failed > 0 {
		t.Fatalf("%d timeouts in 20000 calls (%.2f%%) made the breaker skip %d calls (each a failure for the gates, a 503 where fail-closed); opens %v",
			timeouts, 100*float64(timeouts)/20000, failed, value(f.s.opens))
	}
}

// TestPluginBreakerBusyIsNoCall: a call that got no instance (KindBusy:
// the version's pool held by its own runaways, with more requests than
// instances) never ran, and counts neither as a timeout nor as a call
// that ended in time. Counted as ending in time, the busy calls beside
// the timeouts of a version whose every call fails kept the timeouts
// below half of the calls, and the breaker never opened.
func TestPluginBreakerBusyIsNoCall(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 5, Window: Duration(time.Hour), OpenFor: Duration(time.Hour)})
	for range 5 {
		f.call(errBusy)
		f.call(errBusy)
		f.call(errOvertime)
		f.advance(time.Millisecond)
	}
	if got := f.state.Load(); got != breakerOpen {
		t.Fatalf("15 calls, 5 timeouts and 10 that never got an instance: state %d, want open (%d)", got, breakerOpen)
	}
	// Nor do busy calls count as timeouts: however many, alone they
	// leave a closed breaker closed.
	f = newFakeBreaker(PluginBreakerConfig{Failures: 5, Window: Duration(time.Hour)})
	for range 100 {
		f.call(errBusy)
	}
	f.want(t, breakerClosed, 0, 0)
}

// TestPluginBreakerSharedStateSeries: breakers that share a state series
// (its labels name neither config: a config-only canary's beside the
// stable one's, or one a reload made, with a new breaker config or
// failing, beside the running one) show the worst of their live states.
// A new breaker set the series to closed while the running one was open
// and skipped every call, and WedgePluginBreakerOpen resolved. A breaker
// let go has no say, whatever the requests still reaching it do.
func TestPluginBreakerSharedStateSeries(t *testing.T) {
	cfg := PluginBreakerConfig{Failures: 1, OpenFor: Duration(time.Hour)}
	running := newFakeBreaker(cfg)
	running.call(errOvertime)
	running.want(t, breakerOpen, 1, 0)
	shown := func(what string, want uint32) {
		t.Helper()
		if got := value(running.s.state.g); got != float64(want) {
			t.Fatalf("%s: the shared state series reads %v, want %d", what, got, want)
		}
	}
	failed := newFakeBreakerOn(PluginBreakerConfig{Failures: 2, OpenFor: Duration(time.Hour)}, running.s)
	shown("a new closed breaker beside the open one", breakerOpen)
	if called, _ := running.call(nil); called {
		t.Fatal("the running breaker let a call through")
	}
	failed.letGo() // the failed reload's, pruned
	shown("the new breaker let go", breakerOpen)

	canary := newFakeBreakerOn(cfg, running.s)
	shown("a canary's breaker beside the open one", breakerOpen)
	running.letGo() // its route's config changed
	shown("the open breaker let go, the canary's closed", breakerClosed)
	running.advance(time.Hour)
	if called, probe := running.call(errOvertime); !called || !probe {
		t.Fatal("no probe through the breaker let go")
	}
	shown("a breaker let go moved", breakerClosed)
	canary.call(errOvertime)
	shown("the canary's opened", breakerOpen)
	canary.advance(time.Hour)
	if called, probe := canary.allow(); !called || probe == 0 {
		t.Fatal("no canary probe")
	}
	shown("the canary's half-open", breakerHalfOpen)
}

// TestPluginBreakerHalfOpenOnItsOwn: once OpenFor is over the breaker is
// half-open, and its state series says so, with no call coming. Only a
// call moved it: on a quiet route wedge_edge_plugin_breaker_state stayed
// 2 (open) for good, and WedgePluginBreakerOpen
// (max_over_time(...[2m]) == 2) fired long after the breaker would have
// let the next call probe. It runs on the breakers' clock, whose timer it
// waits for.
func TestPluginBreakerHalfOpenOnItsOwn(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 1, OpenFor: Duration(time.Millisecond)})
	f.now = monoNow
	f.call(errOvertime)
	if o := value(f.s.opens); o != 1 {
		t.Fatalf("opens %v after a timeout with failures 1, want 1", o)
	}
	testutil.Eventually(t, 20*time.Second, "the state series half-open (1) after its 1 ms open_for, with no call", func() bool {
		return value(f.s.state.g) == float64(breakerHalfOpen)
	})
	if called, probe := f.call(nil); !called || !probe {
		t.Fatalf("the next call: called %v probe %v, want the probe", called, probe)
	}
	f.want(t, breakerClosed, 1, 0)
}

// TestPluginBreakerLetGoStopsItsTimer: an open breaker let go (its route
// gone, its config replaced) has no timer left to turn it half-open.
func TestPluginBreakerLetGoStopsItsTimer(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 1, OpenFor: Duration(time.Hour)})
	f.call(errOvertime)
	f.letGo()
	if f.wakeAt.Stop() {
		t.Fatal("the timer of an open breaker let go was still running")
	}
}
