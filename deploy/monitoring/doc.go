// Package monitoring ships what watches a Wedge fleet: Prometheus alert and
// recording rules (alerts.yml, with promtool unit tests in
// alerts_test.yml), a Grafana dashboard (dashboard.json), and the
// collector behind `wedgectl control --http`'s /metrics, which exports the
// control plane's state: POPs reporting and refusing their desired state
// per region (wedge_control_pops, wedge_control_pops_refusing), rollouts
// by state (wedge_control_rollouts) and the wave each active one is at
// (wedge_control_rollout_wave), and when the certificate of each server
// the process runs expires (wedge_control_cert_expiry_timestamp_seconds,
// which `wedgectl control leaf --http` exports for a leaf node too).
// Everything else the rules and the dashboard read, an edge node exports
// on its admin listener's /metrics.
//
// The SLOs are the fleet's: 99.9 % of requests answered without a 5xx, and
// 95 % of routed requests answered within 200 ms (the edge's request
// histogram has a 0.2 s bucket for it). Each is alerted on as in the Google
// SRE workbook's multiwindow, multi-burn-rate recipe: 14.4x over 1h and
// 5m, 6x over 6h and 30m (pages), 3x over 1d and 2h (a ticket). README.md,
// "Alerts and dashboards", is every alert's runbook.
//
// # Why
//
// The rollout controller keeps its state in the control plane's buckets,
// not in counters, so the collector reads the buckets on each scrape:
// every controller process (or several) exports the same figures, a
// restart resets nothing, and a rollback shows as the count of rolled_back
// records rising. The tests hold the files to what Wedge really exports:
// every metric name a rule or a panel reads is checked against a scrape of
// a running POP (with plugins, an origin and a control plane), so a
// renamed metric fails here rather than leaving an alert that never fires.
package monitoring
