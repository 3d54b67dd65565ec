package wasm

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's Prometheus families, labelled by plugin and
// version (and phase, kind, reason).
type metrics struct {
	// users counts live modules per (plugin, version): a version loaded
	// twice (a new config, say) shares its series, which go only with the
	// last of them.
	mu    sync.Mutex
	users map[[2]string]int

	loadErrors *prometheus.CounterVec
	calls      *callCollector
	errors     *prometheus.CounterVec
	instances  *prometheus.GaugeVec
	memory     *prometheus.GaugeVec
	replaced   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	pv := []string{"plugin", "version"}
	m := &metrics{
		users: map[[2]string]int{},
		loadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wedge_plugin_load_errors_total", Help: "Plugin versions refused at load, by reason (invalid module, configure failure).",
		}, append(pv, "reason")),
		calls: &callCollector{modules: map[*Module]struct{}{}},
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wedge_plugin_errors_total", Help: "Failed guest calls by phase and kind (trap, timeout, exit, memory, guest, busy).",
		}, append(pv, "phase", "kind")),
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
		for _, c := range []prometheus.Collector{m.loadErrors, m.calls, m.errors, m.instances, m.memory, m.replaced} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// moduleMetrics are one version's series, resolved once so that the rare
// events (errors, replacements) cost an atomic add.
type moduleMetrics struct {
	all       *metrics
	labels    prometheus.Labels
	errors    [2][kindCount]prometheus.Counter // by phase index, kind
	instances prometheus.Gauge
	memory    prometheus.Gauge
	replaced  *prometheus.CounterVec
}

func (m *metrics) forModule(plugin, version string) moduleMetrics {
	m.mu.Lock()
	m.users[[2]string{plugin, version}]++
	m.mu.Unlock()
	mm := moduleMetrics{
		all:       m,
		labels:    prometheus.Labels{"plugin": plugin, "version": version},
		instances: m.instances.WithLabelValues(plugin, version),
		memory:    m.memory.WithLabelValues(plugin, version),
	}
	mm.replaced = m.replaced.MustCurryWith(mm.labels)
	for i, name := range phaseNames {
		for k := KindTrap; k < kindCount; k++ {
			mm.errors[i][k] = m.errors.WithLabelValues(plugin, version, name, k.String())
		}
	}
	return mm
}

var phaseNames = [2]string{"request", "response"}

// delete drops the version's series once no module of it is left.
func (mm *moduleMetrics) delete() {
	key := [2]string{mm.labels["plugin"], mm.labels["version"]}
	mm.all.mu.Lock()
	defer mm.all.mu.Unlock()
	if mm.all.users[key]--; mm.all.users[key] > 0 {
		return
	}
	delete(mm.all.users, key)
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{mm.all.errors, mm.all.instances, mm.all.memory, mm.all.replaced} {
		v.DeletePartialMatch(mm.labels)
	}
}

// Call durations are the one metric every call records.
//
// # Why not a prometheus.Histogram
//
// A shared histogram is a handful of atomic adds on cache lines every core
// writes: on two cores under load that contention cost more than the guest
// call itself. Instead each instance counts its own calls (only the goroutine
// holding the instance writes them, so the lines stay in one core's cache),
// and callCollector sums them when Prometheus scrapes.

// callBuckets are the upper bounds of the duration histogram in ns: 1 us to
// 262 ms by factors of 4.
var callBuckets = [...]int64{1e3, 4e3, 16e3, 64e3, 256e3, 1024e3, 4096e3, 16384e3, 65536e3, 262144e3}

// callStats counts calls of one phase.
type callStats struct {
	count   atomic.Uint64
	sumNs   atomic.Uint64
	buckets [len(callBuckets)]atomic.Uint64 // non-cumulative
}

// observe counts one call. Only the goroutine holding the instance writes
// its stats, so a load and a store do: a locked add would cost more than
// the rest of the bookkeeping, and atomics keep the scrape's reads sound.
func (s *callStats) observe(ns int64) {
	s.count.Store(s.count.Load() + 1)
	s.sumNs.Store(s.sumNs.Load() + uint64(ns))
	for i, le := range callBuckets {
		if ns <= le {
			s.buckets[i].Store(s.buckets[i].Load() + 1)
			return
		}
	}
}

func (s *callStats) addTo(t *callStats) {
	t.count.Add(s.count.Load())
	t.sumNs.Add(s.sumNs.Load())
	for i := range s.buckets {
		t.buckets[i].Add(s.buckets[i].Load())
	}
}

// moduleCalls holds a module's call statistics: its live instances' and
// those of instances already closed.
type moduleCalls struct {
	mu      sync.Mutex
	live    map[*instance]struct{}
	retired [2]callStats
}

func (c *moduleCalls) add(i *instance) {
	c.mu.Lock()
	if c.live == nil {
		c.live = map[*instance]struct{}{}
	}
	c.live[i] = struct{}{}
	c.mu.Unlock()
}

func (c *moduleCalls) remove(i *instance) {
	c.mu.Lock()
	delete(c.live, i)
	for p := range i.calls {
		i.calls[p].addTo(&c.retired[p])
	}
	c.mu.Unlock()
}

func (c *moduleCalls) sum(phase int) *callStats {
	t := new(callStats)
	c.mu.Lock()
	c.retired[phase].addTo(t)
	for i := range c.live {
		i.calls[phase].addTo(t)
	}
	c.mu.Unlock()
	return t
}

var callDesc = prometheus.NewDesc("wedge_plugin_call_duration_seconds",
	"Guest call duration by phase, including pool checkout; its count is the number of calls.",
	[]string{"plugin", "version", "phase"}, nil)

// callCollector exports the call histograms of the runtime's modules.
type callCollector struct {
	mu      sync.Mutex
	modules map[*Module]struct{}
}

func (c *callCollector) add(m *Module) {
	c.mu.Lock()
	c.modules[m] = struct{}{}
	c.mu.Unlock()
}

func (c *callCollector) remove(m *Module) {
	c.mu.Lock()
	delete(c.modules, m)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *callCollector) Describe(ch chan<- *prometheus.Desc) { ch <- callDesc }

// Collect implements prometheus.Collector. Modules of one plugin version
// (loaded twice, with two configs) are summed into one series.
func (c *callCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ plugin, version string }
	sums := map[key]*[2]callStats{}
	var order []key
	c.mu.Lock()
	for m := range c.modules {
		k := key{m.spec.Name, m.spec.Version}
		if sums[k] == nil {
			sums[k] = new([2]callStats)
			order = append(order, k)
		}
		for p := range phaseNames {
			m.calls.sum(p).addTo(&sums[k][p])
		}
	}
	c.mu.Unlock()
	for _, k := range order {
		for p, name := range phaseNames {
			s := &sums[k][p]
			buckets := make(map[float64]uint64, len(callBuckets))
			var cum uint64
			for i, le := range callBuckets {
				cum += s.buckets[i].Load()
				buckets[float64(le)/1e9] = cum
			}
			ch <- prometheus.MustNewConstHistogram(callDesc, s.count.Load(), float64(s.sumNs.Load())/1e9,
				buckets, k.plugin, k.version, name)
		}
	}
}
