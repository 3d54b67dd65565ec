package host

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/talowa/wedge/wasm/abi"
)

// series returns the metric of family name with labels plugin and version,
// or nil.
func series(t *testing.T, reg *prometheus.Registry, name, plugin, version string) *dto.Metric {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			lv := map[string]string{}
			for _, l := range m.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			if len(lv) == 2 && lv["plugin"] == plugin && lv["version"] == version {
				return m
			}
		}
	}
	return nil
}

func familyType(t *testing.T, reg *prometheus.Registry, name string) dto.MetricType {
	t.Helper()
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetType()
		}
	}
	t.Fatalf("no family %s", name)
	return 0
}

func TestMetricsDefine(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(NewMetricFamilies(reg), "plug", "1.0")
	for _, st := range []struct {
		name string
		kind abi.MetricKind
		want int32
	}{
		{"requests", abi.MetricCounter, 0},
		{"requests", abi.MetricCounter, 0}, // again: same handle
		{"requests", abi.MetricGauge, abi.ErrInvalid},
		{"requests", abi.MetricHistogram, abi.ErrInvalid},
		{"temperature", abi.MetricGauge, 1},
		{"latency_seconds", abi.MetricHistogram, 2},
		{"a", abi.MetricCounter, 3},
		{"a" + strings.Repeat("b_9", 21), abi.MetricCounter, 4}, // 64 bytes
		{"a" + strings.Repeat("b_9", 21) + "x", abi.MetricCounter, abi.ErrInvalid},
		{"", abi.MetricCounter, abi.ErrInvalid},
		{"Requests", abi.MetricCounter, abi.ErrInvalid},
		{"1st", abi.MetricCounter, abi.ErrInvalid},
		{"_x", abi.MetricCounter, abi.ErrInvalid},
		{"a-b", abi.MetricCounter, abi.ErrInvalid},
		{"a.b", abi.MetricCounter, abi.ErrInvalid},
		{"a:b", abi.MetricCounter, abi.ErrInvalid},
		{"a b", abi.MetricCounter, abi.ErrInvalid},
		{"caf\xc3\xa9", abi.MetricCounter, abi.ErrInvalid},
		{"unknown_kind", 3, abi.ErrInvalid},
		{"negative_kind", -1, abi.ErrInvalid},
		{"after_refusals", abi.MetricGauge, 5},
	} {
		if got := m.Define(st.kind, []byte(st.name)); got != st.want {
			t.Errorf("Define(%d, %q) = %d, want %d", st.kind, st.name, got, st.want)
		}
	}
	// Families are registered under the prefix, with the kind asked for.
	for name, typ := range map[string]dto.MetricType{
		"wedge_plugin_requests":        dto.MetricType_COUNTER,
		"wedge_plugin_temperature":     dto.MetricType_GAUGE,
		"wedge_plugin_latency_seconds": dto.MetricType_HISTOGRAM,
	} {
		if got := familyType(t, reg, name); got != typ {
			t.Errorf("%s has type %v, want %v", name, got, typ)
		}
	}
}

func TestMetricsRecord(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(NewMetricFamilies(reg), "plug", "1.0")
	c := m.Define(abi.MetricCounter, []byte("hits"))
	g := m.Define(abi.MetricGauge, []byte("level"))
	h := m.Define(abi.MetricHistogram, []byte("dur"))
	for _, st := range []struct {
		name   string
		handle int32
		value  float64
		want   int32
	}{
		{"counter add", c, 1.5, 0},
		{"counter add 2", c, 2, 0},
		{"counter add 0", c, 0, 0},
		{"counter negative", c, -1, abi.ErrInvalid},
		{"counter NaN", c, math.NaN(), abi.ErrInvalid},
		{"counter +Inf", c, math.Inf(1), abi.ErrInvalid},
		{"gauge set", g, 7, 0},
		{"gauge set negative", g, -3.25, 0},
		{"gauge NaN", g, math.NaN(), abi.ErrInvalid},
		{"gauge -Inf", g, math.Inf(-1), abi.ErrInvalid},
		{"histogram observe", h, 0.2, 0},
		{"histogram observe negative", h, -0.5, 0},
		{"histogram NaN", h, math.NaN(), abi.ErrInvalid},
		{"histogram +Inf", h, math.Inf(1), abi.ErrInvalid},
		{"unknown handle", 3, 1, abi.ErrNotFound},
		{"negative handle", -1, 1, abi.ErrNotFound},
	} {
		if got := m.Record(st.handle, st.value); got != st.want {
			t.Errorf("%s: Record = %d, want %d", st.name, got, st.want)
		}
	}
	if s := series(t, reg, "wedge_plugin_hits", "plug", "1.0"); s.GetCounter().GetValue() != 3.5 {
		t.Errorf("counter = %v, want 3.5", s.GetCounter().GetValue())
	}
	if s := series(t, reg, "wedge_plugin_level", "plug", "1.0"); s.GetGauge().GetValue() != -3.25 {
		t.Errorf("gauge = %v, want -3.25", s.GetGauge().GetValue())
	}
	s := series(t, reg, "wedge_plugin_dur", "plug", "1.0").GetHistogram()
	if s.GetSampleCount() != 2 || math.Abs(s.GetSampleSum()-(-0.3)) > 1e-12 {
		t.Errorf("histogram count %d sum %v, want 2 and -0.3", s.GetSampleCount(), s.GetSampleSum())
	}

	empty := NewMetrics(NewMetricFamilies(nil), "p", "v")
	if got := empty.Record(0, 1); got != abi.ErrNotFound {
		t.Errorf("Record on no metrics = %d", got)
	}
	var none *Metrics
	if got := none.Record(0, 1); got != abi.ErrUnavailable {
		t.Errorf("Record on nil = %d", got)
	}
	if got := none.Define(abi.MetricCounter, []byte("x")); got != abi.ErrUnavailable {
		t.Errorf("Define on nil = %d", got)
	}
}

