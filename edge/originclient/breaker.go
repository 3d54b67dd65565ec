package originclient

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerConfig tunes a Client's circuit breaker; zero fields take
// defaults. It opens on either of two rules: Failures attempts in a row
// that say the origin cannot serve, or a FailureRatio of failed attempts,
// timeouts included, among at least MinRequests that ended in the last
// Window.
type BreakerConfig struct {
	// Failures is how many attempts in a row that say the origin cannot
	// serve open the breaker: connections refused or broken, refusals
	// with a 5xx, failure envelopes of scope wire.ScopeOrigin, responses
	// that do not authenticate or decode. Timeouts neither count towards
	// it nor break it. Default 5.
	Failures uint32
	// Window is the rolling window the failure ratio is taken over, in
	// ten buckets. An attempt counts in the bucket it started in, and
	// only while that bucket is in the window, so the window must be
	// longer than the attempts: default and minimum twice Timeout.
	Window time.Duration
	// MinRequests is how many attempts must have ended in the window
	// before the ratio can open the breaker. Default 20.
	MinRequests uint32
	// FailureRatio is the share of failed attempts in the window, of any
	// of the kinds above or timeouts, that opens the breaker. Default 0.5.
	FailureRatio float64
	// OpenFor is how long it stays open before letting probes through.
	// Default 5 s.
	OpenFor time.Duration
	// Probes is how many requests it lets through while half-open; that
	// many successes in a row close it. Default 1.
	Probes uint32
}

// breaker is one origin's circuit breaker: gobreaker's state machine and
// rolling window, told by verdict what each attempt says about the origin,
// plus the run of failures that prove the origin down, which gobreaker's
// own consecutive count (timeouts included) cannot tell apart.
type breaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	failures uint32
	minReqs  uint32
	ratio    float64
	window   time.Duration
	openFor  time.Duration
	m        *series
	log      *slog.Logger

	run      atomic.Uint32 // failures proving the origin down since the last success
	lastDown atomic.Uint32 // the class of the latest of those
	last     atomic.Uint32 // the class of the latest failure of any kind
	why      atomic.Uint32 // the reason of the latest opening, +1 (0: never opened)

	// trip is what readyToTrip found, for onStateChange: gobreaker calls
	// both under its mutex, in one afterRequest, so it needs no lock.
	trip trip
}

type trip struct {
	reason reason
	rule   string
	run    uint32
	counts gobreaker.Counts
}

// reason is why a breaker opened, an index into reasonNames: the kind of
// the failure that completed a run (or failed a probe), or error_rate.
type reason uint8

const (
	reasonConnect reason = iota
	reasonTransport
	reasonRefused
	reasonUnavailable
	reasonBadResponse
	reasonTimeout
	reasonErrorRate
	numReasons
)

var reasonNames = [numReasons]string{"connect", "transport", "refused", "unavailable", "bad_response",
	"timeout", "error_rate"}

func (cls class) reason() reason {
	switch cls {
	case clsDial:
		return reasonConnect
	case clsRefused5xx, clsOverloaded:
		return reasonRefused
	case clsOriginDown:
		return reasonUnavailable
	case clsBadResponse:
		return reasonBadResponse
	case clsTimeout:
		return reasonTimeout
	}
	return reasonTransport
}

func newBreaker(name string, cfg BreakerConfig, timeout time.Duration, m *series, log *slog.Logger) *breaker {
	b := &breaker{failures: cfg.Failures, minReqs: cfg.MinRequests, ratio: cfg.FailureRatio,
		window: max(cfg.Window, 2*timeout), openFor: cfg.OpenFor, m: m, log: log}
	if b.failures == 0 {
		b.failures = 5
	}
	if b.minReqs == 0 {
		b.minReqs = 20
	}
	if b.ratio <= 0 || b.ratio > 1 {
		b.ratio = 0.5
	}
	if b.openFor <= 0 {
		b.openFor = 5 * time.Second
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	probes := cfg.Probes
	if probes == 0 {
		probes = 1
	}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          name,
		MaxRequests:   probes,
		Interval:      b.window,
		BucketPeriod:  b.window / 10,
		Timeout:       b.openFor,
		ReadyToTrip:   b.readyToTrip,
		IsExcluded:    func(err error) bool { return err == errExcluded },
		OnStateChange: b.onStateChange,
	})
	return b
}

