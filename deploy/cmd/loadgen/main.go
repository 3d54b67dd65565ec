// Command loadgen is an open-loop HTTP load generator for the benchmarks on
// 127.0.0.1: it sends requests at a fixed target rate, whatever the server's
// latency, and measures each response from the moment its request was due,
// so a server that stalls is charged for the queue it builds (wrk, a closed
// loop, slows down with the server and hides that). It can first open and
// hold idle keep-alive connections, to measure what they cost the server.
//
//	loadgen -url http://127.0.0.1:18105/bench -H 'Host: full' -rate 20000 -d 10s
//	loadgen -url http://127.0.0.1:18105/bench -hold 19000 -pid 1234 -rate 10000 -d 10s
//
// Every request due counts in the latency percentiles, failed ones too,
// with the time they took to fail: leaving them out would make an
// overloaded server's tail look better than a healthy one's. A request the
// generator could not start on time (every connection busy) counts from its
// due time all the same, and is also counted as late. Before the first
// due time it opens its connections, one unmeasured request on each
// (-warm=false does not).
//
// It prints one line of key=value pairs (latencies in microseconds) for
// scripts to read: target_rate, sent, ok, wrong_status, errors (requests
// that got no response), achieved (responses per second), p50_us, p90_us,
// p99_us, p999_us and max_us over every request sent, late (requests
// started more than 1 ms after they were due), lag_max_us (the most any
// request started after its due time) and pace_late (requests the generator
// itself released more than 1 ms after they were due: a generator that
// cannot keep its schedule, not a slow server). For a server that sheds
// load, the answers are also counted and their latencies given apart by
// status: n_2xx, p50_2xx_us, p99_2xx_us, max_2xx_us for the 2xx, and the
// same with 503 for the 503s (a shed answer must be fast, an admitted one
// must not wait behind those shed); with -settle D, the same again for
// the requests due D or more after the start (n_2xx_settled,
// p99_2xx_settled_us, ..., p99_503_settled_us): a server that sheds
// takes some time to find its level, and the requests due meanwhile
// queue like any others. Every run is bounded: -n requests at
// most, -d of sending, and each response waits -timeout at most.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	target  *url.URL
	host    string
	headers [][2]string
	rate    float64
	n       int
	dur     time.Duration
	conns   int
	timeout time.Duration
	expect  int
	hold    int
	pid     int
	settle  time.Duration
	warm    bool
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	rawURL := fs.String("url", "", "the target, http://127.0.0.1:port/path (nothing else is allowed)")
	var hs headers
	fs.Var(&hs, "H", "a request header, 'Name: value' (repeatable; 'Host: x' sets the host)")
	rate := fs.Float64("rate", 0, "requests per second, sent on schedule (0: send none)")
	n := fs.Int("n", 1_000_000, "requests at most")
	dur := fs.Duration("d", 10*time.Second, "how long to send")
	conns := fs.Int("c", 256, "connections the paced requests may use at most")
	timeout := fs.Duration("timeout", 5*time.Second, "how long one response may take")
	expect := fs.Int("expect", 200, "the status every response should have")
	hold := fs.Int("hold", 0, "idle keep-alive connections to open and hold during the run")
	pid := fs.Int("pid", 0, "the server's process id, to report its resident memory")
	settle := fs.Duration("settle", 0, "also give the percentiles by status of the requests due this long after the start")
	warm := fs.Bool("warm", true, "open the -c connections first, with one unmeasured request each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := options{rate: *rate, n: *n, dur: *dur, conns: *conns, timeout: *timeout, expect: *expect, hold: *hold, pid: *pid, settle: *settle, warm: *warm}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return fmt.Errorf("-url %q: want http://127.0.0.1:port/path", *rawURL)
	}
	if u.Hostname() != "127.0.0.1" {
		return fmt.Errorf("-url %q: only 127.0.0.1 is allowed", *rawURL)
	}
	o.target, o.host = u, u.Host
	for _, h := range hs {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("-H %q: want 'Name: value'", h)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if strings.EqualFold(name, "host") {
			o.host = value
			continue
		}
		o.headers = append(o.headers, [2]string{name, value})
	}
	if o.rate < 0 || o.n <= 0 || o.dur <= 0 || o.conns <= 0 || (o.rate == 0 && o.hold == 0) {
		return errors.New("want -rate > 0 or -hold > 0, and positive -n, -d and -c")
	}
	raiseFileLimit()

	var out []string
	var held []*heldConn
	if o.hold > 0 {
		base := rss(o.pid)
		start := time.Now()
		var failed int
		held, failed = openHeld(o)
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		heldRSS := rss(o.pid)
		out = append(out, fmt.Sprintf("hold=%d held=%d hold_failed=%d open_ms=%d", o.hold, len(held), failed, time.Since(start).Milliseconds()))
		if o.pid > 0 {
			per := 0.0
			if len(held) > 0 {
				per = float64(heldRSS-base) / 1024 / float64(len(held))
			}
			out = append(out, fmt.Sprintf("rss_base_kib=%d rss_held_kib=%d kib_per_conn=%.2f", base>>10, heldRSS>>10, per))
		}
	}
	if o.rate > 0 {
		line, err := paced(o)
		if err != nil {
			return err
		}
		out = append(out, line)
		if o.pid > 0 {
			out = append(out, fmt.Sprintf("rss_after_kib=%d", rss(o.pid)>>10))
		}
	}
	if len(held) > 0 {
		// Held connections must still be served, not just still open.
		dead, sampled := 0, 0
		for i := 0; i < len(held); i += 100 {
			sampled++
			if held[i].roundTrip(o) != nil {
				dead++
			}
		}
		out = append(out, fmt.Sprintf("held_sampled=%d held_dead=%d", sampled, dead))
	}
	fmt.Fprintln(stdout, strings.Join(out, " "))
	return nil
}

