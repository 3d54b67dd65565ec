// Overload: the node's admission control on the request path.

package edge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// The node bounds the work it takes on, so that what it admits is
// answered within a bounded time however much more is offered, and what it
// does not admit gets a 503 at once rather than a place in a queue. Two
// terms decide, each with its own signal.
//
// The CPU. A cache hit costs the node tens of microseconds of CPU and
// waits on nothing, so under CPU overload the requests in the handler
// stay at about one per CPU: the queue is elsewhere. Connections whose
// request has arrived wait in the kernel and the netpoller, and a client
// that holds a fixed pool of connections (a load balancer, loadgen's 256)
// keeps the rest of its backlog itself, where the node never sees it.
// What the node sees is its CPU busy and, while it is behind, a short
// queue of its own: every sampleEvery it reads the process's CPU time
// (getrusage) against the wall time times GOMAXPROCS, which follows
// taskset and the cgroup quota, and the scheduling delay (the runtime's
// /sched/latencies:seconds, its p90 since the last sample). Busy alone
// is not behind: a node that keeps up with 57k hits/s on one core ran
// at 0.98-0.99 of it for tens of ms at a time with a delay of 0.1-0.16
// ms; behind 256 connections at twice that the delay was 1.3-2 ms. So
// the node sheds a share p of requests, at random, once it has been
// behind (utilisation at least saturated, delay at least queue_delay)
// for a whole onset window: a burst (256 new connections at once) lasts
// a few samples, a backlog for good. Once shedding, p climbs while the
// node is still behind, by shedStep times the samples it has been behind
// in a row (fast from 0, a step at a time near the level), and comes down
// by shedDown at each sample without a queue, the CPU busy or not. So p
// settles just above the least share that keeps the queue from building,
// and goes back to 0 once the offered load does (samples that a quiet
// spell skipped count as samples without a queue: a share left from a
// burst must not meet the next load). Holding the CPU below a fixed
// share instead (the first controller here) trapped a node just at its
// capacity: a burst set it shedding, and shedding held it below what the
// load needed, so it never stopped (26-35% shed at 1x).
//
// A 503 costs about 5 us of CPU against about 13 for a 1 KiB hit, near a
// bare fasthttp server's answer, so at twice capacity some 85% of such
// hits are shed (two thirds of 64 KiB ones); past about 3x even the 503s
// fill the CPU (deploy/bench/overload.sh measures both). A margin kept
// far past capacity, so that a 503 waits behind no queue (a queue of a
// quarter of queue_delay counting while the offered load, at a cost per
// request learnt while nothing is shed, would take 1.25-1.5 times the
// CPU), brought their p99 at 2x to 0.6-1.3 ms in eight runs of ten with
// 64 KiB hits (from 1.6-1.9), but admitted a quarter fewer requests
// (0.41-0.48 of capacity against 0.55-0.63): not kept. Nor were a lower
// queue_delay while shedding (125 us: 0.77 ms at 2x, but 10% shed at 1x)
// and a share that falls faster the longer no queue lasts (it swung:
// 3.2 ms).
//
// Why a 503 waits at all: while the CPU is pinned the runtime reads the
// network only when a P runs out of goroutines to run (or from sysmon,
// every 10 ms), so connections are read in batches, and a request to shed
// waits for the admitted work of the batch before it. Parking what is
// admitted at a gate that let a round of about 300 us in per read (its
// goroutine made ready only by a netpoll, through a pipe) was tried, A/B
// against this controller in the same minutes at 2x with 64 KiB hits:
// gated from the onset, the 503s' settled p99 was 1.35-1.9 ms against
// 2.5-28, but the admitted p99 over a whole point 20-58 ms against 14-24
// (the onset's backlog queued at the gate); gated once shedding had
// lasted 500 ms, 2.3-3.3 against 3.3-3.8, the admitted p99 24-32 ms
// against 25-56 over a point and 6.8-14 against 3.3-4.4 settled. Not
// kept: not under 1 ms either, for a few hundred lines of scheduling
// machinery.
//
// A delay over target_delay counts as pinned and queued both, once it has
// lasted stolenFor: work waits for a CPU that this process's own use does
// not explain (a noisy neighbour, the origin service on the same core).
// Only once it has lasted: a stall of tens of ms (another process, the
// hypervisor) met the onset by itself, and a node at its capacity shed
// after each one, though it catches up in a few ms once it runs again.
//
// Requests in flight. A request that waits on an origin holds memory and
// a connection but no CPU; the concurrency limit bounds them. It moves
// by a gradient on the scheduling delay, as Netflix's
// Gradient2 does with latency: while the delay is over target_delay it
// shrinks to target/delay of itself (at most by half, smoothed); while
// under, it grows by its square root when it was in use (a request shed,
// or at least half of it taken), so an idle node does not grow it without
// bound, and a quiet second brings it back to at least
// initial_limit. It stays within min_limit and max_limit. A goroutine made ready
// runs at once while a CPU is free, so the delay's no-load value is
// microseconds: no measured baseline is needed (Gradient2's long-window
// latency drifts up under a sustained overload until it looks normal).
//
// Admission is a couple of atomics and, while p is above 0, a random
// number from the runtime's per-thread generator (math/rand/v2): no
// lock, no allocation. The sample runs in whichever request finds it due.
//
// Why not a library: github.com/platinummonkey/go-concurrency-limits, the
// Go port of Netflix's, is not served by the module proxy this project
// builds with (403), and it follows Netflix's API, where each Acquire
// hands the request a listener to report its latency through: a value
// per request on a path that allocates nothing, for a signal (a request's
// latency) that does not rise here.
//
// What is never shed: the admin listener (health, readiness, metrics) and
// the tier listener's asks from other POPs are other servers that do not
// pass here. An ask serves many clients at the asker, which would go to
// the origin if it were refused, so its CPU counts and clients' requests
// are shed in its place. A WebSocket handshake is a request like any
// other; a tunnel once open is not in flight here (its bound is
// limits.websocket).

