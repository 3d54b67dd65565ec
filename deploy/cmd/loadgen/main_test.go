package main

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
)

// serve starts a fasthttp server on 127.0.0.1 answering status, and checks
// the Host and header loadgen was told to send.
func serve(t *testing.T, status int) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Host()) != "hit" || string(ctx.Request.Header.Peek("X-Token")) != "t" {
			ctx.SetStatusCode(400)
			return
		}
		ctx.SetStatusCode(status)
		ctx.SetBodyString("ok")
	}}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String() + "/bench"
}

func runKV(t *testing.T, args ...string) map[string]float64 {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	m := map[string]float64{}
	for _, f := range strings.Fields(out.String()) {
		k, v, _ := strings.Cut(f, "=")
		m[k], _ = strconv.ParseFloat(v, 64)
	}
	return m
}

func TestPacedSendsOnScheduleAndHolds(t *testing.T) {
	url := serve(t, 200)
	m := runKV(t, "-url", url, "-H", "Host: hit", "-H", "X-Token: t", "-rate", "2000", "-d", "500ms", "-c", "8",
		"-hold", "40", "-pid", strconv.Itoa(os.Getpid()))
	// 500 ms at 2000/s is 1001 due times, the first at 0.
	if m["sent"] != 1001 || m["ok"] != 1001 || m["errors"] != 0 || m["wrong_status"] != 0 {
		t.Fatalf("sent %v ok %v errors %v wrong %v, want 1001 answered 200", m["sent"], m["ok"], m["errors"], m["wrong_status"])
	}
	if m["achieved"] < 1500 || m["achieved"] > 2500 {
		t.Errorf("achieved %v req/s, want about 2000", m["achieved"])
	}
	if m["held"] != 40 || m["hold_failed"] != 0 || m["held_sampled"] != 1 || m["held_dead"] != 0 {
		t.Errorf("held %v failed %v sampled %v dead %v", m["held"], m["hold_failed"], m["held_sampled"], m["held_dead"])
	}
	if m["rss_held_kib"] == 0 {
		t.Errorf("no resident memory reported for -pid")
	}
}

func TestCountsWrongStatus(t *testing.T) {
	url := serve(t, 503)
	m := runKV(t, "-url", url, "-H", "Host: hit", "-H", "X-Token: t", "-rate", "1000", "-d", "100ms", "-n", "50")
	if m["sent"] != 50 || m["wrong_status"] != 50 || m["ok"] != 0 {
		t.Fatalf("sent %v wrong %v ok %v, want 50 requests, all the wrong status", m["sent"], m["wrong_status"], m["ok"])
	}
}

// TestCountsFailuresInLatency: requests that fail count in the percentiles
// with at least their time to failure. The server takes requests and never
// answers, so every request times out.
func TestCountsFailuresInLatency(t *testing.T) {
	addr := testutil.Silent(t)
	const timeout = 200 * time.Millisecond
	m := runKV(t, "-url", "http://"+addr+"/bench", "-rate", "100", "-d", "50ms", "-c", "4",
		"-timeout", timeout.String())
	if m["sent"] != 6 || m["errors"] != 6 {
		t.Fatalf("sent %v errors %v, want 6 requests, all failed", m["sent"], m["errors"])
	}
	if m["p50_us"] < float64(timeout.Microseconds()) || m["max_us"] < m["p50_us"] {
		t.Fatalf("p50 %v us, max %v us: failed requests must count their %v to failure", m["p50_us"], m["max_us"], timeout)
	}
	if m["achieved"] != 0 {
		t.Errorf("achieved %v req/s with no response", m["achieved"])
	}
}

// TestCountsLateFromSchedule: with one connection and a server that holds
// the first request 200 ms, every later request starts late; each counts
// from when it was due, and is counted late.
func TestCountsLateFromSchedule(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var first sync.Once
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		first.Do(func() { time.Sleep(200 * time.Millisecond) }) // the stall under test
	}}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	// 100 ms at 200/s: 21 due times, all but the first due before the
	// first response.
	m := runKV(t, "-url", "http://"+ln.Addr().String()+"/bench", "-rate", "200", "-d", "100ms", "-c", "1", "-warm=false")
	if m["sent"] != 21 || m["ok"] != 21 {
		t.Fatalf("sent %v ok %v, want 21 answered", m["sent"], m["ok"])
	}
	if _, ok := m["pace_late"]; !ok {
		t.Errorf("no pace_late: the generator's own lateness must be reported apart")
	}
	if m["late"] < 20 || m["lag_max_us"] < 100_000 {
		t.Fatalf("late %v, lag_max %v us: want the 20 requests queued behind the stall late, by 100 ms or more", m["late"], m["lag_max_us"])
	}
	// The median request was due at 50 ms and started after 200 ms.
	if m["p50_us"] < 150_000 {
		t.Fatalf("p50 %v us: a late request must count from its due time", m["p50_us"])
	}
}

