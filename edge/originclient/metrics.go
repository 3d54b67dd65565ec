package originclient

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the origin client's Prometheus series, shared by every Client
// of a process and labelled by origin. Build them once with NewMetrics.
type Metrics struct {
	exchanges   *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	dict        *prometheus.CounterVec
	errors      *prometheus.CounterVec
	retries     *prometheus.CounterVec
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	opens       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
}

const namespace = "wedge_edge_origin"

// NewMetrics creates the series and registers them with reg (when not nil);
// it panics if they are already registered there, as promauto does.
//
// exchanges_total{origin,outcome} counts calls to Do by how they ended:
// ok, origin_error (a failure envelope the origin made), refused, timeout,
// transport, bad_response, bad_request (the request could not be sealed),
// breaker_open, pool_full (every connection of Config.MaxConns busy: not
// sent) or cancelled (the client hung up while it waited: abandoned).
// errors_total{origin,kind} counts failed attempts, retried or not, by
// kind: timeout, transport, refused, breaker_open, pool_full, cancelled,
// or the wire.Kind of
// a codec error. bytes_total counts frame bytes (stage="wire") and envelope
// bytes before compression (stage="cbor") per attempt; dict_total counts
// answered exchanges by whether their frames used a zstd dictionary.
// exchange_duration_seconds times each Do that reached the network,
// retries included.
//
// breaker_state{origin} is the circuit breaker's state (0 closed,
// 1 half-open, 2 open), breaker_transitions_total{origin,to} counts the
// states it entered, and breaker_opens_total{origin,reason} counts its
// openings by why: connect, transport, refused, unavailable (the origin
// said it cannot serve), bad_response or timeout is the failure that
// completed a run of Failures or failed a half-open probe; error_rate is
// the FailureRatio reached in the Window.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "exchanges_total",
			Help: "Exchanges with the origin by outcome."}, []string{"origin", "outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "bytes_total",
			Help: "Bytes exchanged with the origin: frames (wire) and envelopes before compression (cbor)."},
			[]string{"origin", "direction", "stage"}),
		dict: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "dict_total",
			Help: "Answered exchanges by whether they were compressed with a dictionary."}, []string{"origin", "dict"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "errors_total",
			Help: "Failed attempts by kind."}, []string{"origin", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "retries_total",
			Help: "Attempts after the first."}, []string{"origin"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open."}, []string{"origin"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "breaker_transitions_total",
			Help: "Circuit breaker state changes by the state entered."}, []string{"origin", "to"}),
		opens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "breaker_opens_total",
			Help: "Circuit breaker openings by reason: the failure that opened it, or error_rate."}, []string{"origin", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "exchange_duration_seconds",
			Help:    "Time Do spent on exchanges that reached the network, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
			[]string{"origin"}),
	}
	if reg != nil {
		reg.MustRegister(m.exchanges, m.bytes, m.dict, m.errors, m.retries, m.state, m.transitions, m.opens, m.duration)
	}
	return m
}

// outcome is how a Do ended, an index into outcomeNames.
type outcome uint8

const (
	outOK outcome = iota
	outOriginError
	outRefused
	outTimeout
	outTransport
	outBadResponse
	outBadRequest
	outBreakerOpen
	outPoolFull
	outCancelled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "origin_error", "refused", "timeout", "transport",
	"bad_response", "bad_request", "breaker_open", "pool_full", "cancelled"}

// errKinds are the errors_total kinds: the client's own, then wire.Kind's.
var errKinds = [...]string{"timeout", "transport", "refused", "breaker_open", "pool_full", "cancelled",
	"frame", "auth", "too_large", "compression", "envelope", "version", "other"}

const (
	kindTimeout = iota
	kindTransport
	kindRefused
	kindBreakerOpen
	kindPoolFull
	kindCancelled
)

func kindIndex(name string) int {
	for i, k := range errKinds {
		if k == name {
			return i
		}
	}
	return len(errKinds) - 1
}

var stateNames = [...]string{"closed", "half_open", "open"}

// series are one origin's resolved children, so the hot path never looks
// labels up.
type series struct {
	outcomes                               [numOutcomes]prometheus.Counter
	errors                                 [len(errKinds)]prometheus.Counter
	sentWire, sentCBOR, recvWire, recvCBOR prometheus.Counter
	dictNone, dictHit                      prometheus.Counter
	retries                                prometheus.Counter
	state                                  prometheus.Gauge
	transitions                            [len(stateNames)]prometheus.Counter
	opens                                  [numReasons]prometheus.Counter
	duration                               prometheus.Observer
}

func (m *Metrics) series(origin string) *series {
	s := &series{
		sentWire: m.bytes.WithLabelValues(origin, "sent", "wire"),
		sentCBOR: m.bytes.WithLabelValues(origin, "sent", "cbor"),
		recvWire: m.bytes.WithLabelValues(origin, "received", "wire"),
		recvCBOR: m.bytes.WithLabelValues(origin, "received", "cbor"),
		dictNone: m.dict.WithLabelValues(origin, "none"),
		dictHit:  m.dict.WithLabelValues(origin, "hit"),
		retries:  m.retries.WithLabelValues(origin),
		state:    m.state.WithLabelValues(origin),
		duration: m.duration.WithLabelValues(origin),
	}
	for i, n := range outcomeNames {
		s.outcomes[i] = m.exchanges.WithLabelValues(origin, n)
	}
	for i, n := range errKinds {
		s.errors[i] = m.errors.WithLabelValues(origin, n)
	}
	for i, n := range stateNames {
		s.transitions[i] = m.transitions.WithLabelValues(origin, n)
	}
	for i, n := range reasonNames {
		s.opens[i] = m.opens.WithLabelValues(origin, n)
	}
	return s
}
