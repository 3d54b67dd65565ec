// Package limitsync shares rate limits of region and global scope across
// POPs: each POP publishes what it spent from shared keys in batches over
// NATS and charges what other POPs published to the same keys in its own
// limiter (host.Shared), whose GCRA alone decides each request.
//
// A POP publishes every Interval (200 ms by default) one batch per scope
// it spent from, on wedge.ratelimit.global.<pop> or
// wedge.ratelimit.region.<region>.<pop> (manifest.SubjectRateLimit), and a
// heartbeat (an empty batch) at least every second, so its peers know it
// is there. It subscribes to its region's subjects and the global ones.
// The POP's name ends the subject because a POP's credential may publish
// only there (deploy/controlplane/auth): a batch whose body names another
// POP than its subject is refused, so no POP spends or heartbeats in
// another's name.
// A key's allowance is then the scope's, less what every POP spent as far
// as their batches have arrived: a POP learns of its peers' usage within
// Interval plus the link's latency, and the scope can admit more than its
// limit by what the other POPs admitted in that time: with N POPs, up to
// (N-1) x (burst + Interval x the key's rate), each of the others spending
// its burst and its rate unseen. Batches are core NATS publishes, at most
// once: one lost (a reconnect, a slow consumer) is usage the others never
// see, and adds to that.
//
// When the link to the control plane is down, or every peer of a scope has
// been silent for peerTTL while the link looks up (a partition the link's
// pings have not seen yet), each POP enforces the share limit/n of the
// scope's keys, n being the POPs of the scope it heard from in the last
// rememberTTL, itself included (host.Shared.SetShare): a cut-off region or
// global limit degrades to a per-POP limit, never to none. n is fixed when
// the cut is seen. The whole limit comes back with the link and the peers'
// batches, or once peers silent on a live link are a rememberTTL gone (the
// scope shrank). The agent dials with PingInterval so that a link that
// drops silently is seen as down within a few seconds.
//
// # Why core NATS subjects, not JetStream counters
//
// JetStream's distributed counters (nats-server 2.12+, allow_msg_counter)
// keep one total per subject: every increment is a stored, acknowledged
// stream write, a POP reads others' totals with a get per key, and a total
// only grows, where a GCRA needs the usage of the last period. A rate key
// is short-lived (one client, one period) and there may be a million of
// them: a subject and a stored message each would cost the control plane
// more than the requests they count. Usage is also worthless once a period
// old, so there is nothing to store or replay: a POP that was away starts
// from its own counts and its share. Plain publishes cost one message per
// scope per interval per POP whatever the request rate, and the decision
// stays local, so a request never waits on NATS.
package limitsync

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/wasm/host"
)

// DefaultInterval is how often a POP publishes its usage.
const DefaultInterval = 200 * time.Millisecond

// heartbeat is how often a POP with nothing to publish says it is there.
const heartbeat = time.Second

// peerTTL is how long a POP counts a peer it has not heard from as part of
// its scope.
const peerTTL = 5 * time.Second

// rememberTTL is how long a POP counts a silent peer when it takes up its
// share: far longer than peerTTL, so that the peers lost before the cut
// was seen still count.
const rememberTTL = time.Minute

// PingInterval is how often a POP should check its link to the control
// plane (nats.PingInterval): nats.go's default of 2 minutes would leave a
// dropped link unseen that long.
const PingInterval = 2 * time.Second

// maxPeers bounds the POPs remembered per scope, against a publisher
// inventing names.
const maxPeers = 4096

// Options configure an exchange.
type Options struct {
	Conn     *nats.Conn // stays the caller's to close
	Limits   *host.Shared
	Region   string
	POP      string
	Logger   *slog.Logger
	Interval time.Duration // DefaultInterval when 0
	// Registerer, when set, gets wedge_ratelimit_peers and
	// wedge_ratelimit_share by scope, and wedge_ratelimit_dropped_total,
	// for as long as the exchange runs.
	Registerer prometheus.Registerer
}

