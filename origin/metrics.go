package origin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/origin/wire"
)

// Metrics are the origin service's Prometheus series, namespace
// wedge_origin. One Metrics serves a Server and the Proxy behind it; the
// series a request touches are resolved once here so that counting costs
// an atomic add.
type Metrics struct {
	exchanges    [6]prometheus.Counter // by status class: 0 = other, 1 = 1xx ... 5 = 5xx
	bytes        [2][2]prometheus.Counter
	dict         [2]prometheus.Counter
	errors       *prometheus.CounterVec
	overload     prometheus.Counter
	timeout      prometheus.Counter
	expired      prometheus.Counter
	upstreamErr  prometheus.Counter
	authFailures prometheus.Counter
	legacyTunnel prometheus.Counter // handshakes without the tunnel flag, taken by LegacyTunnelHandshakes
	duration     prometheus.Histogram
	inflight     prometheus.Gauge
	upstreamReqs *prometheus.CounterVec
	healthy      *prometheus.GaugeVec
	collapsed    prometheus.Counter
	streams      *prometheus.CounterVec // streamed bodies (stream.go)
}

// Indexes into Metrics.bytes.
const (
	dirIn, dirOut     = 0, 1
	stageWire, stageC = 0, 1
)

// NewMetrics builds the origin's series and registers them with reg; a nil
// reg leaves them unregistered, which tests and embedders that do not scrape
// use. Registering twice with one registry panics, as MustRegister does:
// build one Metrics and share it.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "wedge_origin"
	exchanges := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "exchanges_total",
		Help: "Exchanges answered with a response frame, by the class of the envelope's status."}, []string{"code"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "bytes_total",
		Help: "Envelope bytes by direction; stage wire counts frames, stage cbor the envelopes before compression."},
		[]string{"direction", "stage"})
	dict := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dict_total",
		Help: "Decoded requests by whether they were compressed with a dictionary (hit) or not (none)."}, []string{"dict"})
	m := &Metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "errors_total",
			Help: "Failures by kind: frame codec errors (frame, auth, too_large, compression, envelope, version, other), overload, timeout, expired (the edge's deadline passed before the origin read the frame), upstream."},
			[]string{"kind"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "auth_failures_total",
			Help: "Frames refused with 401 because their signature, key, timestamp or kind (a request where a tunnel handshake was expected, or the reverse) did not check out."}),
		legacyTunnel: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "tunnel_legacy_handshakes_total",
			Help: "Tunnel handshakes taken without the tunnel flag, from edges that predate it, under -legacy-tunnel-handshakes; once it stays flat, every edge seals handshakes as such and the option can go."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "exchange_duration_seconds",
			Help:    "Time from a frame's arrival to its answer.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "inflight",
			Help: "Exchanges in progress, counting application handlers that outlived their deadline."}),
		upstreamReqs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "upstream_requests_total",
			Help: "Proxied attempts by upstream and outcome (ok, dial_error, error, timeout, too_large, busy, cancelled: the edge hung up while it waited)."},
			[]string{"upstream", "outcome"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "upstream_healthy",
			Help: "1 while an upstream is in rotation, 0 while health checks hold it out."}, []string{"upstream"}),
		collapsed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "collapsed_total",
			Help: "Requests answered with a copy of an identical concurrent request's upstream response."}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "streams_total",
			Help: "Streamed bodies: request (received in chunks), response (sent in chunks), aborted (the upstream's body failed mid-stream)."},
			[]string{"kind"}),
	}
	for i, c := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		m.exchanges[i] = exchanges.WithLabelValues(c)
	}
	for d, dn := range []string{"in", "out"} {
		for s, sn := range []string{"wire", "cbor"} {
			m.bytes[d][s] = bytes.WithLabelValues(dn, sn)
		}
	}
	m.dict[0] = dict.WithLabelValues("none")
	m.dict[1] = dict.WithLabelValues("hit")
	m.overload = m.errors.WithLabelValues("overload")
	m.timeout = m.errors.WithLabelValues("timeout")
	m.expired = m.errors.WithLabelValues("expired")
	m.upstreamErr = m.errors.WithLabelValues("upstream")
	if reg != nil {
		reg.MustRegister(exchanges, bytes, dict, m.errors, m.authFailures, m.legacyTunnel, m.duration, m.inflight,
			m.upstreamReqs, m.healthy, m.collapsed, m.streams)
	}
	return m
}

func (m *Metrics) exchange(status uint64) {
	c := status / 100
	if c > 5 {
		c = 0
	}
	m.exchanges[c].Inc()
}

// codecError counts a frame the codec refused.
func (m *Metrics) codecError(err error) {
	kind := wire.Kind(err)
	if kind == "auth" {
		m.authFailures.Inc()
	}
	m.errors.WithLabelValues(kind).Inc()
}

// upstreamCounters are one upstream's outcome series.
type upstreamCounters struct {
	ok, dial, err, timeout, tooLarge, busy, cancelled prometheus.Counter
	healthy                                           prometheus.Gauge
}

func (m *Metrics) upstream(name string) upstreamCounters {
	return upstreamCounters{
		ok:        m.upstreamReqs.WithLabelValues(name, "ok"),
		dial:      m.upstreamReqs.WithLabelValues(name, "dial_error"),
		err:       m.upstreamReqs.WithLabelValues(name, "error"),
		timeout:   m.upstreamReqs.WithLabelValues(name, "timeout"),
		tooLarge:  m.upstreamReqs.WithLabelValues(name, "too_large"),
		busy:      m.upstreamReqs.WithLabelValues(name, "busy"),
		cancelled: m.upstreamReqs.WithLabelValues(name, "cancelled"),
		healthy:   m.healthy.WithLabelValues(name),
	}
}