// sampleEvery is how often the limit and p move. Shorter reacts faster;
// each sample costs a few microseconds.
const sampleEvery = 5 * time.Millisecond

// stolenFor is how long work must wait past target_delay, the CPU not
// pinned by the node itself, before that counts as behind: longer than
// the stalls a busy shared machine has (a trace showed 70 ms), short
// enough that a node starved for good sheds within a quarter second.
const stolenFor = 150 * time.Millisecond

// quietFor is the spell without a sample (without a request) after which
// the node is no longer behind, whatever it was (cpuShed.idle): far
// longer than a starved node's samples come late.
const quietFor = time.Second

// smoothing is the share of a sample's gradient that reaches the limit.
const smoothing = 0.2

// delayQuantile is the scheduling delay the limit follows, of the
// goroutines scheduled since the last sample: most of them, not the few
// that met a GC pause.
const delayQuantile = 0.9

// The shed share's controller (see above). saturated is the utilisation
// that counts as pinned: the sample's own jitter keeps a busy window from
// reading exactly 1. onset is the samples in a row behind before shedding
// starts. shedStep is p's step up, shedDown its step down: a quarter, so
// p comes down slowly (each 0.01 of it at twice capacity is 2% of the
// node's CPU) and a backlog once drained does not build again at once.
// maxShed leaves a trickle admitted, so a node offered more than it can
// even refuse still serves some.
const (
	saturated = 0.93
	onset     = 10 // 50 ms
	shedStep  = 0.02
	shedDown  = 0.005
	maxShed   = 0.98
)

// The shed answer, pre-rendered and never copied (SetBodyRaw: nothing
// writes to a response's body after admit). Retry-After is in seconds:
// soon, since a node sheds for milliseconds to seconds.
var (
	retryAfterKey = []byte("Retry-After")
	retryAfter    = []byte("1")
	shedType      = []byte("text/plain; charset=utf-8")
	shedBody      = []byte("503 Service Unavailable: overloaded, retry shortly\n")
)

