package edge

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/testutil"
)

// TestGradient drives the limit's arithmetic: it grows while the delay is
// under target and the limit in use, holds while unused, shrinks while
// the delay is over target (faster the further over), and stays within
// its bounds.
func TestGradient(t *testing.T) {
	const target = 5 * time.Millisecond
	g := gradient{min: 10, max: 200, limit: 50, target: target}

	var last float64
	for i := range 20 {
		l := g.update(target/2, int64(g.limit), false) // in use
		if i > 0 && l <= last {
			t.Fatalf("sample %d under target, in use: limit %v after %v, want it to grow", i, l, last)
		}
		last = l
	}
	held := g.limit
	for range 20 {
		g.update(0, 1, false) // idle
	}
	if g.limit != held {
		t.Fatalf("an unused limit moved from %v to %v", held, g.limit)
	}
	for range 1000 {
		g.update(0, 0, true) // shedding at no delay: grows
	}
	if g.limit != g.max {
		t.Fatalf("limit %v after growing long, want the max %v", g.limit, g.max)
	}

	// Over target: it shrinks, more for a larger delay.
	a, b := g, g
	la, lb := a.update(3*target/2, 500, true), b.update(20*target, 500, true)
	if !(lb < la && la < g.limit) {
		t.Fatalf("from %v: delay 1.5x target -> %v, 20x -> %v: want both lower, 20x lowest", g.limit, la, lb)
	}
	for range 1000 {
		g.update(time.Second, 500, true)
	}
	if g.limit != g.min {
		t.Fatalf("limit %v after a long overload, want the min %v", g.limit, g.min)
	}
}

// TestCPUShed drives the shed share's arithmetic: a busy CPU with no
// queue sheds nothing however long; a queue sheds nothing before a whole
// onset window, so a burst shorter than that never sheds; a backlog makes
// p climb, faster the longer it lasts, to maxShed at most; p comes down
// as soon as the queue is gone, even with the CPU still busy (a node just
// at its capacity, which a burst set shedding, must come back to shedding
// nothing rather than hold its CPU below what the load needs), and climbs
// again by one step when the queue returns.
func TestCPUShed(t *testing.T) {
	var c cpuShed
	for range 1000 {
		if p := c.update(true, false); p != 0 {
			t.Fatalf("busy, no queue: p %v, want 0", p)
		}
	}
	for range 3 {
		for i := range onset - 1 {
			if p := c.update(true, true); p != 0 {
				t.Fatalf("behind %d samples, under the onset %d: p %v, want 0", i+1, onset, p)
			}
		}
		c.update(true, false) // a burst's end: the run starts over
	}
	for range onset - 1 {
		c.update(true, true)
	}
	p0 := c.update(true, true)
	p1 := c.update(true, true)
	p2 := c.update(true, true)
	if !(p0 > 0 && p1-p0 > p0 && p2-p1 > p1-p0) {
		t.Fatalf("behind a whole onset and on: p %v, %v, %v: want it shedding, climbing faster", p0, p1, p2)
	}
	for range 100 {
		c.update(true, true)
	}
	if c.p != maxShed {
		t.Fatalf("behind long: p %v, want %v", c.p, maxShed)
	}
	for range 20 {
		c.update(true, false)
	}
	a := c.p
	if b := c.update(true, true); !(math.Abs(a-(maxShed-20*shedDown)) < 1e-9 && math.Abs(b-(a+shedStep)) < 1e-9) {
		t.Fatalf("queue gone 20 samples, CPU busy, then a queue again: p %v then %v, want %v then %v",
			a, b, maxShed-20*shedDown, a+shedStep)
	}
	for range 1000 {
		c.update(true, false)
	}
	if c.p != 0 {
		t.Fatalf("p %v after long without a queue, the CPU busy all along: want 0", c.p)
	}
	for range onset {
		c.update(true, true)
	}
	for range 1000 {
		c.update(false, true)
	}
	if c.p != 0 {
		t.Fatalf("p %v after long slack: want 0", c.p)
	}
}

// TestOverloadForgetsAfterQuiet: samples run only as requests come, so a
// shed share left from a burst must come down with the time since, not
// stand until traffic returns (a node quiet for ten seconds after 2x shed
// 6% of a 1x point, all in its first second).
func TestOverloadForgetsAfterQuiet(t *testing.T) {
	// The samples read the runtime's real scheduling delay: on a busy
	// machine it passes the default target_delay, and the limit shrank
	// from the initial one at the sample after the quiet spell.
	o, cfg := newOverload(OverloadConfig{TargetDelay: Duration(time.Hour)})
	now := sinceStart()
	o.sample(now)
	o.c.p = 0.9
	o.g.limit = o.g.min // cut by the overload
	o.sample(now + int64(2*time.Second))
	if p := o.shedP.Load(); p != 0 {
		t.Fatalf("shed share %v after 2 s without a request, want 0", float64(p)/(1<<32))
	}
	// Nor may the limit stay cut: it grows only while in use, and the next
	// burst on the idle node was shed while it grew back.
	if l := o.limit.Load(); l < int64(cfg.InitialLimit) {
		t.Fatalf("concurrency limit %d after 2 s without a request, want the initial %d", l, cfg.InitialLimit)
	}
	// A load ended behind, shed for or not yet; after a second without
	// a request the node is behind again: a new overload, which sheds only
	// after its own onset.
	for _, c := range []cpuShed{{p: 0.9, run: onset - 1, climb: 5}, {run: onset - 1}} {
		o.c = c
		if p := o.shedFor(0.4, 2*o.g.target, 2*time.Second); p != 0 {
			t.Fatalf("from %+v, 2 s without a request: shed share %v at the first sample behind, want 0 until the onset", c, p)
		}
	}
}

