package originclient

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/valyala/fasthttp"
)

// TestBreakerOriginDown: an origin that really cannot serve opens the
// breaker, for each way that shows, with the reason in breaker_opens_total,
// TripReason and a log line that names the origin, the reason and the
// counts; once it serves again a half-open probe closes the breaker.
func TestBreakerOriginDown(t *testing.T) {
	cases := []struct {
		name string
		// down is what the origin does while down; nil refuses connections.
		down   func(*fakeOrigin, *fasthttp.RequestCtx)
		reason string
		logs   string // what the log line must hold besides the origin
	}{
		{"connections refused", nil, "connect", "reason=connect rule=consecutive run=5 failures=5 successes=0"},
		{"no healthy upstream", failing(503, "no healthy upstream", wire.ScopeOrigin), "unavailable",
			"reason=unavailable rule=consecutive run=5 failures=5 successes=0"},
		{"link stalls", stall(time.Hour), "error_rate", "reason=error_rate rule=error_rate run=0 failures=10 successes=0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var down atomic.Bool
			down.Store(true)
			o := newFakeOrigin(t, func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
				if down.Load() && tc.down != nil {
					tc.down(o, ctx)
					return
				}
				echo(o, ctx)
			})
			refused := closedAddr(t)
			var logs testutil.SyncBuffer
			c := newClient(t, o.addr, func(cfg *Config) {
				cfg.MaxRetries = -1
				cfg.Timeout = 200 * time.Millisecond
				cfg.Breaker = BreakerConfig{OpenFor: 100 * time.Millisecond, MinRequests: 10, Window: time.Minute}
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				// A real refused connection while the origin is down.
				cfg.Dial = func(addr string) (net.Conn, error) {
					if down.Load() && tc.down == nil {
						addr = refused
					}
					return net.Dial("tcp", addr)
				}
			})
			var resp wire.Response
			if tc.reason == "error_rate" {
				// Ten requests time out together: the breaker opens on the
				// ratio, as no failure run proves the origin down.
				var wg sync.WaitGroup
				for range 10 {
					wg.Go(func() {
						var resp wire.Response
						if err := c.Do(soon(100*time.Millisecond), getReq("GET", "/"), &resp); !errors.Is(err, ErrTimeout) {
							t.Errorf("stalled origin: %v", err)
						}
					})
				}
				wg.Wait()
			} else {
				for i := range 5 {
					if c.State() != "closed" {
						t.Fatalf("breaker %s after %d failures", c.State(), i)
					}
					_ = c.Do(soon(5*time.Second), getReq("GET", "/"), &resp)
				}
			}
			if c.State() != "open" || c.TripReason() != tc.reason {
				t.Fatalf("breaker %s, reason %q; want open, %q", c.State(), c.TripReason(), tc.reason)
			}
			if err := c.Do(soon(5*time.Second), getReq("GET", "/"), &resp); !errors.Is(err, ErrBreakerOpen) {
				t.Fatalf("while open: %v", err)
			}
			for _, r := range reasonNames {
				want := 0.0
				if r == tc.reason {
					want = 1
				}
				if got := value(t, c.m.opens.WithLabelValues("o1", r)); got != want {
					t.Errorf("opens{reason=%s} = %v, want %v", r, got, want)
				}
			}
			line := grepLine(logs.String(), "circuit opened")
			if !strings.Contains(line, "origin=o1 ") || !strings.Contains(line, tc.logs) || !strings.Contains(line, "level=WARN") {
				t.Errorf("log line %q, want origin=o1 and %q", line, tc.logs)
			}

			// With no request at all, the gauge an alert reads leaves
			// open once open_for is over.
			down.Store(false)
			testutil.Eventually(t, 10*time.Second, "breaker_state to say half-open without a request", func() bool {
				return value(t, c.m.state.WithLabelValues("o1")) == 1
			})
			waitState(t, c, "half-open")
			if err := c.Do(soon(5*time.Second), getReq("GET", "/"), &resp); err != nil || resp.Status != 200 {
				t.Fatalf("probe: %v (status %d)", err, resp.Status)
			}
			if c.State() != "closed" {
				t.Fatalf("breaker %s after a good probe", c.State())
			}
			for _, msg := range []string{"circuit half-open", "circuit closed"} {
				if !strings.Contains(grepLine(logs.String(), msg), "origin=o1") {
					t.Errorf("no %q line naming the origin in\n%s", msg, logs.String())
				}
			}
		})
	}
}

func grepLine(s, sub string) string {
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestBreakerOneURL: what goes wrong with one URL never opens the breaker
// while the origin serves the others: 50 concurrent 504s the origin made
// for a slow URL, 50 more of this edge's own timeouts on it, responses too
// large for this edge. Timeouts only weigh in the ratio, and only an
// origin that times out on most requests reaches it.
func TestBreakerOneURL(t *testing.T) {
	slowURL := func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		var req wire.Request
		x, ok := o.decode(ctx, &req)
		if !ok {
			return
		}
		switch string(req.Path) {
		case "/slow":
			o.answer(ctx, nil, x, &wire.Response{Status: 504, Error: wire.Bytes("upstream timeout"), Scope: wire.ScopeRequest})
		case "/stall":
			<-o.stop
		case "/huge":
			o.answer(ctx, nil, x, &wire.Response{Status: 200, Body: make([]byte, 64<<10)})
		default:
			o.answer(ctx, nil, x, &wire.Response{Status: 200})
		}
	}
	o := newFakeOrigin(t, slowURL)
	c := newClient(t, o.addr, func(cfg *Config) {
		cfg.Codec = origintest.NewCodec(t, wire.Config{MaxEnvelope: 16 << 10})
		cfg.Breaker = BreakerConfig{OpenFor: time.Minute, Window: time.Minute}
	})
	burst := func(path string, n int, budget time.Duration, want func(error, *wire.Response) bool) {
		t.Helper()
		var wg sync.WaitGroup
		var bad atomic.Int64
		for range n {
			wg.Go(func() {
				var resp wire.Response
				if err := c.Do(soon(budget), getReq("GET", path), &resp); !want(err, &resp) {
					bad.Add(1)
				}
			})
		}
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("%s: %d of %d requests ended otherwise than expected", path, bad.Load(), n)
		}
	}
	ok := func(err error, resp *wire.Response) bool { return err == nil && resp.Status == 200 }
	burst("/", 60, 5*time.Second, ok)
	burst("/slow", 50, 5*time.Second, func(err error, resp *wire.Response) bool { return err == nil && resp.Status == 504 })
	burst("/stall", 50, 200*time.Millisecond, func(err error, _ *wire.Response) bool { return errors.Is(err, ErrTimeout) })
	burst("/huge", 10, 5*time.Second, func(err error, _ *wire.Response) bool { return errors.Is(err, wire.ErrTooLarge) })
	if c.State() != "closed" {
		t.Fatalf("breaker %s after one URL's failures (reason %q)", c.State(), c.TripReason())
	}
	burst("/", 10, 5*time.Second, ok)

	// An origin that times out on most requests is another matter.
	burst("/stall", 80, 200*time.Millisecond, func(err error, _ *wire.Response) bool {
		return errors.Is(err, ErrTimeout) || errors.Is(err, ErrBreakerOpen)
	})
	if c.State() != "open" || c.TripReason() != "error_rate" {
		t.Fatalf("breaker %s (reason %q) with most requests timing out", c.State(), c.TripReason())
	}
}
