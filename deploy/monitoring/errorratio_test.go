package monitoring_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestErrorRatioCountsOriginShedOnce: the error-ratio recording rules add
// wedge_edge_shed_total to wedge_edge_requests_total, since a request shed
// for reason in_flight, cpu or read_bytes is answered before it is routed.
// One shed for its origin (reason origin: the origin's latency limit;
// origin_pool: every connection of max_conns busy) is routed and answered
// through the chain, so it is in both, and the rule counted it twice. Here
// a client gets one 503 out of two answers: the ratio is 0.5 (it said 2/3).
func TestErrorRatioCountsOriginShedOnce(t *testing.T) {
	promtoolPath(t) // skips before the node starts
	held, reached := make(chan struct{}), make(chan struct{}, 4)
	var once sync.Once
	releaseFn := func() { once.Do(func() { close(held) }) }
	t.Cleanup(releaseFn)
	o := origintest.Start(t, origin.HandlerFunc(func(ctx context.Context, _ *wire.Request, resp *wire.Response) {
		reached <- struct{}{}
		select {
		case <-held:
		case <-ctx.Done():
		}
		resp.Status = 200
	}))
	n := edgetest.Start(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q, max_conns: 1}
routes:
  - {path: /, origin: app}
`, o.Addr, origintest.Key.Text()))
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + n.Addr + "/a")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	select {
	case <-reached:
	case <-time.After(time.Minute): // the failure signal, not a margin
		t.Fatal("the first request never reached the origin")
	}
	if st := get(t, "http://"+n.Addr+"/b", ""); st != 503 {
		t.Fatalf("second request with the one origin connection busy: %d, want 503 (origin_pool)", st)
	}
	releaseFn()
	if st := <-first; st != 200 {
		t.Fatalf("first request: %d, want 200", st)
	}
	// What clients got: 2 answers, 1 of them 503.
	const want = 0.5
	var fams = scrape(t, n.Admin.URL+"/metrics")
	testutil.Eventually(t, time.Minute, "both requests counted", func() bool {
		fams = scrape(t, n.Admin.URL+"/metrics")
		return value(fams, "wedge_edge_requests_total", nil) == 2
	})
	t.Logf("requests_total{code=5xx} %v, shed_total %v (origin_pool %v), requests_total %v",
		value(fams, "wedge_edge_requests_total", map[string]string{"code": "5xx"}),
		value(fams, "wedge_edge_shed_total", nil),
		value(fams, "wedge_edge_shed_total", map[string]string{"reason": "origin_pool"}),
		value(fams, "wedge_edge_requests_total", nil))

	// The scraped counters as series rising at that rate, and the rule's
	// value against what the clients got.
	var series strings.Builder
	for _, name := range []string{"wedge_edge_requests_total", "wedge_edge_shed_total"} {
		for _, m := range fams[name].GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Fprintf(&series, "      - series: '%s{%s}'\n        values: '0+%gx20'\n", name, strings.Join(labels, ","), m.GetCounter().GetValue())
		}
	}
	out, err := ruleTest(t, fmt.Sprintf(`  - interval: 1m
    input_series:
%s    promql_expr_test:
      - expr: wedge:edge_request_errors:ratio_rate5m
        eval_time: 15m
        exp_samples:
          - labels: 'wedge:edge_request_errors:ratio_rate5m'
            value: %g
`, series.String(), want))
	if err != nil {
		t.Fatalf("the error-ratio rule on these counters is not the %v the clients got:\n%s", want, out)
	}
}
