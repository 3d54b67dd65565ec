package monitoring

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/rollout"
)

// readTimeout bounds one scrape's read of the control plane: a hung
// JetStream fails the scrape (up == 0) instead of holding Prometheus.
const readTimeout = 5 * time.Second

var (
	popsDesc = prometheus.NewDesc("wedge_control_pops",
		"POPs of a region whose status report is fresh (the rollout controller's notion of reporting).",
		[]string{"region"}, nil)
	refusingDesc = prometheus.NewDesc("wedge_control_pops_refusing",
		"Reporting POPs of a region that refused a desired-state record or failed to apply one (NACK), serving the previous one, or that stopped a revoked version it names.",
		[]string{"region"}, nil)
	rolloutsDesc = prometheus.NewDesc("wedge_control_rollouts",
		"Rollout records by state; rolled_back only grows, so a rise is a rollback.",
		[]string{"state"}, nil)
	waveDesc = prometheus.NewDesc("wedge_control_rollout_wave",
		"The wave (from 1) an active rollout is at, with its state and the current wave's phase.",
		[]string{"id", "plugin", "version", "state", "phase"}, nil)
)

// states are the rollout states exported even at zero, so that a rule
// comparing a count over time never sees the series appear from nothing.
var states = [...]string{rollout.StateRunning, rollout.StateRollingBack, rollout.StateDone, rollout.StateRolledBack}

// Collector exports the control plane's state (POP reports, rollouts) as
// Prometheus series, read afresh from the buckets on every scrape: the
// rollout controller keeps no counters of its own, and any controller
// process (or several) exports the same figures.
type Collector struct {
	s *controlplane.Stores
}

// NewCollector returns a collector over s, which must be opened with
// controlplane.Open or Ensure (it reads the rollouts bucket).
func NewCollector(s *controlplane.Stores) *Collector { return &Collector{s: s} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{popsDesc, refusingDesc, rolloutsDesc, waveDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A control plane that cannot be
// read fails the scrape rather than exporting zeros an alert would trust.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if err := c.collectPOPs(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(popsDesc, err)
	}
	if err := c.collectRollouts(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(rolloutsDesc, err)
	}
}

func (c *Collector) collectPOPs(ctx context.Context, ch chan<- prometheus.Metric) error {
	entries, err := c.s.ReadAll(ctx, c.s.Status, manifest.StatusKey("*", "*"))
	if err != nil {
		return fmt.Errorf("monitoring: read status: %w", err)
	}
	pops, refusing := map[string]int{}, map[string]int{}
	now := time.Now()
	for _, e := range entries {
		st, ok := manifest.StatusOf(e.Key(), e.Value())
		if !ok {
			continue // one POP's garbage (or another region's claim) must not hide the others
		}
		// A region whose POPs all went silent stays, at 0: that is the
		// figure to see. Freshness is the age of the report's write as
		// the server stamped it, against this process's clock, as the
		// controller judges it: a POP's own clock does not count, but
		// this host's and the server's must agree.
		if _, ok := pops[st.Region]; !ok {
			pops[st.Region], refusing[st.Region] = 0, 0
		}
		if now.Sub(e.Created()) > rollout.DefaultFresh {
			continue
		}
		pops[st.Region]++
		// A record refused (unsigned, replayed...) or one that failed to
		// apply; not yet applied is neither.
		if len(st.Refused) > 0 || st.Error != "" { // a NACK, or an ACK that stopped a revoked version
			refusing[st.Region]++
		}
	}
	for region, n := range pops {
		ch <- prometheus.MustNewConstMetric(popsDesc, prometheus.GaugeValue, float64(n), region)
		ch <- prometheus.MustNewConstMetric(refusingDesc, prometheus.GaugeValue, float64(refusing[region]), region)
	}
	return nil
}

func (c *Collector) collectRollouts(ctx context.Context, ch chan<- prometheus.Metric) error {
	rs, err := rollout.List(ctx, c.s)
	if err != nil {
		return fmt.Errorf("monitoring: %w", err)
	}
	count := map[string]int{}
	for _, r := range rs {
		count[r.State]++
		if r.Active() {
			// A rollback of a finished rollout has its wave past the last.
			ch <- prometheus.MustNewConstMetric(waveDesc, prometheus.GaugeValue, float64(min(r.Wave+1, len(r.Waves))),
				r.ID, r.Plugin, r.Version, r.State, r.Phase)
		}
	}
	for _, st := range states {
		ch <- prometheus.MustNewConstMetric(rolloutsDesc, prometheus.GaugeValue, float64(count[st]), st)
	}
	return nil
}

// Handler serves the collector's series (and no process metrics: those
// of the controller process are not the fleet's) in Prometheus' text
// format, for `wedgectl control --http`'s /metrics, and when each of
// certs, the certificates of the servers this process runs, expires. A
// nil s exports the certificates only, for a leaf node's `control leaf
// --http`, which holds no buckets.
func Handler(s *controlplane.Stores, certs ...*auth.TLS) http.Handler {
	reg := prometheus.NewRegistry()
	if s != nil {
		reg.MustRegister(NewCollector(s))
	}
	if len(certs) > 0 {
		reg.MustRegister(certCollector(certs))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var certDesc = prometheus.NewDesc("wedge_control_cert_expiry_timestamp_seconds",
	"When the TLS certificate a control-plane server presents expires (Unix time), by its file and serial (hex, as wedgectl control renew-certs prints it): a renewed one is a new series from the scrape after it is written.",
	[]string{"file", "serial"}, nil)

// certCollector exports when certificates expire. Each scrape asks the
// certificate as its server would present it, so a renewal shows without
// waiting for a client to connect.
type certCollector []*auth.TLS

// Describe implements prometheus.Collector.
func (c certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certDesc }

// Collect implements prometheus.Collector.
func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c {
		c := t.Leaf()
		ch <- prometheus.MustNewConstMetric(certDesc, prometheus.GaugeValue, float64(c.NotAfter.Unix()), t.File(), fmt.Sprintf("%x", c.SerialNumber))
	}
}