// Shed reasons, the label of wedge_edge_shed_total.
const (
	// reasonInFlight: the requests in the handler reached the limit (they
	// wait on origins, or the limit came down).
	reasonInFlight = iota
	// reasonCPU: the CPU is pinned and the request drew a shed.
	reasonCPU
)

// overload is the node's admission state (see above).
type overload struct {
	off      bool
	hold     time.Duration // /ready says overloaded this long after a shed
	inflight atomic.Int64  // requests in the handler
	limit    atomic.Int64
	shedP    atomic.Uint32 // p in units of 2^-32: a request is shed when a random uint32 is below it
	next     atomic.Int64  // sinceStart of the next sample
	shedN    atomic.Uint64
	shed     [2]prometheus.Counter

	// The sampler's, one at a time (mu.TryLock): the limit's arithmetic,
	// the runtime's figures and the last window's.
	mu         sync.Mutex
	g          gradient
	c          cpuShed
	queueDelay time.Duration
	samples    []rtmetrics.Sample
	prev       []uint64 // the delay histogram's counts at the last sample
	cpuAt      time.Duration
	wallAt     int64
	delay      atomic.Int64
	util       atomic.Uint64 // math.Float64bits of the last window's utilisation
	shedSeen   uint64
	lastShed   atomic.Int64 // sinceStart of the last sample that saw a shed; 0: none
}

// start is the origin of the node's sample clock: monotonic, and cheaper
// to compare as an integer than time.Time.
var start = time.Now()

func sinceStart() int64 { return int64(time.Since(start)) }

// init sets the limit from cfg and registers its series.
func (o *overload) init(cfg *OverloadConfig, m *metrics, reg prometheus.Registerer) {
	o.off, o.hold, o.queueDelay = cfg.Off, time.Duration(cfg.ReadyHold), time.Duration(cfg.QueueDelay)
	o.g = gradient{min: float64(cfg.MinLimit), max: float64(cfg.MaxLimit), limit: float64(cfg.InitialLimit),
		initial: float64(cfg.InitialLimit), target: time.Duration(cfg.TargetDelay)}
	o.limit.Store(int64(cfg.InitialLimit))
	o.shed = [2]prometheus.Counter{m.shed.WithLabelValues("in_flight"), m.shed.WithLabelValues("cpu")}
	o.samples = []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}
	const ns = "wedge_edge"
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "in_flight",
			Help: "Requests in the handler (tier asks and open WebSocket tunnels not counted)."},
			func() float64 { return float64(o.inflight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "concurrency_limit",
			Help: "The adaptive concurrency limit: requests in flight admitted at most (0: overload protection off)."},
			func() float64 { return float64(o.currentLimit()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "utilization",
			Help: "Requests in flight against the concurrency limit (1: shedding for in_flight)."},
			o.utilization),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "cpu_utilization",
			Help: "The process's CPU time against GOMAXPROCS CPUs over the last sample (5 ms)."},
			func() float64 { return math.Float64frombits(o.util.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "shed_ratio",
			Help: "The share of requests shed at random while the CPU is pinned (reason cpu)."},
			func() float64 { return float64(o.shedP.Load()) / (1 << 32) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "scheduling_delay_seconds",
			Help: "How long goroutines waited for a CPU at the last sample (their 90th percentile): the signal the limit follows."},
			func() float64 { return time.Duration(o.delay.Load()).Seconds() }))
}

// admit counts the request in, or answers it 503 and reports false.
// Admitted, the caller calls done when the request is over.
func (o *overload) admit(ctx *fasthttp.RequestCtx) bool {
	if o.off {
		return true
	}
	if now := sinceStart(); now >= o.next.Load() && o.mu.TryLock() {
		o.sample(now)
		o.mu.Unlock()
	}
	reason := reasonCPU
	if p := o.shedP.Load(); p == 0 || rand.Uint32() >= p {
		n := o.inflight.Add(1)
		if n <= o.limit.Load() {
			return true
		}
		o.inflight.Add(-1)
		reason = reasonInFlight
	}
	o.refuse(ctx, reason)
	return false
}