// Sync is a running exchange.
type Sync struct {
	o        Options
	subjects [3]string // this POP's, by host.Scope; POP has none
	prefixes [3]string // every POP's subject less its name, by host.Scope
	subs     []*nats.Subscription
	metrics  []prometheus.Collector
	stop     chan struct{}
	done     chan struct{}

	mu       sync.Mutex
	seen     [3]map[string]time.Time // peers by scope, when last heard
	lastSent [3]time.Time
	share    [3]int // by scope: 0 while shared; n while cut off
}

// Subject is the subject of pop's batches of scope sc as seen from
// region; pop "*" is every POP's, to subscribe to.
func Subject(sc host.Scope, region, pop string) string {
	if sc == host.ScopeGlobal {
		return manifest.SubjectRateLimit + ".global." + pop
	}
	return manifest.SubjectRateLimit + ".region." + region + "." + pop
}

// Start subscribes and starts publishing; Stop ends it.
func Start(o Options) (*Sync, error) {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sync{o: o, stop: make(chan struct{}), done: make(chan struct{})}
	for _, sc := range []host.Scope{host.ScopeRegion, host.ScopeGlobal} {
		s.subjects[sc], s.prefixes[sc] = Subject(sc, o.Region, o.POP), Subject(sc, o.Region, "")
		s.seen[sc] = map[string]time.Time{}
		var es []entry // one handler runs at a time per subscription
		sub, err := o.Conn.Subscribe(Subject(sc, o.Region, "*"), func(m *nats.Msg) { es = s.receive(sc, m.Subject, m.Data, es[:0]) })
		if err != nil {
			s.unsubscribe()
			return nil, fmt.Errorf("limitsync: %w", err)
		}
		s.subs = append(s.subs, sub)
		if o.Registerer != nil {
			labels := prometheus.Labels{"scope": [3]string{host.ScopeRegion: "region", host.ScopeGlobal: "global"}[sc]}
			s.metrics = append(s.metrics,
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wedge_ratelimit_peers", ConstLabels: labels,
					Help: "Other POPs of the scope heard from in the last 5 s."}, func() float64 { return float64(s.Peers(sc)) }),
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wedge_ratelimit_share", ConstLabels: labels,
					Help: "1 while the scope's limits are shared; n when cut off, enforcing limit/n."}, func() float64 { return float64(o.Limits.Share(sc)) }))
		}
	}
	if o.Registerer != nil {
		for what, name := range [...]string{host.DroppedUsage: "usage", host.DroppedCharge: "charge"} {
			s.metrics = append(s.metrics, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wedge_ratelimit_dropped_total",
				ConstLabels: prometheus.Labels{"what": name},
				Help:        "Shared keys dropped for want of room: usage not published (usage), peers' charges not taken (charge)."},
				func() float64 { return float64(o.Limits.Dropped(what)) }))
		}
	}
	for i, m := range s.metrics {
		if err := o.Registerer.Register(m); err != nil {
			s.metrics = s.metrics[:i]
			s.unsubscribe()
			return nil, fmt.Errorf("limitsync: metrics: %w", err)
		}
	}
	o.Limits.SetSyncing(true)
	go s.run()
	return s, nil
}

// Stop stops publishing and receiving; shared keys are per-POP keys again.
func (s *Sync) Stop() {
	close(s.stop)
	<-s.done
	s.unsubscribe()
	s.o.Limits.SetSyncing(false)
	for _, sc := range []host.Scope{host.ScopeRegion, host.ScopeGlobal} {
		s.o.Limits.SetShare(sc, 1)
	}
}

// unsubscribe undoes what Start did besides the loop.
func (s *Sync) unsubscribe() {
	for _, sub := range s.subs {
		sub.Unsubscribe()
	}
	for _, m := range s.metrics {
		s.o.Registerer.Unregister(m)
	}
}

// Peers is the number of other POPs of scope sc heard from in the last
// peerTTL.
func (s *Sync) Peers(sc host.Scope) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	recent, _ := s.peers(sc, time.Now())
	return recent
}

// peers counts the other POPs of sc heard from in the last peerTTL and
// rememberTTL.
func (s *Sync) peers(sc host.Scope, now time.Time) (recent, remembered int) {
	for pop, t := range s.seen[sc] {
		switch age := now.Sub(t); {
		case age > rememberTTL:
			delete(s.seen[sc], pop)
			continue
		case age <= peerTTL:
			recent++
		}
		remembered++
	}
	return recent, remembered
}