// TestOverloadStarved: a node that another process starves (its own use
// of the CPU under half, work waiting for one past target_delay) sheds
// once that has lasted stolenFor and then the onset window, though its
// samples run 50 ms apart: the samples they skipped count down the share,
// not the samples in a row behind (a busy machine kept a node that
// sampled every 20 ms from ever shedding).
func TestOverloadStarved(t *testing.T) {
	const gap = 50 * time.Millisecond
	o, _ := newOverload(OverloadConfig{})
	first := int(stolenFor/gap) + onset - 1 // the sample shedding starts at, counting from 1
	for i := 1; i <= 2*first; i++ {
		// More than the first step (0.02) comes down in the samples
		// skipped, and the climb must still win.
		p := o.shedFor(0.4, 2*o.g.target, gap)
		if i >= first && p == 0 {
			t.Fatalf("no shedding after %d samples starved, %v apart", i, gap)
		}
		if i < first && p != 0 {
			t.Fatalf("shedding at sample %d, before %v starved and the onset after", i, stolenFor)
		}
	}
}

// TestOverloadSeesCPU: goroutines that keep every CPU busy (so that work
// waits for one past target_delay, or the process uses all of its CPUs)
// make the node shed for the CPU after the onset window; once they stop,
// it stops.
func TestOverloadSeesCPU(t *testing.T) {
	o, _ := newOverload(OverloadConfig{TargetDelay: Duration(time.Millisecond)})
	o.sample(sinceStart())
	if o.shedP.Load() != 0 {
		t.Fatal("shedding at start")
	}

	stop := testutil.SpinCPUs(t)
	testutil.Eventually(t, 20*time.Second, "shedding for a busy CPU", func() bool {
		o.sample(sinceStart())
		return o.shedP.Load() > 0
	})
	if u := math.Float64frombits(o.util.Load()); u <= 0 {
		t.Errorf("CPU utilisation %v with every CPU spinning, want it measured", u)
	}
	stop()
	testutil.Eventually(t, 20*time.Second, "no shedding once the CPUs are free", func() bool {
		o.sample(sinceStart())
		return o.shedP.Load() == 0
	})
}

func TestOverloadConfig(t *testing.T) {
	const base = "origins: {app: {addr: 127.0.0.1:1, key: \"1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}}\nroutes: [{path: /, origin: app}]\n"
	cfg, err := ParseConfig([]byte(base), "")
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Overload; o.Off || o.MinLimit != 32 || o.MaxLimit != 10_000 || o.InitialLimit != 1000 ||
		o.TargetDelay != Duration(5*time.Millisecond) || o.QueueDelay != Duration(500*time.Microsecond) ||
		o.ReadyHold != Duration(5*time.Second) {
		t.Fatalf("defaults: %+v", o)
	}
	for _, bad := range []string{
		"overload: {min_limit: 100, max_limit: 10}",
		"overload: {initial_limit: 5, min_limit: 10}",
		"overload: {initial_limit: 50000}",
	} {
		if _, err := ParseConfig([]byte(base+bad), ""); err == nil || !strings.Contains(err.Error(), "overload") {
			t.Errorf("%s: err %v, want one about overload", bad, err)
		}
	}
	if _, err := ParseConfig([]byte(base+"overload: {target: 5ms}"), ""); err == nil {
		t.Error("a misspelt field was accepted")
	}
}

// TestReadyHoldFromTheShed: sheds no sample saw (the traffic stopped)
// hold /ready for ready_hold from when they came, not from the first poll
// after them, which held it a whole ready_hold longer.
func TestReadyHoldFromTheShed(t *testing.T) {
	o, _ := newOverload(OverloadConfig{ReadyHold: Duration(time.Second)})
	o.sample(sinceStart())
	// The last sample 2 s ago, a shed just after it, no request since.
	o.next.Add(-int64(2 * time.Second))
	o.shedN.Add(1)
	if why, shedding := o.shedding(); shedding {
		t.Fatalf("/ready 2 s after the last shed (ready_hold 1 s): %q", why)
	}
}

