//go:build !race

package httpcache

import (
	"testing"
	"time"
)

func TestExplicitlyFreshAllocs(t *testing.T) {
	now := time.Now()
	f := fields("Content-Type", "application/json", "Cache-Control", "public, max-age=60", "Date", "Sun, 06 Dec 2026 10:00:00 GMT",
		"Expires", "Sun, 06 Dec 2026 10:01:00 GMT", "Age", "3")
	if n := testing.AllocsPerRun(100, func() { f.fresh(now) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}
