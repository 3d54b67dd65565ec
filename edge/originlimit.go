// Origin limit: an adaptive concurrency limit per origin, on its latency.

package edge

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/wasm/host"
)

// The node's own overload protection (overload.go) follows its CPU and
// scheduling delay: a node whose origin is past its capacity is not busy
// at all, its requests wait on the origin, and they go on waiting, each
// longer than the last, until the origin's timeout. An origin with a
// latency_target gets a concurrency limit of its own, moved as Envoy's
// adaptive concurrency filter moves one: every originWindow, the mean
// latency of the exchanges that finished in it (answered, or failed
// after the target or longer: see release) against the target. Over
// it, the limit shrinks to target/latency of what was in flight (at most
// by half, smoothed); under it, it grows by its square root while in use.
// An exchange past the limit is not sent: the client gets 503 with
// Retry-After at once, the origin never hears of it, and cache hits and
// other origins' requests go on being served. A fixed target rather than
// Envoy's measured minimum latency: Envoy measures it by holding the
// limit at a few requests for a while, which sheds at any load, and a
// minimum measured under a long overload drifts up with it.
//
// The regional tier's fetches (tier_collapse.go) are limited as well, at
// the POP that fetches the key for its region: an ask it refuses is
// answered 503 for the asker to pass on, not fetched again by the asker
// from an origin this POP found behind. Requests whose time is not the
// origin's to choose are neither limited nor measured: a route with a
// timeout of its own (socket.io's long polls wait up to 25 s on purpose)
// and a request body that streams (an upload goes at the client's pace).

// originWindow is how often an origin's limit moves: long enough to hold
// a few exchanges at the latencies a target is set for.
const originWindow = 50 * time.Millisecond

// errOriginBusy is the exchange's failure when the limit refused it.
var errOriginBusy = errors.New("edge: origin at its concurrency limit")

// originBusy is what a request past an origin's limit is answered.
var originBusy = []byte("503 Service Unavailable: origin at its concurrency limit, retry shortly\n")

// originLimit is one origin's limit (see above); nil when the origin has
// no latency_target or overload protection is off.
type originLimit struct {
	inflight atomic.Int64
	limit    atomic.Int64
	sum, n   atomic.Int64 // the window's exchanges: nanoseconds, count
	refused  atomic.Uint64
	next     atomic.Int64 // sinceStart of the next update

	mu      sync.Mutex // the update's, one at a time (TryLock)
	g       gradient
	seen    uint64 // refused at the last update
	shed    prometheus.Counter
	gLimit  prometheus.Gauge
	gLatent prometheus.Gauge
}

func newOriginLimit(name string, target time.Duration, cfg *OverloadConfig, m *metrics) *originLimit {
	if target <= 0 || cfg.Off {
		return nil
	}
	l := &originLimit{g: gradient{min: float64(cfg.MinLimit), max: float64(cfg.MaxLimit),
		limit: float64(cfg.InitialLimit), target: target},
		shed: m.shed.WithLabelValues("origin"), gLimit: m.originLimit.WithLabelValues(name),
		gLatent: m.originLatency.WithLabelValues(name)}
	l.limit.Store(int64(cfg.InitialLimit))
	l.gLimit.Set(float64(cfg.InitialLimit))
	return l
}

// keepOriginLimit is the origin's limit in a new generation: was, the
// last generation's for the same address (nil for another), where it
// limits the same way, so that a reload in the middle of an overload
// neither forgets what the origin takes (back to initial_limit, a flood
// for an origin already behind) nor loses count of the exchanges the last
// generation still has in flight.
func keepOriginLimit(was *originLimit, name string, target time.Duration, cfg *OverloadConfig, m *metrics) *originLimit {
	if was != nil && !cfg.Off && was.g.target == target &&
		was.g.min == float64(cfg.MinLimit) && was.g.max == float64(cfg.MaxLimit) {
		return was
	}
	return newOriginLimit(name, target, cfg, m)
}

// acquire takes a place for one exchange, or reports false: the caller
// answers originBusyResponse. A nil limit admits everything.
func (l *originLimit) acquire() bool {
	if l == nil {
		return true
	}
	if l.inflight.Add(1) <= l.limit.Load() {
		return true
	}
	l.inflight.Add(-1)
	l.refused.Add(1)
	l.shed.Inc()
	return false
}

// originBusyResponse makes resp the answer to a request an origin's limit
// refused.
func originBusyResponse(resp *host.Response) {
	// A copy: the response phase may write over a body in place.
	*resp = host.Response{Status: 503, Header: host.Header{Fields: resp.Header.Fields[:0]},
		Body: append([]byte(nil), originBusy...)}
	resp.Header.Add("Retry-After", "1")
	resp.Header.Add("Content-Type", "text/plain; charset=utf-8")
}

// release gives the place back with the exchange's latency d and its
// failure err, and moves the limit when a window is over. A failure is a
// measure of the origin's latency only when it took the target or longer
// (a timeout, a connection reset after a long wait): one that came at
// once (a refused connection, an open breaker, a malformed answer) took
// none of the origin's time, and counted, an origin failing fast under
// its load looked fast, and its limit grew.
func (l *originLimit) release(d time.Duration, err error) {
	if l == nil {
		return
	}
	l.inflight.Add(-1)
	if err == nil || d >= l.g.target {
		l.sum.Add(int64(d))
		l.n.Add(1)
	}
	if now := sinceStart(); now >= l.next.Load() && l.mu.TryLock() {
		l.update(now)
		l.mu.Unlock()
	}
}

// update moves the limit on the window's mean latency; under mu.
func (l *originLimit) update(now int64) {
	l.next.Store(now + int64(originWindow))
	sum, n := l.sum.Swap(0), l.n.Swap(0)
	if n == 0 {
		return
	}
	mean := time.Duration(sum / n)
	refused := l.refused.Load()
	shed := refused != l.seen
	l.seen = refused
	load := l.inflight.Load()
	if mean > l.g.target {
		// A limit above what is in flight bounds nothing: shrink from
		// what the origin is actually given.
		l.g.limit = min(l.g.limit, max(l.g.min, float64(load)))
	}
	lim := l.g.update(mean, load, shed)
	l.limit.Store(int64(lim))
	l.gLimit.Set(lim)
	l.gLatent.Set(mean.Seconds())
}