// Verdicts for gobreaker: nil counts as a success, errExcluded as nothing,
// the others as failures.
var (
	errExcluded = errors.New("originclient: excluded from breaker counts")
	errDown     = errors.New("originclient: origin cannot serve")
	errTimedOut = errors.New("originclient: origin did not answer in time")
)

// verdict tells the breaker what an attempt says about the origin, and
// keeps the run of failures that prove it down.
func (b *breaker) verdict(cls class) error {
	switch cls {
	case clsOK, clsRefused, clsOriginError:
		// The origin answered: with its application's response, with a
		// failure confined to this request, or with a 4xx that says it is
		// up and this edge is misconfigured.
		if b.run.Load() != 0 {
			b.run.Store(0)
		}
		return nil
	case clsBadRequest, clsStale, clsTooLarge, clsPoolFull, clsCancelled:
		// Nothing was asked of the origin (or its pool was full with
		// requests it is working on), the client gave up on an exchange
		// in progress, a pooled connection it closed
		// while idle was found (routine: its idle timeout, a restart), or
		// one response was larger than this edge takes.
		return errExcluded
	case clsTimeout:
		// No answer in time: a stalled link or origin, or one slow URL
		// whose origin-made 504 came too late. Only the ratio weighs it.
		b.last.Store(uint32(cls))
		return errTimedOut
	}
	b.last.Store(uint32(cls))
	b.lastDown.Store(uint32(cls))
	b.run.Add(1)
	return errDown
}

// readyToTrip runs on every failure while closed.
func (b *breaker) readyToTrip(n gobreaker.Counts) bool {
	run := b.run.Load()
	if run >= b.failures {
		b.trip = trip{reason: class(b.lastDown.Load()).reason(), rule: "consecutive", run: run, counts: n}
		return true
	}
	ended := n.TotalSuccesses + n.TotalFailures
	if ended >= b.minReqs && float64(n.TotalFailures) >= b.ratio*float64(ended) {
		b.trip = trip{reason: reasonErrorRate, rule: "error_rate", run: run, counts: n}
		return true
	}
	return false
}

func (b *breaker) onStateChange(name string, from, to gobreaker.State) {
	// A run belongs to the state it was counted in.
	b.run.Store(0)
	// gobreaker's states are 0 closed, 1 half-open, 2 open: the gauge's
	// encoding.
	if i := int(to); i >= 0 && i < len(stateNames) {
		b.m.state.Set(float64(i))
		b.m.transitions[i].Inc()
	}
	switch to {
	case gobreaker.StateOpen:
		t := b.trip
		b.trip = trip{}
		if from == gobreaker.StateHalfOpen {
			t = trip{reason: class(b.last.Load()).reason(), rule: "probe"}
		}
		b.why.Store(uint32(t.reason) + 1)
		b.m.opens[t.reason].Inc()
		b.log.Warn("originclient: circuit opened", "origin", name, "reason", reasonNames[t.reason], "rule", t.rule,
			"run", t.run, "failures", t.counts.TotalFailures, "successes", t.counts.TotalSuccesses,
			"window", b.window, "open_for", b.openFor)
		// gobreaker moves to half-open only when asked: without a request
		// after open_for, the gauge (and the alert on it) said open for
		// good. Asking once open_for is over moves it, and a request
		// then probes. Under gobreaker's lock here, so not at once.
		time.AfterFunc(b.openFor, func() { b.cb.State() })
	case gobreaker.StateHalfOpen:
		b.log.Info("originclient: circuit half-open, probing", "origin", name)
	case gobreaker.StateClosed:
		b.log.Info("originclient: circuit closed", "origin", name)
	}
}

// tripReason is why the breaker last opened, or "" if it never did.
func (b *breaker) tripReason() string {
	if w := b.why.Load(); w > 0 {
		return reasonNames[w-1]
	}
	return ""
}
