package edge

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's own series (namespace wedge_edge); plugins and the
// origin client add theirs to the same registry.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	unrouted prometheus.Counter
	refused  *prometheus.CounterVec
	reloads  *prometheus.CounterVec

	writeRefused prometheus.Counter
	storeDropped prometheus.Counter     // stream.go
	shed         *prometheus.CounterVec // overload.go

	originLimit, originLatency *prometheus.GaugeVec // originlimit.go

	accessLogDropped prometheus.Counter // accesslog.go

	proxyRefused *prometheus.CounterVec // proxyproto.go

	// pluginbreaker.go: by route, plugin, version and phase. A config-only
	// canary runs a version twice on a route, and a reload makes a
	// route's breaker of a new config beside the running one, so a series
	// may have two breakers: brkUsers has their state series, which counts
	// them, and the last to go deletes the series.
	brkState             *prometheus.GaugeVec
	brkSkipped, brkOpens *prometheus.CounterVec
	brkMu                sync.Mutex
	brkUsers             map[[4]string]*stateSeries
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns = "wedge_edge"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
			Help: "Requests answered, by route and status."}, []string{"route", "code"}),
		// .2 is the latency SLO's bound (deploy/monitoring/alerts.yml): its
		// burn rate counts the requests above it exactly, not interpolated.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time from a routed request's arrival to its response being handed to the server, by route.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .2, .25, .5, 1, 2.5, 10}},
			[]string{"route"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "unrouted_total",
			Help: "Requests no route matched (answered 404)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "refused_total",
			Help: "Requests refused before routing (malformed, too large, too slow), by status."}, []string{"code"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reloads_total",
			Help: "Config reloads by result."}, []string{"result"}),
		writeRefused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "write_refused_total",
			Help: "Responses refused (503) because the bodies held for slow clients were at max_write_bytes."}),
		storeDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "stream_stores_dropped_total",
			Help: "Streamed responses the cache took (Cache-Status said stored) but never got: the body passed 16 MiB with no length given beforehand, or max_write_bytes had no room for it."}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "shed_total",
			Help: "Requests shed (503) by overload protection, by reason: in_flight (requests in the handler at the concurrency limit), cpu (the CPU behind: shed at random, wedge_edge_shed_ratio) origin (an origin at its concurrency limit, wedge_edge_origin_concurrency_limit) origin_pool (every connection of an origin's max_conns busy) or read_bytes (request bodies being read whole at max_read_bytes)."},
			[]string{"reason"}),
		originLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "origin_concurrency_limit",
			Help: "An origin's adaptive concurrency limit (origins with a latency_target only)."}, []string{"origin"}),
		originLatency: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "origin_latency_seconds",
			Help: "An origin's mean latency over the last window its limit moved on (origins with a latency_target only)."}, []string{"origin"}),
		accessLogDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "access_log_dropped_total",
			Help: "Access log lines dropped: the buffer waiting for the disk was full, or a write failed."}),
		proxyRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "proxy_protocol_refused_total",
			Help: "Connections closed for their PROXY protocol header (proxy_protocol), by reason: missing (a trusted peer sent none), malformed, unsupported (not TCP), timeout (not finished within read_timeout) or untrusted (sent by an address not trusted)."},
			[]string{"reason"}),
		brkState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "plugin_breaker_state",
			Help: "A plugin version's breaker on a route, per phase (0 closed, 1 half-open, 2 open): open, the route's requests get the plugin's failure answer without that phase being called, after it kept running out of its deadline. Where two breakers share the labels (a config-only canary's beside the stable one's), the worse state."},
			[]string{"route", "plugin", "version", "phase"}),
		brkSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "plugin_breaker_skipped_total",
			Help: "Plugin calls not made because the version's breaker on the route was open (each got the plugin's failure answer)."},
			[]string{"route", "plugin", "version", "phase"}),
		brkOpens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "plugin_breaker_opens_total",
			Help: "Times a plugin version's breaker on a route opened: its calls ran out of their deadline breaker.failures times within breaker.window, or a half-open probe did."},
			[]string{"route", "plugin", "version", "phase"}),
		brkUsers: map[[4]string]*stateSeries{},
	}
	reg.MustRegister(m.requests, m.duration, m.unrouted, m.refused, m.reloads, m.writeRefused, m.storeDropped, m.shed,
		m.originLimit, m.originLatency, m.accessLogDropped, m.proxyRefused,
		m.brkState, m.brkSkipped, m.brkOpens)
	return m
}

// routeMetrics are a route's series, resolved once per route so that a
// request costs a few atomic adds.
type routeMetrics struct {
	codes    [6]prometheus.Counter // by status class; 0 = other
	duration prometheus.Observer
}

func (m *metrics) route(name string) routeMetrics {
	r := routeMetrics{duration: m.duration.WithLabelValues(name)}
	for i, c := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		r.codes[i] = m.requests.WithLabelValues(name, c)
	}
	return r
}

func (r routeMetrics) observe(status int, d time.Duration) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	r.codes[c].Inc()
	r.duration.Observe(d.Seconds())
}

// pluginBreaker resolves a plugin breaker's series (pluginbreaker.go).
func (m *metrics) pluginBreaker(route, plugin, version, phase string) breakerSeries {
	k := [4]string{route, plugin, version, phase}
	m.brkMu.Lock()
	st := m.brkUsers[k]
	if st == nil {
		st = newStateSeries(m.brkState.WithLabelValues(route, plugin, version, phase))
		m.brkUsers[k] = st
	}
	st.users++
	m.brkMu.Unlock()
	return breakerSeries{state: st,
		skipped: m.brkSkipped.WithLabelValues(route, plugin, version, phase),
		opens:   m.brkOpens.WithLabelValues(route, plugin, version, phase)}
}

// dropPluginBreaker deletes a breaker's series once no breaker uses them:
// versions come and go with rollouts, and their series should not stay.
func (m *metrics) dropPluginBreaker(route, plugin, version, phase string) {
	k := [4]string{route, plugin, version, phase}
	m.brkMu.Lock()
	defer m.brkMu.Unlock()
	st := m.brkUsers[k]
	if st == nil {
		return
	}
	if st.users--; st.users > 0 {
		return
	}
	delete(m.brkUsers, k)
	m.brkState.DeleteLabelValues(route, plugin, version, phase)
	m.brkSkipped.DeleteLabelValues(route, plugin, version, phase)
	m.brkOpens.DeleteLabelValues(route, plugin, version, phase)
}
