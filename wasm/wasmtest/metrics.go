package wasmtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/testutil"
)

// Metric returns the value of the series name{labels} gathered from g (a
// histogram's sample count), or 0 when there is no such series. Labels not
// given match anything; with several matching, the first.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	if s := testutil.Series(t, g, name, labels); len(s) > 0 {
		return testutil.Value(s[0])
	}
	return 0
}