func TestMetricsMax(t *testing.T) {
	m := NewMetrics(NewMetricFamilies(nil), "p", "v")
	for i := range abi.MaxMetrics {
		if got := m.Define(abi.MetricGauge, []byte("m"+strconv.Itoa(i))); got != int32(i) {
			t.Fatalf("metric %d: %d", i, got)
		}
	}
	if got := m.Define(abi.MetricGauge, []byte("one_more")); got != abi.ErrTooLarge {
		t.Fatalf("metric %d: %d, want ErrTooLarge", abi.MaxMetrics, got)
	}
	if got := m.Define(abi.MetricGauge, []byte("m9")); got != 9 {
		t.Fatalf("redefining m9 on a full set = %d", got)
	}
}

// TestMetricsVersions: versions of a plugin share a family, each with its
// own series; a kind conflict between plugins is refused; Close drops a
// version's series only.
func TestMetricsVersions(t *testing.T) {
	reg := prometheus.NewRegistry()
	fams := NewMetricFamilies(reg)
	v1 := NewMetrics(fams, "plug", "1")
	v2 := NewMetrics(fams, "plug", "2")
	other := NewMetrics(fams, "other", "1")
	h1 := v1.Define(abi.MetricCounter, []byte("hits"))
	h2 := v2.Define(abi.MetricCounter, []byte("hits"))
	if h1 != 0 || h2 != 0 {
		t.Fatalf("handles %d %d", h1, h2)
	}
	if got := other.Define(abi.MetricGauge, []byte("hits")); got != abi.ErrInvalid {
		t.Fatalf("another plugin redefining hits as a gauge = %d", got)
	}
	v1.Record(h1, 1)
	v2.Record(h2, 10)
	if a, b := series(t, reg, "wedge_plugin_hits", "plug", "1"), series(t, reg, "wedge_plugin_hits", "plug", "2"); a.GetCounter().GetValue() != 1 || b.GetCounter().GetValue() != 10 {
		t.Fatalf("series %v and %v", a, b)
	}
	v1.Close()
	if s := series(t, reg, "wedge_plugin_hits", "plug", "1"); s != nil {
		t.Fatalf("v1's series survived Close: %v", s)
	}
	if s := series(t, reg, "wedge_plugin_hits", "plug", "2"); s.GetCounter().GetValue() != 10 {
		t.Fatalf("v2's series after v1's Close: %v", s)
	}
	NewMetrics(fams, "p", "never defined").Close() // nothing to delete
}

// TestMetricsRegistryConflict: a name some other collector already took is
// refused, not a panic.
func TestMetricsRegistryConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "wedge_plugin_taken", Help: "x"}))
	m := NewMetrics(NewMetricFamilies(reg), "p", "v")
	if got := m.Define(abi.MetricCounter, []byte("taken")); got != abi.ErrInvalid {
		t.Fatalf("Define of a taken name = %d", got)
	}
	if got := m.Define(abi.MetricCounter, []byte("free")); got != 0 {
		t.Fatalf("Define after a refusal = %d", got)
	}
}

// TestCallMetrics: metric_define and metric_record through Call reach the
// registry.
func TestCallMetrics(t *testing.T) {
	f := newFixture(t, abi.PhaseConfigure)
	h := f.call.MetricDefine(abi.MetricHistogram, []byte("upstream_seconds"))
	if h != 1 { // 0 is the fixture's counter
		t.Fatalf("MetricDefine = %d", h)
	}
	f.call.Reset(f.env, abi.PhaseRequest, f.ex)
	for _, v := range []float64{0.1, 0.3} {
		if got := f.call.MetricRecord(h, v); got != 0 {
			t.Fatalf("MetricRecord = %d", got)
		}
	}
	if got := f.call.MetricRecord(0, -1); got != abi.ErrInvalid {
		t.Fatalf("negative counter increment = %d", got)
	}
	f.call.MetricRecord(0, 2)
	if s := series(t, f.reg, "wedge_plugin_upstream_seconds", "p", "v1").GetHistogram(); s.GetSampleCount() != 2 {
		t.Fatalf("histogram count %d", s.GetSampleCount())
	}
	if s := series(t, f.reg, "wedge_plugin_hits", "p", "v1"); s.GetCounter().GetValue() != 2 {
		t.Fatalf("counter %v", s.GetCounter().GetValue())
	}
}