// lateAfter is how long after its due time a request may start and still
// be on time: four of the dispatcher's ticks at most.
const lateAfter = time.Millisecond

// minTick is the dispatcher's shortest tick: past 4,000 requests/s it hands
// out several due times per wake-up. Waking per request costs the
// generator's one core: at 30k/s, 50 us ticks took twice the CPU of the old
// 1 ms batches (2.0-2.5 s against 1.2 s per 90k requests), which brings a
// generator near its core's limit and gives it a tail of its own; 200-400 us
// ticks took 1.1-1.2x, with batches a quarter of the old bursts.
const minTick = 250 * time.Microsecond

// paced sends requests on a fixed schedule and returns its summary line.
// The dispatcher hands out due times; a request's latency counts from its
// due time, so time spent waiting for a free connection is latency too.
func paced(o options) (string, error) {
	hc := &fasthttp.HostClient{Addr: o.target.Host, MaxConns: o.conns, MaxConnWaitTimeout: o.timeout,
		ReadTimeout: o.timeout, WriteTimeout: o.timeout, MaxIdleConnDuration: time.Minute}
	if o.warm {
		warmUp(hc, o)
	}
	interval := time.Duration(float64(time.Second) / o.rate)
	total := min(o.n, int(o.dur/interval)+1)
	start := time.Now().Add(10 * time.Millisecond)
	tk, err := newTicker(start, max(interval, minTick))
	if err != nil {
		return "", err
	}
	defer tk.stop()
	due := make(chan time.Time, min(total, 1<<16))
	var ok, wrong, failed, late atomic.Int64
	lats := make([][]time.Duration, o.conns)
	// The same latencies by class of answer, for a server that sheds.
	lats2xx, lats503 := make([][]time.Duration, o.conns), make([][]time.Duration, o.conns)
	// And those of the requests due once a server that sheds has settled.
	settled2xx, settled503 := make([][]time.Duration, o.conns), make([][]time.Duration, o.conns)
	lags := make([]time.Duration, o.conns)
	var last atomic.Int64
	var wg sync.WaitGroup
	for w := range o.conns {
		wg.Go(func() {
			req, resp := newRequest(o), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			mine := make([]time.Duration, 0, total/o.conns+16)
			var mine2xx, mine503, mineSettled2xx, mineSettled503 []time.Duration
			for t := range due {
				if lag := time.Since(t); lag > lateAfter {
					late.Add(1)
					lags[w] = max(lags[w], lag)
				}
				err := hc.DoTimeout(req, resp, o.timeout)
				now := time.Now()
				// A failure counts too, with the time it took to fail.
				mine = append(mine, now.Sub(t))
				if err == nil {
					settled := o.settle > 0 && t.Sub(start) >= o.settle
					switch st := resp.StatusCode(); {
					case st/100 == 2:
						mine2xx = append(mine2xx, now.Sub(t))
						if settled {
							mineSettled2xx = append(mineSettled2xx, now.Sub(t))
						}
					case st == fasthttp.StatusServiceUnavailable:
						mine503 = append(mine503, now.Sub(t))
						if settled {
							mineSettled503 = append(mineSettled503, now.Sub(t))
						}
					}
				}
				switch {
				case err != nil:
					failed.Add(1)
					continue
				case resp.StatusCode() != o.expect:
					wrong.Add(1)
				default:
					ok.Add(1)
				}
				last.Store(now.UnixNano())
			}
			lats[w], lats2xx[w], lats503[w] = mine, mine2xx, mine503
			settled2xx[w], settled503[w] = mineSettled2xx, mineSettled503
		})
	}
	// Hand out every due time that has come at each tick; the due times
	// themselves stay exact.
	sent, paceLate := 0, 0
	for sent < total {
		if _, err = tk.wait(); err != nil {
			break
		}
		now := time.Now()
		for sent < total {
			t := start.Add(time.Duration(sent) * interval)
			if t.After(now) {
				break
			}
			if now.Sub(t) > lateAfter {
				paceLate++
			}
			due <- t
			sent++
		}
	}
	close(due)
	wg.Wait()
	if err != nil {
		return "", err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	q := func(p float64) int64 { return quantile(all, p) }
	elapsed := time.Duration(last.Load() - start.UnixNano())
	achieved := 0.0
	if elapsed > 0 {
		achieved = float64(ok.Load()+wrong.Load()) / elapsed.Seconds()
	}
	line := fmt.Sprintf("target_rate=%.0f sent=%d ok=%d wrong_status=%d errors=%d achieved=%.0f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d late=%d lag_max_us=%d pace_late=%d",
		o.rate, sent, ok.Load(), wrong.Load(), failed.Load(), achieved, q(0.50), q(0.90), q(0.99), q(0.999), q(1),
		late.Load(), slices.Max(lags).Microseconds(), paceLate)
	type class struct {
		name string
		lats [][]time.Duration
	}
	classes := []class{{"2xx", lats2xx}, {"503", lats503}}
	if o.settle > 0 {
		classes = append(classes, class{"2xx_settled", settled2xx}, class{"503_settled", settled503})
	}
	for _, c := range classes {
		l := slices.Concat(c.lats...)
		slices.Sort(l)
		line += fmt.Sprintf(" n_%[1]s=%[2]d p50_%[1]s_us=%[3]d p99_%[1]s_us=%[4]d max_%[1]s_us=%[5]d",
			c.name, len(l), quantile(l, 0.50), quantile(l, 0.99), quantile(l, 1))
	}
	return line, nil
}

// newRequest is the request every paced send repeats.
func newRequest(o options) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(o.target.String())
	req.SetHost(o.host)
	for _, h := range o.headers {
		req.Header.Set(h[0], h[1])
	}
	return req
}