// TestWarmUp: the connections are opened first, each with a request that
// is not measured: the server sees one request per connection more than
// the run sends, the run counts only its own, and without -warm the two
// agree.
func TestWarmUp(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { n.Add(1) }}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	url := "http://" + ln.Addr().String() + "/bench"
	for _, c := range []struct {
		warm string
		want int64
	}{{"-warm=true", 21 + 4}, {"-warm=false", 21}} {
		n.Store(0)
		m := runKV(t, "-url", url, "-rate", "200", "-d", "100ms", "-c", "4", c.warm)
		if m["sent"] != 21 || m["ok"] != 21 || n.Load() != c.want {
			t.Errorf("%s: sent %v, ok %v, server saw %d: want 21, 21, %d", c.warm, m["sent"], m["ok"], n.Load(), c.want)
		}
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1:80/", "http://example.com:80/", "https://127.0.0.1:443/", "http://[::1]:80/", "http://127.0.0.2:80/"} {
		if err := run([]string{"-url", u, "-rate", "1"}, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
}

// TestSettledSplit: with -settle, the requests due after it get their own
// percentiles by status. The server answers 503 for the first 200 ms of
// the run and 200 afterwards, so no settled request (due 500 ms or more
// in) is a 503, and the 200s due between 200 and 500 ms are not settled.
func TestSettledSplit(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var first atomic.Int64
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		if time.Duration(now-first.Load()) < 200*time.Millisecond {
			ctx.SetStatusCode(503)
		}
	}}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	m := runKV(t, "-url", "http://"+ln.Addr().String()+"/bench", "-rate", "100", "-d", "1s", "-c", "8", "-settle", "500ms")
	if m["n_503"] == 0 || m["n_503_settled"] != 0 {
		t.Fatalf("n_503 %v, n_503_settled %v: want the 503s of the start, none settled", m["n_503"], m["n_503_settled"])
	}
	if m["n_2xx_settled"] == 0 || m["n_2xx_settled"] >= m["n_2xx"] {
		t.Fatalf("n_2xx_settled %v of n_2xx %v: want those due after 500 ms, some but not all", m["n_2xx_settled"], m["n_2xx"])
	}
	if _, ok := m["p99_2xx_settled_us"]; !ok {
		t.Fatal("no p99_2xx_settled_us")
	}
	if m := runKV(t, "-url", "http://"+ln.Addr().String()+"/bench", "-rate", "100", "-d", "50ms", "-c", "8"); m["n_2xx_settled"] != 0 {
		t.Fatal("settled percentiles without -settle")
	}
}

// TestSplitsByStatus: answers are counted and timed apart by class. The
// server answers every other request 503 at once and holds the rest 20 ms
// (the work under test) before a 200: the 2xx latencies carry the hold,
// and the classes add up to what was answered.
func TestSplitsByStatus(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const hold = 20 * time.Millisecond
	var n atomic.Int64
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if n.Add(1)%2 == 0 {
			ctx.SetStatusCode(503)
			return
		}
		time.Sleep(hold)
	}}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	m := runKV(t, "-url", "http://"+ln.Addr().String()+"/bench", "-rate", "200", "-d", "100ms", "-c", "8")
	if m["sent"] != 21 || m["n_2xx"] != 11 || m["n_503"] != 10 || m["ok"] != 11 || m["wrong_status"] != 10 {
		t.Fatalf("sent %v, n_2xx %v, n_503 %v, ok %v, wrong %v: want 21 sent, 11 answered 200 and 10 503",
			m["sent"], m["n_2xx"], m["n_503"], m["ok"], m["wrong_status"])
	}
	if m["p50_2xx_us"] < float64(hold.Microseconds()) || m["p99_2xx_us"] < m["p50_2xx_us"] || m["max_503_us"] < m["p50_503_us"] {
		t.Fatalf("p50_2xx %v us, p99_2xx %v us, p50_503 %v us, max_503 %v us: want the 2xx to carry the %v hold",
			m["p50_2xx_us"], m["p99_2xx_us"], m["p50_503_us"], m["max_503_us"], hold)
	}
}
