//go:build !race

package edge

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// TestOverloadAllocs holds admission and release, the sample that moves
// the limit and p (run by whichever request finds it due) and both shed
// answers to zero allocations: they run on every request, the sample every 5 ms.
// TestServeHitAllocs covers them on a whole hit as well.
func TestOverloadAllocs(t *testing.T) {
	var o overload
	cfg := OverloadConfig{MinLimit: 1, InitialLimit: 1, MaxLimit: 1}
	cfg.setDefaults()
	o.init(&cfg, newMetrics(prometheus.NewRegistry()), prometheus.NewRegistry())
	var ctx fasthttp.RequestCtx
	o.sample(sinceStart()) // the first sample sizes its histogram
	for name, f := range map[string]func(){
		"admit and done": func() {
			if !o.admit(&ctx) {
				t.Fatal("shed at no load")
			}
			o.done()
		},
		"sample": func() { o.sample(sinceStart()) },
		"shed": func() {
			o.inflight.Add(1)
			if o.admit(&ctx) {
				t.Fatal("admitted past the limit")
			}
			o.inflight.Add(-1)
			ctx.Response.Reset()
		},
		"shed for the CPU": func() {
			// No sample within admit: it would move p from where this
			// sets it (one comes due every 5 ms, sooner than a busy
			// machine runs this through).
			o.next.Store(math.MaxInt64)
			o.shedP.Store(math.MaxUint32)
			if o.admit(&ctx) {
				t.Fatal("admitted at p 1")
			}
			o.shedP.Store(0)
			ctx.Response.Reset()
		},
	} {
		f()
		if a := testing.AllocsPerRun(1000, f); a != 0 {
			t.Errorf("%s: %v allocations, want 0", name, a)
		}
	}
}

// TestOriginLimitAllocs: an origin's limit costs an exchange nothing,
// including the update that moves it at the end of a window.
func TestOriginLimitAllocs(t *testing.T) {
	cfg := OverloadConfig{}
	cfg.setDefaults()
	l := newOriginLimit("app", time.Millisecond, &cfg, newMetrics(prometheus.NewRegistry()))
	f := func() {
		if !l.acquire() {
			t.Fatal("refused at no load")
		}
		l.next.Store(0) // every release ends a window
		l.release(2*time.Millisecond, nil)
	}
	f()
	if a := testing.AllocsPerRun(1000, f); a != 0 {
		t.Errorf("%v allocations, want 0", a)
	}
}