// warmUp sends one request per connection at once, unmeasured, so that the
// pool is open before the first due time: otherwise the first hundreds of
// milliseconds measure the generator's handshakes and the server's new
// goroutines (a bare fasthttp server at 139k/s: a 20 ms p99.9, all of it
// in the first second).
func warmUp(hc *fasthttp.HostClient, o options) {
	var wg sync.WaitGroup
	for range o.conns {
		wg.Go(func() {
			req, resp := newRequest(o), fasthttp.AcquireResponse()
			hc.DoTimeout(req, resp, o.timeout)
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		})
	}
	wg.Wait()
}

// quantile is the p quantile of the sorted latencies, in microseconds; 0
// for none.
func quantile(sorted []time.Duration, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Microseconds()
}

// heldConn is one idle keep-alive connection and its reader.
type heldConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *heldConn) roundTrip(o options) error {
	c.SetDeadline(time.Now().Add(o.timeout))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", o.target.RequestURI(), o.host)
	for _, h := range o.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != o.expect {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	c.SetDeadline(time.Time{})
	return err
}

// openHeld opens o.hold connections, each answering one request, from
// source addresses 127.0.0.2-5: one address has only ~28k ephemeral ports.
func openHeld(o options) ([]*heldConn, int) {
	var mu sync.Mutex
	var conns []*heldConn
	var failed atomic.Int64
	var wg sync.WaitGroup
	const groups = 8
	per := (o.hold + groups - 1) / groups
	for g := range groups {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+g/2))}, Timeout: o.timeout}
			for range max(0, min(per, o.hold-g*per)) {
				nc, err := d.Dial("tcp4", o.target.Host)
				if err != nil {
					failed.Add(1)
					continue
				}
				c := &heldConn{Conn: nc, r: bufio.NewReaderSize(nc, 1024)}
				if err := c.roundTrip(o); err != nil {
					nc.Close()
					failed.Add(1)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns, int(failed.Load())
}

var vmRSS = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

// rss is the resident memory of process pid in bytes (0 if unknown).
func rss(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := vmRSS.FindSubmatch(b)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// raiseFileLimit lifts the soft open-file limit to the hard one: holding
// connections needs one descriptor each.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
