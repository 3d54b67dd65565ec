package host

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/wasm/abi"
)

// MetricFamilies holds the Prometheus families behind plugin-defined metrics,
// one per metric name, labelled by plugin and version. One set serves a whole
// runtime; it registers families on first definition.
type MetricFamilies struct {
	reg   prometheus.Registerer
	mu    sync.Mutex
	fam   map[string]family
	users map[[2]string]int // live Metrics per (plugin, version)
}

type family struct {
	kind abi.MetricKind
	vec  any // *prometheus.CounterVec, *GaugeVec or *HistogramVec
}

// MetricPrefix starts the name of every plugin-defined metric.
const MetricPrefix = "wedge_plugin_"

// NewMetricFamilies registers families with reg (nil: a private registry).
func NewMetricFamilies(reg prometheus.Registerer) *MetricFamilies {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &MetricFamilies{reg: reg, fam: map[string]family{}, users: map[[2]string]int{}}
}

func (f *MetricFamilies) family(kind abi.MetricKind, name string) (family, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm, ok := f.fam[name]; ok {
		if fm.kind != kind {
			return family{}, fmt.Errorf("host: metric %s already defined with another kind", name)
		}
		return fm, nil
	}
	labels := []string{"plugin", "version"}
	full, help := MetricPrefix+name, "Defined by a Wedge plugin."
	var c prometheus.Collector
	switch kind {
	case abi.MetricCounter:
		c = prometheus.NewCounterVec(prometheus.CounterOpts{Name: full, Help: help}, labels)
	case abi.MetricGauge:
		c = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: full, Help: help}, labels)
	case abi.MetricHistogram:
		c = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: full, Help: help}, labels)
	default:
		return family{}, errors.New("host: unknown metric kind")
	}
	if err := f.reg.Register(c); err != nil {
		return family{}, fmt.Errorf("host: register metric %s: %w", full, err)
	}
	fm := family{kind, c}
	f.fam[name] = fm
	return fm, nil
}

// Metrics are the metrics one plugin version defined. Handles are indexes,
// identical across the version's instances because configure is
// deterministic and Define deduplicates by name.
type Metrics struct {
	fams            *MetricFamilies
	plugin, version string
	mu              sync.Mutex
	defs            handles[metric]
}

type metric struct {
	name string
	kind abi.MetricKind
	c    prometheus.Counter
	g    prometheus.Gauge
	h    prometheus.Observer
}

// NewMetrics returns the metrics of one plugin version.
func NewMetrics(fams *MetricFamilies, plugin, version string) *Metrics {
	fams.mu.Lock()
	fams.users[[2]string{plugin, version}]++
	fams.mu.Unlock()
	return &Metrics{fams: fams, plugin: plugin, version: version}
}

func validMetricName(b []byte) bool {
	if len(b) == 0 || len(b) > 64 || b[0] < 'a' || b[0] > 'z' {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Define returns the handle of metric name, defining it on first use.
func (m *Metrics) Define(kind abi.MetricKind, name []byte) int32 {
	if m == nil {
		return abi.ErrUnavailable
	}
	if !validMetricName(name) {
		return abi.ErrInvalid
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.defs.all()
	for i, d := range cur {
		if d.name == string(name) {
			if d.kind != kind {
				return abi.ErrInvalid
			}
			return int32(i)
		}
	}
	if len(cur) >= abi.MaxMetrics {
		return abi.ErrTooLarge
	}
	fm, err := m.fams.family(kind, string(name))
	if err != nil {
		return abi.ErrInvalid
	}
	d := metric{name: string(name), kind: kind}
	switch v := fm.vec.(type) {
	case *prometheus.CounterVec:
		d.c = v.WithLabelValues(m.plugin, m.version)
	case *prometheus.GaugeVec:
		d.g = v.WithLabelValues(m.plugin, m.version)
	case *prometheus.HistogramVec:
		d.h = v.WithLabelValues(m.plugin, m.version)
	}
	return m.defs.add(d)
}

// Record applies value to metric handle h.
func (m *Metrics) Record(h int32, value float64) int32 {
	if m == nil {
		return abi.ErrUnavailable
	}
	d, ok := m.defs.get(h)
	if !ok {
		return abi.ErrNotFound
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return abi.ErrInvalid
	}
	switch d.kind {
	case abi.MetricCounter:
		if value < 0 {
			return abi.ErrInvalid
		}
		d.c.Add(value)
	case abi.MetricGauge:
		d.g.Set(value)
	case abi.MetricHistogram:
		d.h.Observe(value)
	}
	return 0
}

// Close deletes this version's series, so retired versions do not linger in
// the scrape output. Call it once.
func (m *Metrics) Close() {
	m.fams.mu.Lock()
	defer m.fams.mu.Unlock()
	key := [2]string{m.plugin, m.version}
	// Series are shared with other live Metrics of the same version (a
	// version loaded twice): they go with the last.
	if m.fams.users[key]--; m.fams.users[key] > 0 {
		return
	}
	delete(m.fams.users, key)
	for _, d := range m.defs.all() {
		switch v := m.fams.fam[d.name].vec.(type) {
		case *prometheus.CounterVec:
			v.DeleteLabelValues(m.plugin, m.version)
		case *prometheus.GaugeVec:
			v.DeleteLabelValues(m.plugin, m.version)
		case *prometheus.HistogramVec:
			v.DeleteLabelValues(m.plugin, m.version)
		}
	}
}
