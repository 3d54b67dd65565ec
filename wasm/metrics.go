package wasm

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/wasm/abi"
)

// metrics are the runtime's Prometheus families, labelled by plugin and
// version (and phase, kind, reason).
type metrics struct {
	calls     *prometheus.CounterVec
	errors    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	instances *prometheus.GaugeVec
	memory    *prometheus.GaugeVec
	replaced  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	pv := []string{"plugin", "version"}
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wedge_plugin_calls_total", Help: "Guest calls by phase.",
		}, append(pv, "phase")),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wedge_plugin_errors_total", Help: "Failed guest calls by phase and kind (trap, timeout, exit, memory, guest, busy).",
		}, append(pv, "phase", "kind")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wedge_plugin_call_duration_seconds",
			Help:    "Guest call duration by phase, including pool checkout.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10), // 1 us .. 262 ms
		}, append(pv, "phase")),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wedge_plugin_instances", Help: "Live instances per plugin version.",
		}, pv),
		memory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wedge_plugin_memory_bytes", Help: "Linear memory held by live instances per plugin version.",
		}, pv),
		replaced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wedge_plugin_instance_replacements_total", Help: "Instances discarded and replaced, by reason.",
		}, append(pv, "reason")),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.errors, m.duration, m.instances, m.memory, m.replaced} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// moduleMetrics are one version's series, resolved once so that a call only
// does atomic adds.
type moduleMetrics struct {
	all       *metrics
	labels    prometheus.Labels
	phase     [2]phaseMetrics // request, response
	instances prometheus.Gauge
	memory    prometheus.Gauge
	replaced  *prometheus.CounterVec
}

type phaseMetrics struct {
	calls    prometheus.Counter
	duration prometheus.Observer
	errors   [kindCount]prometheus.Counter
}

func (m *metrics) forModule(plugin, version string) moduleMetrics {
	mm := moduleMetrics{
		all:       m,
		labels:    prometheus.Labels{"plugin": plugin, "version": version},
		instances: m.instances.WithLabelValues(plugin, version),
		memory:    m.memory.WithLabelValues(plugin, version),
	}
	mm.replaced = m.replaced.MustCurryWith(mm.labels)
	for i, ph := range []abi.Phase{abi.PhaseRequest, abi.PhaseResponse} {
		name := abi.PhaseName(ph)
		p := &mm.phase[i]
		p.calls = m.calls.WithLabelValues(plugin, version, name)
		p.duration = m.duration.WithLabelValues(plugin, version, name)
		for k := KindTrap; k < kindCount; k++ {
			p.errors[k] = m.errors.WithLabelValues(plugin, version, name, k.String())
		}
	}
	return mm
}

// delete drops the version's series once it is gone.
func (mm *moduleMetrics) delete() {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{mm.all.calls, mm.all.errors, mm.all.duration, mm.all.instances, mm.all.memory, mm.all.replaced} {
		v.DeletePartialMatch(mm.labels)
	}
}