// early answers 503 and reports true if admit would shed the request
// now, without counting it in: for an upload that asked 100-continue,
// so that a node that sheds it says so before the client sends its body,
// not after taking it whole. One that passes is judged again by admit.
func (o *overload) early(ctx *fasthttp.RequestCtx) bool {
	if o.off {
		return false
	}
	reason := reasonCPU
	if p := o.shedP.Load(); p == 0 || rand.Uint32() >= p {
		if o.inflight.Load() < o.limit.Load() {
			return false
		}
		reason = reasonInFlight
	}
	o.refuse(ctx, reason)
	return true
}

// refuse counts a shed request and answers it.
func (o *overload) refuse(ctx *fasthttp.RequestCtx, reason int) {
	o.shed[reason].Inc()
	o.shedN.Add(1)
	// Written before anything else runs: no plugin, no origin, and from
	// static bytes, since at twice capacity most of the CPU goes to 503s.
	// The connection stays open: closing it would cost the client a new
	// handshake and the node an accept and a goroutine for the retry,
	// more than this answer costs.
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.Response.Header.SetCanonical(retryAfterKey, retryAfter)
	ctx.Response.Header.SetContentTypeBytes(shedType)
	ctx.Response.SetBodyRaw(shedBody)
}

// done counts an admitted request out.
func (o *overload) done() {
	if !o.off {
		o.inflight.Add(-1)
	}
}

// sample reads the runtime's figures and the process's CPU time and moves
// the limit and p; under mu.
func (o *overload) sample(now int64) {
	// A quiet spell (no request, so no sample) ends what an overload left:
	// a limit cut to its minimum grows only while in use, and the next
	// burst on an idle node was shed while it grew back.
	due := o.next.Load()
	if last := due - int64(sampleEvery); last > 0 && now-last >= int64(quietFor) {
		o.g.limit = max(o.g.limit, o.g.initial)
	}
	o.next.Store(now + int64(sampleEvery))
	rtmetrics.Read(o.samples)
	delay := o.windowDelay()
	shedN := o.shedN.Load()
	shed := shedN != o.shedSeen
	o.shedSeen = shedN
	if shed {
		// Dated as shedding dates them: before this sample was due (a
		// request after that samples before it is shed), not at this
		// sample, which after a quiet spell held /ready at 503 for a whole
		// ready_hold from a request long after the last shed.
		o.lastShed.Store(min(now, due))
	}
	o.limit.Store(int64(o.g.update(delay, o.inflight.Load(), shed)))
	o.delay.Store(int64(delay))

	cpu, ok := processCPU()
	if !ok {
		return // no CPU time on this platform: the limit alone
	}
	util, gap := 0.0, time.Duration(0)
	if o.wallAt != 0 && now > o.wallAt {
		gap = time.Duration(now - o.wallAt)
		util = float64(cpu-o.cpuAt) / float64(gap) / float64(runtime.GOMAXPROCS(0))
	}
	o.cpuAt, o.wallAt = cpu, now
	o.util.Store(math.Float64bits(util))
	p := o.shedFor(util, delay, gap)
	o.shedP.Store(uint32(p * (1 << 32)))
}

// shedFor moves p for a sample whose window, gap long since the last
// sample, saw the utilisation util and the scheduling delay delay, and
// returns it.
func (o *overload) shedFor(util float64, delay, gap time.Duration) float64 {
	// Samples run only as requests come: the ones a quiet spell skipped
	// (the CPU mostly idle, not merely too busy to sample) saw no queue.
	if util < 0.5 {
		o.c.idle(int(gap/sampleEvery) - 1)
	}
	// A delay past target_delay is work waiting for a CPU that this
	// process's own use does not explain: another process has it, for
	// good once it has for stolenFor (a stall is shorter).
	if delay > o.g.target {
		o.c.stolen += gap
	} else {
		o.c.stolen = 0
	}
	stolen := o.c.stolen >= stolenFor
	return o.c.update(util >= saturated || stolen, delay >= o.queueDelay || stolen)
}

