package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// Everywhere is the wave that stands for every known region no earlier
// wave named.
const Everywhere = "*"

// Wave is one step of a rollout: the target version on Share percent of
// the clients of Region. Region Everywhere is resolved into Regions when
// the rollout reaches it, so regions that join the fleet meanwhile are
// included.
type Wave struct {
	Region  string   `json:"region"`
	Share   float64  `json:"share"`             // percent, (0, 100]
	Regions []string `json:"regions,omitempty"` // what it resolved to
}

func (w Wave) String() string {
	if w.Region == Everywhere {
		return Everywhere
	}
	return fmt.Sprintf("%s:%s%%", w.Region, strconv.FormatFloat(w.Share, 'f', -1, 64))
}

// ParseWaves parses "eu-west:10%,eu-west:100%,us-east,*": a region with
// an optional share (default 100%), or * for every remaining region. A
// region's share only grows from wave to wave, and * comes last.
func ParseWaves(s string) ([]Wave, error) {
	var waves []Wave
	share := map[string]float64{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("rollout: waves %q: wave %d is empty", s, i+1)
		}
		if len(waves) > 0 && waves[len(waves)-1].Region == Everywhere {
			return nil, fmt.Errorf("rollout: waves %q: * must be the last wave", s)
		}
		if part == Everywhere {
			waves = append(waves, Wave{Region: Everywhere, Share: 100})
			continue
		}
		region, pct, hasShare := strings.Cut(part, ":")
		if err := manifest.CheckName("region", region); err != nil {
			return nil, fmt.Errorf("rollout: waves %q: %w", s, err)
		}
		w := Wave{Region: region, Share: 100}
		if hasShare {
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(pct), "%"), 64)
			if err != nil || !(v > 0 && v <= 100) {
				return nil, fmt.Errorf("rollout: waves %q: share %q of %s: want a percentage in (0, 100], like 10%%", s, pct, region)
			}
			w.Share = v
		}
		if prev, ok := share[region]; ok && w.Share <= prev {
			return nil, fmt.Errorf("rollout: waves %q: %s goes from %g%% to %g%%: a region's share must grow", s, region, prev, w.Share)
		}
		share[region] = w.Share
		waves = append(waves, w)
	}
	return waves, nil
}

// Metric names a gate can test.
const (
	MetricErrorRate = "error_rate" // percent of requests that failed
	MetricP50       = "p50"
	MetricP90       = "p90"
	MetricP95       = "p95"
	MetricP99       = "p99"
)

var quantiles = map[string]float64{MetricP50: 0.50, MetricP90: 0.90, MetricP95: 0.95, MetricP99: 0.99}

// Gate is one health condition a wave must hold while it bakes, e.g.
// error_rate < 1 (percent) or p99 <= 50ms. Limit is in percent for
// error_rate and in nanoseconds for the latency quantiles.
type Gate struct {
	Metric string  `json:"metric"`
	Op     string  `json:"op"` // "<" or "<="
	Limit  float64 `json:"limit"`
}

func (g Gate) String() string {
	return g.Metric + g.Op + formatMetric(g.Metric, g.Limit)
}

// Holds reports whether value satisfies the gate.
func (g Gate) Holds(value float64) bool {
	if g.Op == "<=" {
		return value <= g.Limit
	}
	return value < g.Limit
}

// ParseGates parses "error_rate<1%,p99<50ms": error_rate with a
// percentage, p50/p90/p95/p99 with a duration, compared by < or <=.
func ParseGates(s string) ([]Gate, error) {
	var gates []Gate
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var g Gate
		var value string
		if m, v, ok := strings.Cut(part, "<="); ok {
			g.Metric, g.Op, value = m, "<=", v
		} else if m, v, ok := strings.Cut(part, "<"); ok {
			g.Metric, g.Op, value = m, "<", v
		} else {
			return nil, fmt.Errorf("rollout: gate %q: want METRIC<VALUE or METRIC<=VALUE, like error_rate<1%% or p99<50ms", part)
		}
		g.Metric, value = strings.TrimSpace(g.Metric), strings.TrimSpace(value)
		switch {
		case g.Metric == MetricErrorRate:
			if !strings.HasSuffix(value, "%") {
				return nil, fmt.Errorf("rollout: gate %q: error_rate wants a percentage, like 1%%", part)
			}
			v, err := strconv.ParseFloat(strings.TrimSuffix(value, "%"), 64)
			if err != nil || v < 0 || v > 100 {
				return nil, fmt.Errorf("rollout: gate %q: %q is not a percentage in [0, 100]", part, value)
			}
			g.Limit = v
		case quantiles[g.Metric] > 0:
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("rollout: gate %q: %q is not a positive duration, like 50ms", part, value)
			}
			g.Limit = float64(d)
		default:
			return nil, fmt.Errorf("rollout: gate %q: unknown metric %q: want error_rate, p50, p90, p95 or p99", part, g.Metric)
		}
		gates = append(gates, g)
	}
	if len(gates) == 0 {
		return nil, fmt.Errorf("rollout: no gates in %q: give at least one, like error_rate<1%%", s)
	}
	return gates, nil
}

// formatMetric writes a gate's limit as given.
func formatMetric(metric string, v float64) string {
	if metric == MetricErrorRate {
		return strconv.FormatFloat(v, 'f', -1, 64) + "%"
	}
	return time.Duration(v).String()
}

// formatValue writes a measured gate value: an error rate to four
// significant digits (10.67%, not 10.666666666666666%), which still tells
// a small rate from 0 and from a limit like 0.05%.
func formatValue(metric string, v float64) string {
	if metric == MetricErrorRate {
		return strconv.FormatFloat(v, 'g', 4, 64) + "%"
	}
	return formatMetric(metric, v)
}

// Window is the traffic a wave's target version served since it was
// applied, summed over the POPs of the wave's regions.
type Window struct {
	Requests uint64   `json:"requests"`
	Errors   uint64   `json:"errors"`
	Buckets  []uint64 `json:"buckets,omitempty"`
}

// Value returns a gate metric over the window: percent for error_rate,
// nanoseconds for the quantiles.
func (w Window) Value(metric string) float64 {
	if metric == MetricErrorRate {
		if w.Requests == 0 {
			return 0
		}
		return 100 * float64(w.Errors) / float64(w.Requests)
	}
	return float64(manifest.Quantile(quantiles[metric], w.Buckets))
}

func (w *Window) add(h manifest.Health, base *manifest.Health) {
	// A POP that restarted reports counters below its baseline: its
	// whole count is then new traffic.
	if base != nil && h.Requests < base.Requests {
		base = nil
	}
	w.Requests += h.Requests
	w.Errors += h.Errors
	if base != nil {
		w.Requests -= base.Requests
		w.Errors -= min(base.Errors, h.Errors)
	}
	if len(w.Buckets) < len(h.Buckets) {
		w.Buckets = append(w.Buckets, make([]uint64, len(h.Buckets)-len(w.Buckets))...)
	}
	for i, b := range h.Buckets {
		if base != nil && i < len(base.Buckets) && base.Buckets[i] <= b {
			b -= base.Buckets[i]
		}
		w.Buckets[i] += b
	}
}

// merge adds o's counts to w.
func (w *Window) merge(o Window) {
	w.add(manifest.Health{Requests: o.Requests, Errors: o.Errors, Buckets: o.Buckets}, nil)
}

// GateValue is a gate and its value over the current bake window.
type GateValue struct {
	Gate  string  `json:"gate"`
	Value string  `json:"value"`
	Raw   float64 `json:"raw"`
	OK    bool    `json:"ok"`
}