// heard notes a batch from pop.
func (s *Sync) heard(sc host.Scope, pop string, now time.Time) {
	s.mu.Lock()
	if _, ok := s.seen[sc][pop]; ok || len(s.seen[sc]) < maxPeers {
		s.seen[sc][pop] = now
	}
	s.mu.Unlock()
}

// setShares decides each scope's share (see the package doc). s.mu is held.
func (s *Sync) setShares(connected bool, now time.Time) {
	for _, sc := range []host.Scope{host.ScopeRegion, host.ScopeGlobal} {
		recent, remembered := s.peers(sc, now)
		switch cut := !connected || recent == 0 && remembered > 0; {
		case cut && s.share[sc] == 0:
			s.share[sc] = 1 + remembered
			s.o.Limits.SetShare(sc, s.share[sc])
			s.o.Logger.Warn("limitsync: cut off from the scope's POPs; enforcing this POP's share",
				"subject", s.subjects[sc], "pops", s.share[sc], "link", connected)
		case !cut && s.share[sc] != 0:
			s.share[sc] = 0
			s.o.Limits.SetShare(sc, 1)
			s.o.Logger.Info("limitsync: back in touch; enforcing whole limits", "subject", s.subjects[sc])
		}
	}
}

// receive charges a peer's batch, which came on subject; it reports a bad
// one and keeps going.
func (s *Sync) receive(sc host.Scope, subject string, data []byte, es []entry) []entry {
	pop, es, skipped, err := decodeBatch(data, sc, es)
	if err != nil {
		s.o.Logger.Warn("limitsync: batch refused", "subject", subject, "err", err)
		return es
	}
	if name, ok := strings.CutPrefix(subject, s.prefixes[sc]); !ok || name != pop {
		// The subject is the one NATS let the sender publish on.
		s.o.Logger.Warn("limitsync: batch refused: it names another POP than its subject", "subject", subject, "pop", pop)
		return es
	}
	if pop == s.o.POP {
		return es // our own, already counted
	}
	if skipped > 0 {
		s.o.Logger.Warn("limitsync: bad entries skipped", "subject", subject, "pop", pop, "skipped", skipped)
	}
	s.heard(sc, pop, time.Now())
	for _, e := range es {
		s.o.Limits.Charge(e.key, e.limit, e.period, e.units)
	}
	return es
}

func (s *Sync) run() {
	defer close(s.done)
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	var bufs [3][]byte
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		bufs = s.tick(bufs)
	}
}

// tick decides the shares and publishes the usage since the last tick, or,
// with the link down, drops it.
func (s *Sync) tick(bufs [3][]byte) [3][]byte {
	now := time.Now()
	var batches [3][][]byte
	for _, sc := range []host.Scope{host.ScopeRegion, host.ScopeGlobal} {
		bufs[sc] = appendHeader(bufs[sc][:0], s.o.POP)
	}
	head := len(bufs[host.ScopeRegion])
	s.o.Limits.Drain(func(sc host.Scope, key string, u host.Usage) {
		if len(bufs[sc])+len(key)+32 > maxBatch {
			batches[sc] = append(batches[sc], bufs[sc])
			bufs[sc] = appendHeader(nil, s.o.POP)
		}
		bufs[sc] = appendEntry(bufs[sc], key, u)
	})
	connected := s.o.Conn.IsConnected()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setShares(connected, now)
	if !connected {
		return bufs
	}
	for _, sc := range []host.Scope{host.ScopeRegion, host.ScopeGlobal} {
		batches[sc] = append(batches[sc], bufs[sc])
		if len(batches[sc]) == 1 && len(bufs[sc]) == head && now.Sub(s.lastSent[sc]) < heartbeat {
			continue
		}
		s.lastSent[sc] = now
		for _, b := range batches[sc] {
			if err := s.o.Conn.Publish(s.subjects[sc], b); err != nil {
				s.o.Logger.Warn("limitsync: publish", "subject", s.subjects[sc], "err", err)
				break
			}
		}
	}
	return bufs
}