// windowDelay is the delayQuantile of the scheduling delays recorded
// since the last sample (the histogram is cumulative). The runtime records
// one goroutine switch in eight, so a quiet window can hold none: the last
// window's delay stands.
func (o *overload) windowDelay() time.Duration {
	s := o.samples[0].Value
	if s.Kind() != rtmetrics.KindFloat64Histogram {
		return 0
	}
	h := s.Float64Histogram()
	if len(o.prev) != len(h.Counts) {
		o.prev = make([]uint64, len(h.Counts)) // the first sample
	}
	var total uint64
	for i, c := range h.Counts {
		total += c - o.prev[i]
	}
	d := time.Duration(o.delay.Load())
	if total > 0 {
		want, seen := uint64(math.Ceil(delayQuantile*float64(total))), uint64(0)
		for i, c := range h.Counts {
			if seen += c - o.prev[i]; seen >= want {
				// The bucket's upper bound, or its lower one for the last.
				b := h.Buckets[i+1]
				if math.IsInf(b, 1) {
					b = h.Buckets[i]
				}
				d = time.Duration(b * float64(time.Second))
				break
			}
		}
	}
	copy(o.prev, h.Counts)
	return d
}

// currentLimit is the limit, 0 when off.
func (o *overload) currentLimit() int64 {
	if o.off {
		return 0
	}
	return o.limit.Load()
}

func (o *overload) utilization() float64 {
	lim := o.currentLimit()
	if lim == 0 {
		return 0
	}
	return float64(o.inflight.Load()) / float64(lim)
}

// shedding reports whether the node shed a request within the hold, and
// what /ready says about it.
func (o *overload) shedding() (string, bool) {
	if o.off {
		return "", false
	}
	now := sinceStart()
	o.mu.Lock()
	// Sheds no sample has seen yet: traffic that stopped runs none. They
	// came before the next sample was due (a request after that samples),
	// not at this call: a poll long after would hold /ready at 503 for a
	// whole ready_hold from the poll.
	if n := o.shedN.Load(); n != o.shedSeen {
		o.shedSeen = n
		o.lastShed.Store(min(now, o.next.Load()))
	}
	o.mu.Unlock()
	if last := o.lastShed.Load(); last == 0 || now-last >= int64(o.hold) {
		return "", false
	}
	return "overloaded: shedding requests (concurrency limit " + strconv.FormatInt(o.limit.Load(), 10) +
		", " + strconv.FormatInt(o.inflight.Load(), 10) + " in flight; shedding " +
		strconv.FormatFloat(float64(o.shedP.Load())/(1<<32)*100, 'f', 0, 64) + "% for the CPU)", true
}

// cpuShed is the shed share's arithmetic (see above), apart from the
// clock and getrusage so that a test can drive it.
type cpuShed struct {
	p      float64
	run    int           // samples in a row behind, before shedding
	climb  int           // samples in a row pinned, while shedding
	stolen time.Duration // how long the delay has been past target_delay (shedFor's)
}

// update moves p for one sample and returns it: pinned whether the CPU
// was busy all of it, queued whether work waited for it as well.
func (c *cpuShed) update(pinned, queued bool) float64 {
	switch {
	case !pinned || !queued:
		c.run, c.climb = 0, 0
		c.p = max(0, c.p-shedDown)
	case c.p == 0 && c.run+1 < onset:
		c.run++
	default:
		c.climb++
		c.p = min(maxShed, c.p+shedStep*float64(c.climb))
	}
	return c.p
}

