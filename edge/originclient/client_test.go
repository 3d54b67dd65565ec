package originclient

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/valyala/fasthttp"
)

type testClient struct {
	*Client
	reg *prometheus.Registry
	m   *Metrics
}

func newClient(t testing.TB, addr string, mod func(*Config)) *testClient {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	cfg := Config{Addr: addr, Codec: origintest.NewCodec(t, wire.Config{}), Name: "o1", Metrics: m}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &testClient{Client: c, reg: reg, m: m}
}

func getReq(method, path string) *wire.Request {
	return &wire.Request{Method: wire.Bytes(method), Scheme: wire.Bytes("https"), Host: wire.Bytes("example.com"),
		Path: wire.Bytes(path)}
}

func soon(d time.Duration) time.Time { return time.Now().Add(d) }

// slack is how late past its deadline Do may return: scheduling noise on a
// busy two-core machine, more under the race detector.
var slack = func() time.Duration {
	if raceEnabled {
		return 600 * time.Millisecond
	}
	return 250 * time.Millisecond
}()

func TestRoundTrip(t *testing.T) {
	o := newFakeOrigin(t, echo)
	c := newClient(t, o.addr, nil)

	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	big := make([]byte, 5<<20) // incompressible, so the frame is several MiB too
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{{"empty", nil}, {"binary", bin}, {"large", big}} {
		t.Run(tc.name, func(t *testing.T) {
			req := &wire.Request{Method: wire.Bytes("PATCH"), Scheme: wire.Bytes("https"),
				Host: wire.Bytes("example.com"), Path: wire.Bytes("/a/b"), Query: wire.Bytes("x=1&y=2"),
				Client: wire.Bytes("203.0.113.9"), Body: tc.body}
			hdr := [][2]string{{"Accept", "text/html"}, {"X-B", "1"}, {"accept", "application/json"},
				{"X-Bin", "\x00\xff\x80"}, {"X-B", "2"}}
			for _, h := range hdr {
				req.AddHeader([]byte(h[0]), []byte(h[1]))
			}
			req.AddValue([]byte("Sub"), []byte("user-42"))
			var resp wire.Response
			if err := c.Do(soon(10*time.Second), req, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Status != 200 || !bytes.Equal(resp.Body, tc.body) {
				t.Fatalf("status %d, body %d bytes, want 200 and %d bytes", resp.Status, len(resp.Body), len(tc.body))
			}
			if got, _ := wire.Get(resp.Header, "X-Method"); string(got) != "PATCH" {
				t.Errorf("method %q", got)
			}
			if got, _ := wire.Get(resp.Header, "X-Target"); string(got) != "httpsexample.com/a/b?x=1&y=2" {
				t.Errorf("target %q", got)
			}
			if got, _ := wire.Get(resp.Header, "Wedge-Value-Sub"); string(got) != "user-42" {
				t.Errorf("value %q", got)
			}
			// The request's fields come back after the three X- fields the
			// echo puts first, in order, repeated names apart.
			if len(resp.Header) != 3+len(hdr)+1 || !wire.Equal(resp.Header[3:3+len(hdr)], req.Header) {
				t.Errorf("header fields %q, want %q", resp.Header, req.Header)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	o := newFakeOriginOpts(t, echo, originOpts{tls: true})
	c := newClient(t, o.addr, func(cfg *Config) { cfg.TLS = clientTLS(t) })
	var resp wire.Response
	req := getReq("GET", "/tls")
	req.Body = wire.Bytes("over tls")
	if err := c.Do(soon(10*time.Second), req, &resp); err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != "over tls" {
		t.Fatalf("body %q", resp.Body)
	}

	// A client that does not trust the certificate fails at the handshake,
	// before a byte of the request goes out.
	bad := newClient(t, o.addr, func(cfg *Config) { cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}; cfg.MaxRetries = -1 })
	n := o.requests.Load()
	err := bad.Do(soon(10*time.Second), getReq("POST", "/"), &resp)
	if !errors.Is(err, ErrTransport) {
		t.Fatalf("untrusted certificate: %v, want ErrTransport", err)
	}
	if o.requests.Load() != n {
		t.Fatal("a request reached the origin over an unverified connection")
	}
}

func TestTimeoutCarriesBudget(t *testing.T) {
	o := newFakeOrigin(t, echo)
	c := newClient(t, o.addr, nil)
	var resp wire.Response
	for _, budget := range []time.Duration{3 * time.Second, 700 * time.Millisecond} {
		start := time.Now()
		if err := c.Do(start.Add(budget), getReq("GET", "/"), &resp); err != nil {
			t.Fatal(err)
		}
		got, _ := wire.Get(resp.Header, "X-Timeout")
		us, _ := strconv.ParseUint(string(got), 10, 64)
		sent := time.Duration(us) * time.Microsecond
		if sent > budget || sent < budget-time.Since(start) {
			t.Errorf("budget %s: origin was told %s", budget, sent)
		}
	}
	// A zero deadline takes Config.Timeout.
	c2 := newClient(t, o.addr, func(cfg *Config) { cfg.Timeout = 1500 * time.Millisecond })
	if err := c2.Do(time.Time{}, getReq("GET", "/"), &resp); err != nil {
		t.Fatal(err)
	}
	got, _ := wire.Get(resp.Header, "X-Timeout")
	if us, _ := strconv.ParseUint(string(got), 10, 64); us > 1_500_000 || us < 1_000_000 {
		t.Errorf("default budget: origin was told %d us", us)
	}
}

func TestTimeoutPerAttempt(t *testing.T) {
	// The first attempt is read and then dropped; the retry must carry
	// what is left of the budget, not what the first one carried.
	var first sync.Once
	o := newFakeOrigin(t, func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		dropped := false
		first.Do(func() {
			var req wire.Request
			o.decode(ctx, &req)
			hangup(o, ctx)
			dropped = true
		})
		if !dropped {
			echo(o, ctx)
		}
	})
	c := newClient(t, o.addr, nil)
	var resp wire.Response
	if err := c.Do(soon(2*time.Second), getReq("GET", "/"), &resp); err != nil {
		t.Fatal(err)
	}
	ts := o.seenTimeouts()
	if len(ts) != 2 || ts[1] >= ts[0] {
		t.Fatalf("timeouts seen by the origin %v, want two, the second smaller", ts)
	}
}

func TestDeadlineSlowOrigin(t *testing.T) {
	o := newFakeOrigin(t, stall(10*time.Second))
	c := newClient(t, o.addr, nil)
	const budget = 150 * time.Millisecond
	var resp wire.Response
	for _, method := range []string{"GET", "POST"} {
		start := time.Now()
		err := c.Do(start.Add(budget), getReq(method, "/slow"), &resp)
		took := time.Since(start)
		if !errors.Is(err, ErrTimeout) || Status(err) != 504 {
			t.Fatalf("%s: %v (status %d), want ErrTimeout and 504", method, err, Status(err))
		}
		if took < budget || took > budget+slack {
			t.Errorf("%s: returned after %s with a %s budget", method, took, budget)
		}
	}
	if got := value(t, c.m.exchanges.WithLabelValues("o1", "timeout")); got != 2 {
		t.Errorf("timeout exchanges %v, want 2", got)
	}
}

func TestDeadlinePassed(t *testing.T) {
	o := newFakeOrigin(t, echo)
	c := newClient(t, o.addr, nil)
	var resp wire.Response
	if err := c.Do(time.Now().Add(-time.Second), getReq("GET", "/"), &resp); !errors.Is(err, ErrTimeout) {
		t.Fatalf("past deadline: %v", err)
	}
	if o.conns.Load() != 0 {
		t.Fatal("a request with no budget left went to the network")
	}
}

func TestOriginDown(t *testing.T) {
	c := newClient(t, closedAddr(t), func(cfg *Config) { cfg.Breaker.Failures = 100 })
	var resp wire.Response
	for _, method := range []string{"GET", "POST"} {
		start := time.Now()
		err := c.Do(soon(10*time.Second), getReq(method, "/"), &resp)
		if !errors.Is(err, ErrTransport) || Status(err) != 502 {
			t.Fatalf("%s: %v (status %d), want ErrTransport and 502", method, err, Status(err))
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: connection refused took %s", method, took)
		}
	}
	// Nothing was sent, so both methods were retried.
	if got := value(t, c.m.retries.WithLabelValues("o1")); got != 4 {
		t.Errorf("retries %v, want 4", got)
	}
}

func TestMisbehavingOrigin(t *testing.T) {
	wrong := origintest.NewCodec(t, wire.Config{Keys: []wire.Key{wrongKey}})
	cases := []struct {
		name    string
		handler func(*fakeOrigin, *fasthttp.RequestCtx)
		drop    bool
		want    error
		stalls  bool
	}{
		{name: "accept then close", drop: true, want: ErrTransport},
		{name: "hang up after reading", handler: hangup, want: ErrTransport},
		{name: "garbage HTTP", handler: rawReply("SMTP ready\r\n\r\nnonsense", false), want: ErrTransport},
		{name: "truncated body", handler: rawReply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", false), want: ErrTransport},
		{name: "stalled body", handler: rawReply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", true), want: ErrTimeout, stalls: true},
		{name: "stalled headers", handler: rawReply("HTTP/1.1 200 OK\r\nContent-Le", true), want: ErrTimeout, stalls: true},
		{name: "not a frame", handler: func(_ *fakeOrigin, ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hello") }, want: wire.ErrFrame},
		{name: "frame of random bytes", handler: func(_ *fakeOrigin, ctx *fasthttp.RequestCtx) {
			b := make([]byte, 200)
			_, _ = rand.Read(b)
			b[0], b[1] = 1, origintest.Key.ID
			ctx.SetBody(b)
		}, want: wire.ErrAuth},
		{name: "signed with the wrong key", handler: func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
			var req wire.Request
			if x, ok := o.decode(ctx, &req); ok {
				o.answer(ctx, wrong, x, &wire.Response{Status: 200, Body: wire.Bytes("forged")})
			}
		}, want: wire.ErrAuth},
		{name: "answer to another request", handler: func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
			// A response bound to a different request must not verify.
			_, x, err := o.codec.AppendRequest(nil, getReq("GET", "/other"))
			if err != nil {
				panic(err)
			}
			o.answer(ctx, nil, x, &wire.Response{Status: 200})
		}, want: wire.ErrAuth},
		{name: "refusal 400", handler: func(_ *fakeOrigin, ctx *fasthttp.RequestCtx) {
			ctx.Error("wire: malformed envelope: \x1b[31mred", 400)
		}, want: ErrRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.handler
			if h == nil {
				h = echo
			}
			o := newFakeOrigin(t, h)
			if tc.drop {
				o.dropConns.Store(1 << 30)
			}
			c := newClient(t, o.addr, nil)
			// An origin that answers wrongly must fail the exchange long
			// before the deadline; one that stalls, at it.
			budget, limit := 10*time.Second, 3*time.Second
			if tc.stalls {
				budget = 300 * time.Millisecond
				limit = budget + slack
			}
			var resp wire.Response
			for _, method := range []string{"GET", "POST"} {
				start := time.Now()
				err := c.Do(start.Add(budget), getReq(method, "/"), &resp)
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: %v, want %v", method, err, tc.want)
				}
				if took := time.Since(start); took > limit {
					t.Fatalf("%s: took %s with a %s budget", method, took, budget)
				}
				if Status(err) != 502 && Status(err) != 504 {
					t.Fatalf("%s: status %d", method, Status(err))
				}
				if bytes.ContainsAny([]byte(err.Error()), "\x1b\r\n") {
					t.Fatalf("error text carries control characters: %q", err)
				}
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	o := newFakeOrigin(t, echo)
	c := newClient(t, o.addr, func(cfg *Config) { cfg.Codec = origintest.NewCodec(t, wire.Config{MaxEnvelope: 4096}) })
	req := getReq("POST", "/")
	req.Body = make([]byte, 64<<10)
	if _, err := rand.Read(req.Body); err != nil {
		t.Fatal(err)
	}
	var resp wire.Response
	err := c.Do(soon(10*time.Second), req, &resp)
	if !errors.Is(err, wire.ErrTooLarge) || Status(err) != 502 {
		t.Fatalf("%v, want wire.ErrTooLarge", err)
	}
	if got := value(t, c.m.errors.WithLabelValues("o1", "too_large")); got != 1 {
		t.Fatalf("too_large errors %v", got)
	}
}

func TestRefusal(t *testing.T) {
	o := newFakeOrigin(t, echo)
	// Same key ID, other secret: the origin cannot authenticate the frame.
	c := newClient(t, o.addr, func(cfg *Config) {
		cfg.Codec = origintest.NewCodec(t, wire.Config{Keys: []wire.Key{wrongKey}})
		cfg.Breaker.Failures = 2
	})
	var resp wire.Response
	for range 3 {
		err := c.Do(soon(2*time.Second), getReq("GET", "/"), &resp)
		var re *RefusedError
		if !errors.Is(err, ErrRefused) || !errors.As(err, &re) || re.Status != 401 {
			t.Fatalf("%v, want a 401 RefusedError", err)
		}
		if Status(err) != 502 {
			t.Fatalf("status %d", Status(err))
		}
	}
	if o.requests.Load() != 3 {
		t.Errorf("%d requests reached the origin, want 3: a 401 is not retried", o.requests.Load())
	}
	// The origin is up, so 4xx refusals do not open the breaker.
	if c.State() != "closed" {
		t.Errorf("breaker %s after 401s", c.State())
	}
	if got := value(t, c.m.errors.WithLabelValues("o1", "refused")); got != 3 {
		t.Errorf("refused errors %v", got)
	}
}

func TestRetries(t *testing.T) {
	// flaky hangs up on the first request that reaches it, then echoes.
	flaky := func() func(*fakeOrigin, *fasthttp.RequestCtx) {
		var once sync.Once
		return func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
			first := false
			once.Do(func() { first = true })
			if first {
				hangup(o, ctx)
				return
			}
			echo(o, ctx)
		}
	}
	overloaded := func() func(*fakeOrigin, *fasthttp.RequestCtx) {
		var once sync.Once
		return func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
			first := false
			once.Do(func() { first = true })
			if first {
				ctx.Response.Header.Set("Retry-After", "1")
				ctx.Error("origin: overloaded", 503)
				return
			}
			echo(o, ctx)
		}
	}
	cases := []struct {
		name     string
		method   string
		handler  func(*fakeOrigin, *fasthttp.RequestCtx)
		ok       bool
		requests int64
	}{
		{"GET after reset", "GET", flaky(), true, 2},
		{"DELETE after reset", "DELETE", flaky(), true, 2},
		{"POST after reset", "POST", flaky(), false, 1},
		{"PATCH after reset", "PATCH", flaky(), false, 1},
		{"GET after 503", "GET", overloaded(), true, 2},
		{"POST after 503", "POST", overloaded(), false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newFakeOrigin(t, tc.handler)
			c := newClient(t, o.addr, nil)
			var resp wire.Response
			err := c.Do(soon(10*time.Second), getReq(tc.method, "/"), &resp)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want success %v", err, tc.ok)
			}
			if got := o.requests.Load(); got != tc.requests {
				t.Errorf("origin saw %d requests, want %d", got, tc.requests)
			}
			if got := value(t, c.m.retries.WithLabelValues("o1")); got != float64(tc.requests-1) {
				t.Errorf("retries_total %v", got)
			}
		})
	}

	t.Run("POST after dial failure", func(t *testing.T) {
		o := newFakeOrigin(t, echo)
		d := &countingDialer{refusedTarget: closedAddr(t)}
		d.fail.Store(2)
		c := newClient(t, o.addr, func(cfg *Config) { cfg.Dial = d.Dial })
		var resp wire.Response
		req := getReq("POST", "/")
		req.Body = wire.Bytes("once")
		if err := c.Do(soon(10*time.Second), req, &resp); err != nil {
			t.Fatal(err)
		}
		if d.dials.Load() != 3 || o.requests.Load() != 1 || string(resp.Body) != "once" {
			t.Fatalf("%d dials, %d requests at the origin, body %q; want 3, 1, once", d.dials.Load(), o.requests.Load(), resp.Body)
		}
	})

	t.Run("bounded by MaxRetries", func(t *testing.T) {
		o := newFakeOrigin(t, hangup)
		c := newClient(t, o.addr, func(cfg *Config) { cfg.MaxRetries = 3 })
		var resp wire.Response
		if err := c.Do(soon(10*time.Second), getReq("GET", "/"), &resp); !errors.Is(err, ErrTransport) {
			t.Fatalf("%v", err)
		}
		if got := o.requests.Load(); got != 4 {
			t.Fatalf("origin saw %d requests, want 4", got)
		}
	})

	t.Run("bounded by the deadline", func(t *testing.T) {
		// Each attempt takes 200ms before its reset: a 700ms budget has
		// room for four at most, whatever MaxRetries says, and Do must
		// still return on time.
		o := newFakeOrigin(t, func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-o.stop:
			}
			hangup(o, ctx)
		})
		c := newClient(t, o.addr, func(cfg *Config) { cfg.MaxRetries = 100; cfg.Breaker.Failures = 1000 })
		const budget = 700 * time.Millisecond
		start := time.Now()
		var resp wire.Response
		err := c.Do(start.Add(budget), getReq("GET", "/"), &resp)
		if !errors.Is(err, ErrTransport) && !errors.Is(err, ErrTimeout) {
			t.Fatalf("%v", err)
		}
		if took := time.Since(start); took > budget+slack {
			t.Fatalf("returned after %s with a %s budget", took, budget)
		}
		if got := o.requests.Load(); got < 1 || got > 4 {
			t.Fatalf("origin saw %d requests, want 1 to 4", got)
		}
	})
}

// TestStaleConnection has the origin close a pooled connection while it is
// idle, as it does on its idle timeout or when it restarts. The next
// request, even a POST, must go out on a fresh connection rather than fail:
// nothing had been sent on the dead one.
func TestStaleConnection(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			o := newFakeOriginOpts(t, echo, originOpts{tls: useTLS, idle: 50 * time.Millisecond})
			c := newClient(t, o.addr, func(cfg *Config) {
				if useTLS {
					cfg.TLS = clientTLS(t)
				}
			})
			var resp wire.Response
			for i := range 3 {
				req := getReq("POST", "/")
				req.Body = fmt.Appendf(nil, "post %d", i)
				if err := c.Do(soon(10*time.Second), req, &resp); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if string(resp.Body) != string(req.Body) {
					t.Fatalf("request %d: body %q", i, resp.Body)
				}
				limit := time.Now().Add(5 * time.Second)
				for o.closed.Load() <= int64(i) {
					if time.Now().After(limit) {
						t.Fatal("the origin did not close the idle connection")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			if o.requests.Load() != 3 || o.conns.Load() != 3 {
				t.Fatalf("%d requests on %d connections, want 3 on 3", o.requests.Load(), o.conns.Load())
			}
		})
	}
}

func waitState(t *testing.T, c *testClient, want string) {
	t.Helper()
	limit := time.Now().Add(3 * time.Second)
	for c.State() != want {
		if time.Now().After(limit) {
			t.Fatalf("breaker %s, want %s", c.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBreaker(t *testing.T) {
	var healthy sync.Mutex // held while the origin is unhealthy
	var sick = true
	o := newFakeOrigin(t, func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		healthy.Lock()
		s := sick
		healthy.Unlock()
		if s {
			hangup(o, ctx)
			return
		}
		echo(o, ctx)
	})
	setSick := func(v bool) { healthy.Lock(); sick = v; healthy.Unlock() }
	c := newClient(t, o.addr, func(cfg *Config) {
		cfg.MaxRetries = -1
		cfg.Breaker = BreakerConfig{Failures: 3, OpenFor: 100 * time.Millisecond, Probes: 1}
	})
	gauge := c.m.state.WithLabelValues("o1")
	var resp wire.Response
	for i := range 3 {
		if c.State() != "closed" {
			t.Fatalf("breaker %s after %d failures", c.State(), i)
		}
		if err := c.Do(soon(10*time.Second), getReq("GET", "/"), &resp); !errors.Is(err, ErrTransport) {
			t.Fatalf("%v", err)
		}
	}
	if c.State() != "open" || value(t, gauge) != 2 {
		t.Fatalf("breaker %s (gauge %v) after 3 failures", c.State(), value(t, gauge))
	}
	n, conns := o.requests.Load(), o.conns.Load()
	for range 3 {
		err := c.Do(soon(10*time.Second), getReq("GET", "/"), &resp)
		if !errors.Is(err, ErrBreakerOpen) || Status(err) != 503 || err.Error() != "originclient: circuit open" {
			t.Fatalf("%v (status %d), want ErrBreakerOpen and 503", err, Status(err))
		}
	}
	if o.requests.Load() != n || o.conns.Load() != conns {
		t.Fatal("an open breaker let a request reach the origin")
	}

	// Half-open lets one probe through; a failed probe opens it again.
	waitState(t, c, "half-open")
	if err := c.Do(soon(10*time.Second), getReq("GET", "/"), &resp); !errors.Is(err, ErrTransport) {
		t.Fatalf("probe: %v", err)
	}
	if o.requests.Load() != n+1 || c.State() != "open" {
		t.Fatalf("after a failed probe: %d requests (want %d), breaker %s", o.requests.Load(), n+1, c.State())
	}

	// The origin recovers: the next probe succeeds and closes the breaker.
	setSick(false)
	waitState(t, c, "half-open")
	if value(t, gauge) != 1 {
		t.Errorf("gauge %v while half-open", value(t, gauge))
	}
	if err := c.Do(soon(10*time.Second), getReq("GET", "/"), &resp); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if c.State() != "closed" || value(t, gauge) != 0 {
		t.Fatalf("breaker %s after a good probe", c.State())
	}
	for to, want := range map[string]float64{"open": 2, "half_open": 2, "closed": 1} {
		if got := value(t, c.m.transitions.WithLabelValues("o1", to)); got != want {
			t.Errorf("transitions to %s: %v, want %v", to, got, want)
		}
	}
	if got := value(t, c.m.errors.WithLabelValues("o1", "breaker_open")); got != 3 {
		t.Errorf("breaker_open errors %v", got)
	}
	// Opened by a run of broken exchanges, then by a probe that broke too.
	if got := value(t, c.m.opens.WithLabelValues("o1", "transport")); got != 2 || c.TripReason() != "transport" {
		t.Errorf("opens{reason=transport} %v, trip reason %q", got, c.TripReason())
	}
}

func TestBreakerFailures(t *testing.T) {
	cases := []struct {
		name  string
		h     func(*fakeOrigin, *fasthttp.RequestCtx)
		opens bool
	}{
		{"application 500", func(o *fakeOrigin, ctx *fasthttp.RequestCtx) { echoStatus(o, ctx, 500, "") }, false},
		{"application 503 without a reason", func(o *fakeOrigin, ctx *fasthttp.RequestCtx) { echoStatus(o, ctx, 503, "") }, false},
		// Failures confined to one request: the origin serves others.
		{"origin 502 envelope", failing(502, "upstream closed the connection", wire.ScopeRequest), false},
		{"origin 504 envelope", failing(504, "upstream timeout", wire.ScopeRequest), false},
		{"origin 502 envelope without a scope", failing(502, "upstream reset", 0), false},
		{"origin 504 envelope without a scope", failing(504, "upstream timeout", 0), false},
		{"origin 503 envelope of request scope", failing(503, "one request's trouble", wire.ScopeRequest), false},
		// An origin that cannot serve anything.
		{"origin 503 no healthy upstream", failing(503, "no healthy upstream", wire.ScopeOrigin), true},
		{"origin 502 every upstream refused", failing(502, "upstream refused the connection", wire.ScopeOrigin), true},
		{"origin 503 envelope without a scope", failing(503, "no healthy upstream", 0), true},
		{"503 refusal", func(_ *fakeOrigin, ctx *fasthttp.RequestCtx) { ctx.Error("overloaded", 503) }, true},
		{"413 refusal", func(_ *fakeOrigin, ctx *fasthttp.RequestCtx) { ctx.Error("too large", 413) }, false},
		{"bad signature", func(_ *fakeOrigin, ctx *fasthttp.RequestCtx) { ctx.SetBody(make([]byte, 64)) }, true},
		{"hang up", hangup, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newFakeOrigin(t, tc.h)
			c := newClient(t, o.addr, func(cfg *Config) {
				cfg.MaxRetries = -1
				cfg.Breaker = BreakerConfig{Failures: 2, OpenFor: time.Minute}
			})
			var resp wire.Response
			for range 4 {
				err := c.Do(soon(10*time.Second), getReq("POST", "/"), &resp)
				if errors.Is(err, ErrBreakerOpen) {
					break
				}
			}
			if got := c.State() == "open"; got != tc.opens {
				t.Fatalf("breaker %s, want open %v", c.State(), tc.opens)
			}
			want := int64(4)
			if tc.opens {
				want = 2
			}
			if got := o.requests.Load(); got != want {
				t.Fatalf("origin saw %d requests, want %d", got, want)
			}
		})
	}

	t.Run("failure envelopes reach the caller", func(t *testing.T) {
		o := newFakeOrigin(t, func(o *fakeOrigin, ctx *fasthttp.RequestCtx) { echoStatus(o, ctx, 502, "upstream reset") })
		c := newClient(t, o.addr, nil)
		var resp wire.Response
		if err := c.Do(soon(10*time.Second), getReq("GET", "/"), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Status != 502 || string(resp.Error) != "upstream reset" {
			t.Fatalf("status %d error %q", resp.Status, resp.Error)
		}
		if got := value(t, c.m.exchanges.WithLabelValues("o1", "origin_error")); got != 1 {
			t.Fatalf("origin_error exchanges %v", got)
		}
	})
}

func TestMetrics(t *testing.T) {
	o := newFakeOrigin(t, echo)
	c := newClient(t, o.addr, nil)
	var resp wire.Response
	req := getReq("GET", "/m")
	req.Body = bytes.Repeat([]byte("compressible "), 1000)
	if err := c.Do(soon(10*time.Second), req, &resp); err != nil {
		t.Fatal(err)
	}
	bytesOf := func(dir, stage string) float64 {
		return value(t, c.m.bytes.WithLabelValues("o1", dir, stage))
	}
	for _, dir := range []string{"sent", "received"} {
		w, cb := bytesOf(dir, "wire"), bytesOf(dir, "cbor")
		// The body compresses well: the frame must be far smaller than
		// the envelope, and both at least what was sent.
		if cb < 13000 || w <= 0 || w > cb/4 {
			t.Errorf("%s: wire %v cbor %v", dir, w, cb)
		}
	}
	checks := []struct {
		c    prometheus.Collector
		want float64
	}{
		{c.m.exchanges.WithLabelValues("o1", "ok"), 1},
		{c.m.dict.WithLabelValues("o1", "none"), 1},
		{c.m.dict.WithLabelValues("o1", "hit"), 0},
		{c.m.errors.WithLabelValues("o1", "transport"), 0},
		{c.m.state.WithLabelValues("o1"), 0},
	}
	for i, ch := range checks {
		if got := value(t, ch.c); got != ch.want {
			t.Errorf("check %d: %v, want %v", i, got, ch.want)
		}
	}
	if n := histogramCount(t, c.reg, "wedge_edge_origin_exchange_duration_seconds"); n != 1 {
		t.Errorf("duration observations %d, want 1", n)
	}
	// Every label child exists from New on, so dashboards see zeros.
	if n := countSeries(c.m.errors); n != len(errKinds) {
		t.Errorf("%d errors_total series, want %d", n, len(errKinds))
	}

	// A response that fails authentication counts under its wire kind.
	o.handler = func(_ *fakeOrigin, ctx *fasthttp.RequestCtx) { ctx.SetBody(make([]byte, 64)) }
	if err := c.Do(soon(10*time.Second), getReq("POST", "/"), &resp); !errors.Is(err, wire.ErrAuth) {
		t.Fatalf("%v", err)
	}
	if got := value(t, c.m.errors.WithLabelValues("o1", "auth")); got != 1 {
		t.Errorf("auth errors %v", got)
	}
	if got := value(t, c.m.exchanges.WithLabelValues("o1", "bad_response")); got != 1 {
		t.Errorf("bad_response exchanges %v", got)
	}
}

// value reads a counter or gauge. (prometheus/testutil would need a module
// that go.sum does not list.)
func value(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("not a counter or gauge: %v", &m)
	return 0
}

func countSeries(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var n uint64
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
			return n
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func TestDictionary(t *testing.T) {
	var samples [][]byte
	for i := range 400 {
		r := getReq("GET", fmt.Sprintf("/items/%d", i))
		r.AddHeader([]byte("Accept"), []byte("application/json, text/plain, */*"))
		r.AddHeader([]byte("User-Agent"), []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0"))
		r.AddHeader([]byte("Accept-Language"), []byte("en-GB,en;q=0.9"))
		r.AddHeader([]byte("Cookie"), []byte(fmt.Sprintf("session=%08x; theme=dark", i*7919)))
		b, err := wire.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, b)
	}
	d, err := wire.TrainDict(samples, 9, 8<<10)
	if err != nil {
		t.Skipf("cannot train a dictionary here: %v", err)
	}
	o := newFakeOriginOpts(t, echo, originOpts{codec: origintest.NewCodec(t, wire.Config{Dicts: [][]byte{d}})})
	c := newClient(t, o.addr, func(cfg *Config) { cfg.Codec = origintest.NewCodec(t, wire.Config{Dicts: [][]byte{d}, Dict: 9}) })
	var resp wire.Response
	if err := c.Do(soon(10*time.Second), getReq("GET", "/items/1"), &resp); err != nil {
		t.Fatal(err)
	}
	if got := value(t, c.m.dict.WithLabelValues("o1", "hit")); got != 1 {
		t.Fatalf("dictionary hits %v, want 1", got)
	}
}

func TestSmallHeaders(t *testing.T) {
	var ua, ct []byte
	o := newFakeOrigin(t, func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		ua = append([]byte(nil), ctx.Request.Header.UserAgent()...)
		ct = append([]byte(nil), ctx.Request.Header.ContentType()...)
		echo(o, ctx)
	})
	d := &countingDialer{}
	c := newClient(t, o.addr, func(cfg *Config) { cfg.Dial = d.Dial })
	var resp wire.Response
	if err := c.Do(soon(10*time.Second), getReq("GET", "/"), &resp); err != nil {
		t.Fatal(err)
	}
	frame := value(t, c.m.bytes.WithLabelValues("o1", "sent", "wire"))
	overhead := float64(d.sent.Load()) - frame
	// Request line, Host, Content-Type and Content-Length, no more.
	if overhead > 110 || len(ua) != 0 || string(ct) != contentType {
		t.Fatalf("%v bytes of HTTP overhead, User-Agent %q, Content-Type %q", overhead, ua, ct)
	}
	t.Logf("HTTP request overhead: %v bytes", overhead)
}

func TestConcurrent(t *testing.T) {
	o := newFakeOrigin(t, echo)
	c := newClient(t, o.addr, func(cfg *Config) { cfg.MaxConns = 4 })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			var resp wire.Response
			req := getReq("PUT", "/")
			for i := range 50 {
				want := fmt.Sprintf("g%d-i%d-%s", g, i, bytes.Repeat([]byte{'x'}, i*37))
				req.Body = append(req.Body[:0], want...)
				if err := c.Do(soon(10*time.Second), req, &resp); err != nil {
					errs <- err
					return
				}
				if string(resp.Body) != want {
					errs <- fmt.Errorf("got another request's body: %.20q, want %.20q", resp.Body, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := o.conns.Load(); n > 4 {
		t.Errorf("%d connections with MaxConns 4", n)
	}
}

func TestNew(t *testing.T) {
	codec := origintest.NewCodec(t, wire.Config{})
	for _, cfg := range []Config{{Codec: codec}, {Addr: "127.0.0.1:1"}, {Addr: "no-port", Codec: codec, TLS: clientTLS(t)}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	c, err := New(Config{Addr: "127.0.0.1:1", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.name != "127.0.0.1:1" || c.retries != 2 || c.timeout != 10*time.Second || c.hc.MaxConns != 1024 || c.State() != "closed" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{ErrBreakerOpen, 503},
		{ErrTimeout, 504},
		{fmt.Errorf("wrapped: %w", ErrTimeout), 504},
		{ErrTransport, 502},
		{&RefusedError{Status: 401}, 502},
		{wire.ErrAuth, 502},
	} {
		if got := Status(tc.err); got != tc.want {
			t.Errorf("Status(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