// newOverload is an overload state set up from cfg, with its defaults,
// which it returns too.
func newOverload(cfg OverloadConfig) (*overload, OverloadConfig) {
	var o overload
	cfg.setDefaults()
	o.init(&cfg, newMetrics(prometheus.NewRegistry()), prometheus.NewRegistry())
	return &o, cfg
}

// TestOverloadStallAtCapacity replays the samples of a node at 1x that
// another process starved for 70 ms (its CPU use a fifth to a half, work
// waiting 21 ms), then caught up at full CPU, its wait falling from 15 ms
// to 2 (deploy/bench/overload.sh, 64 KiB hits, traced). Counted as
// behind, the catching up took p to 0.98 just as the backlog was gone,
// and the node shed 42% of that point; a backlog draining must not make
// it climb. Nor must the stall itself, shorter than stolenFor: counted as
// behind, its 80 ms of starved samples met the onset, and the share
// climbed to 0.2. (A rule that held the share while the wait fell by a
// quarter from sample to sample answered the first; it also held a
// growing backlog's climb, its wait zigzagging, and slowed the onset at
// 2x: the catching up alone is a few samples, short of the onset.)
func TestOverloadStallAtCapacity(t *testing.T) {
	o, _ := newOverload(OverloadConfig{})
	samples := []struct {
		util  float64
		delay time.Duration // microseconds
		gap   time.Duration // milliseconds
	}{
		{0.968, 917, 5}, {0.942, 458, 5}, {0.490, 3145, 5}, {0.799, 1310, 5}, {0.711, 786, 5},
		{0.431, 2621, 7}, {0.574, 5242, 5}, {0.280, 6291, 7}, {0.760, 20971, 5}, {0.437, 7340, 8},
		{0.565, 20971, 5}, {0.608, 20971, 5}, {0.538, 16777, 5}, {0.350, 20971, 7}, {0.196, 20971, 6},
		{0.901, 20971, 5}, {0.637, 20971, 5}, {0.354, 20971, 6}, {0.947, 20971, 5}, {1.000, 14680, 5},
		{1.000, 7340, 5}, {0.926, 5242, 5}, {0.954, 3670, 5}, {1.000, 3145, 5}, {0.941, 1835, 5},
		{0.728, 57, 5}, {0.298, 114, 7}, {0.492, 1310, 5},
	}
	for i, s := range samples {
		if p := o.shedFor(s.util, s.delay*time.Microsecond, s.gap*time.Millisecond); p != 0 {
			t.Fatalf("sample %d of a stall and its catching up: shed share %.2f, want none", i, p)
		}
	}
	// A backlog that holds, its wait swinging from sample to sample as
	// batches do (10 ms, 5, 10, ...), climbs.
	o, _ = newOverload(OverloadConfig{})
	var p float64
	for i := range 4 * onset {
		p = o.shedFor(1, time.Duration(5+5*(i%2))*time.Millisecond, sampleEvery)
	}
	if p < 0.5 {
		t.Fatalf("shed share %.2f after %d samples behind, the wait swinging 5-10 ms: want it climbing", p, 4*onset)
	}
}

// TestOriginLimitFastFailures: an origin past its latency target whose
// other exchanges fail at once (refused, reset) is still past it. Counted
// as latencies, the failures brought the window's mean under the target
// and the limit grew; failures that took the target or longer (a
// timeout) still count.
func TestOriginLimitFastFailures(t *testing.T) {
	const target = 10 * time.Millisecond
	cfg := &OverloadConfig{MinLimit: 2, MaxLimit: 1000, InitialLimit: 100}
	l := newOriginLimit("app", target, cfg, newMetrics(prometheus.NewRegistry()))
	window := func(answered, failed time.Duration, failures int) {
		l.next.Store(math.MaxInt64) // no update until the window is over
		for range 50 {
			l.inflight.Add(1)
		}
		for range 50 - failures {
			l.release(answered, nil)
		}
		for range failures {
			l.release(failed, errors.New("connection refused"))
		}
		l.mu.Lock()
		for range 50 {
			l.inflight.Add(1) // in use, as the next window's exchanges
		}
		l.update(sinceStart())
		l.inflight.Add(-50)
		l.mu.Unlock()
	}
	for i := range 10 {
		was := l.limit.Load()
		window(4*target, 100*time.Microsecond, 40) // 10 answers at 40 ms, 40 refusals in 0.1 ms
		if got := l.limit.Load(); got >= was {
			t.Fatalf("window %d: answers at 4x the target, the rest refused at once: limit %d after %d, want it lower", i, got, was)
		}
	}
	low := l.limit.Load()
	for range 10 {
		window(target/2, 2*target, 25) // answers under target, timeouts past it
	}
	if got := l.limit.Load(); got >= low {
		t.Fatalf("timeouts at twice the target: limit %d, want under %d", got, low)
	}
	for range 30 {
		window(target/2, 0, 0)
	}
	if got := l.limit.Load(); got <= low {
		t.Fatalf("answers under target, in use: limit %d, want it grown from %d", got, low)
	}
}