// idle counts n samples that saw no queue (none ran: no request came)
// against p, and ends the overload (the samples in a row behind, the
// climb) when the spell lasted quietFor: the next starts from a new
// onset. A shorter spell leaves them for the next update to judge: a
// node that another process starves samples late too, its CPU use under
// half, and ending its overload at each late sample kept it from ever
// shedding (at 0, or at 0.02 the first step, before the next decay).
func (c *cpuShed) idle(n int) {
	if n <= 0 {
		return
	}
	c.p = max(0, c.p-shedDown*float64(n))
	if n >= int(quietFor/sampleEvery) {
		c.run, c.climb = 0, 0
	}
}

// gradient is the limit's arithmetic, apart from the clock and the
// runtime so that a test can drive it.
type gradient struct {
	min, max, limit float64
	initial         float64 // what a quiet spell brings a lower limit back to
	target          time.Duration
}

// update moves the limit for one sample: delay is the scheduling delay,
// load the requests in flight plus the goroutines waiting for a CPU, shed
// whether a request was shed since the last sample. It returns the limit,
// rounded.
func (g *gradient) update(delay time.Duration, load int64, shed bool) float64 {
	grad := 1.0
	if delay > g.target {
		grad = max(0.5, float64(g.target)/float64(delay))
	}
	next := g.limit * grad
	if grad == 1 && (shed || 2*float64(load) >= g.limit) {
		next += math.Sqrt(g.limit)
	}
	g.limit = min(g.max, max(g.min, g.limit+(next-g.limit)*smoothing))
	return math.Round(g.limit)
}

// OverloadConfig is the adaptive concurrency limit (edge/overload.go):
// on by default, e.g. overload: {min_limit: 32, max_limit: 10000,
// target_delay: 5ms}; overload: {off: true} turns it off.
type OverloadConfig struct {
	// Off admits every request, however loaded the node.
	Off bool `yaml:"off"`
	// MinLimit and MaxLimit bound the limit: requests in flight, plus
	// goroutines waiting for a CPU while the node is behind. Defaults 32
	// and 10,000 (max_limit bounds what waits on origins too).
	MinLimit int `yaml:"min_limit"`
	MaxLimit int `yaml:"max_limit"`
	// InitialLimit is the limit at start. Default 1,000, within the bounds.
	InitialLimit int `yaml:"initial_limit"`
	// TargetDelay is the scheduling delay (how long work waits for a CPU)
	// past which the limit shrinks. Default 5ms.
	TargetDelay Duration `yaml:"target_delay"`
	// QueueDelay is the scheduling delay that, with the CPU busy, says
	// work is queueing (the node is behind, not just busy). Default
	// 500us: a node that keeps up at 99% of its CPU measured 0.1-0.16 ms,
	// one behind 256 connections 1.3-2 ms. Fewer client connections
	// hold a shorter queue at the node, and want it lower.
	QueueDelay Duration `yaml:"queue_delay"`
	// ReadyHold is how long /ready keeps answering 503 after the last
	// request shed, so a load balancer does not flap. Default 5s.
	ReadyHold Duration `yaml:"ready_hold"`
}

func (c *OverloadConfig) setDefaults() {
	if c.MinLimit <= 0 {
		c.MinLimit = 32
	}
	if c.MaxLimit <= 0 {
		c.MaxLimit = max(10_000, c.MinLimit)
	}
	if c.InitialLimit <= 0 {
		c.InitialLimit = min(max(1000, c.MinLimit), c.MaxLimit)
	}
	if c.TargetDelay <= 0 {
		c.TargetDelay = Duration(5 * time.Millisecond)
	}
	if c.QueueDelay <= 0 {
		c.QueueDelay = Duration(500 * time.Microsecond)
	}
	if c.ReadyHold <= 0 {
		c.ReadyHold = Duration(5 * time.Second)
	}
}

func (c *OverloadConfig) validate() error {
	if c.MinLimit > c.MaxLimit || c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit {
		return fmt.Errorf("overload: want min_limit <= initial_limit <= max_limit, have %d, %d, %d",
			c.MinLimit, c.InitialLimit, c.MaxLimit)
	}
	return nil
}
