package monitoring_test

import "testing"

// TestSheddingNotForStraySheds: WedgeShedding is to fire after
// "five minutes of shedding" (README, Overload; "A POP has shed requests ...
// for five minutes"). Its expression, rate(wedge_edge_shed_total[5m]) > 0
// for 5m, was true for five minutes after any single shed, so two stray
// 503s three minutes apart (one request each, in a POP serving thousands a
// second) fired it: at 6m-8m on two shed requests, at minutes 1 and 4, and
// nothing else. It must not.
func TestSheddingNotForStraySheds(t *testing.T) {
	out, err := ruleTest(t, `  - interval: 1m
    input_series:
      - series: 'wedge_edge_shed_total{instance="pop-1",reason="cpu"}'
        values: '0 1 1 1 2 2 2 2 2 2 2 2 2 2 2'
      - series: 'wedge_edge_requests_total{instance="pop-1",route="all",code="2xx"}'
        values: '0+60000x14'
    alert_rule_test:
      - eval_time: 6m
        alertname: WedgeShedding
      - eval_time: 7m
        alertname: WedgeShedding
      - eval_time: 8m
        alertname: WedgeShedding
`)
	if err != nil {
		t.Fatalf("two shed requests three minutes apart fire WedgeShedding:\n%s", out)
	}
}
