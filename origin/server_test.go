package origin

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
)

func echoHandler() Handler {
	return HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 201
		resp.AddHeader([]byte("X-Method"), req.Method)
		resp.AddHeader([]byte("X-Path"), req.Path)
		for _, f := range req.Header {
			resp.AddHeader(f.Name, f.Value)
		}
		for _, v := range req.Values {
			resp.AddHeader(append([]byte("X-Value-"), v.Name...), v.Value)
		}
		resp.Body = append(resp.Body, req.Body...)
		resp.Cache.TTL = 60
	})
}

func TestServerExchange(t *testing.T) {
	o := startOrigin(t, echoHandler(), nil)
	req := getReq("/hello")
	req.AddHeader([]byte("Accept"), []byte("a"))
	req.AddHeader([]byte("Accept"), []byte("b"))
	req.AddValue([]byte("User"), []byte("alice"))
	req.Body = wire.Bytes("\x00\x01\xffbody")
	resp := exchange(t, o.addr, o.codec, req)
	if resp.Status != 201 || !bytes.Equal(resp.Body, req.Body) || resp.Cache.TTL != 60 || len(resp.Error) != 0 {
		t.Fatalf("got %+v", resp)
	}
	want := []wire.Field{
		{Name: wire.Bytes("X-Method"), Value: wire.Bytes("GET")},
		{Name: wire.Bytes("X-Path"), Value: wire.Bytes("/hello")},
		{Name: wire.Bytes("Accept"), Value: wire.Bytes("a")},
		{Name: wire.Bytes("Accept"), Value: wire.Bytes("b")},
		{Name: wire.Bytes("X-Value-User"), Value: wire.Bytes("alice")},
	}
	if !wire.Equal(resp.Header, want) {
		t.Fatalf("header %q, want %q", resp.Header, want)
	}
	if got := metric(t, o.reg, "wedge_origin_exchanges_total", "code", "2xx"); got != 1 {
		t.Errorf("exchanges 2xx = %v", got)
	}
	if got := metric(t, o.reg, "wedge_origin_dict_total", "dict", "none"); got != 1 {
		t.Errorf("dict none = %v", got)
	}
	for _, dir := range []string{"in", "out"} {
		for _, stage := range []string{"wire", "cbor"} {
			if got := metric(t, o.reg, "wedge_origin_bytes_total", "direction", dir, "stage", stage); got <= 0 {
				t.Errorf("bytes %s %s = %v", dir, stage, got)
			}
		}
	}
	if got := metric(t, o.reg, "wedge_origin_exchange_duration_seconds"); got != 1 {
		t.Errorf("duration samples = %v", got)
	}
	testutil.Eventually(t, 5*time.Second, "in-flight back to 0", func() bool { return o.srv.inflight.Load() == 0 })
}

func TestServerDictionaryCounted(t *testing.T) {
	var samples [][]byte
	for i := range 400 {
		r := getReq("/products/" + strconv.Itoa(i))
		r.AddHeader([]byte("Accept"), []byte("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"))
		r.AddHeader([]byte("User-Agent"), []byte("Mozilla/5.0 (X11; Linux x86_64; rv:"+strconv.Itoa(100+i%20)+".0) Gecko/20100101"))
		r.AddHeader([]byte("Accept-Language"), []byte("en-US,en;q=0.5"))
		b, err := wire.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, b)
	}
	d, err := wire.TrainDict(samples, 9, 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	// The origin decodes any dictionary it holds; the edge picks one.
	srvCodec := newCodec(t, wire.Config{Dicts: [][]byte{d}})
	o2 := startOrigin(t, echoHandler(), func(c *ServerConfig) { c.Codec = srvCodec })
	edge := newCodec(t, wire.Config{Dicts: [][]byte{d}, Dict: 9})
	resp := exchange(t, o2.addr, edge, getReq("/products/7"))
	if resp.Status != 201 {
		t.Fatalf("status %d", resp.Status)
	}
	if hit, none := metric(t, o2.reg, "wedge_origin_dict_total", "dict", "hit"), metric(t, o2.reg, "wedge_origin_dict_total", "dict", "none"); hit != 1 || none != 0 {
		t.Fatalf("dict hit %v none %v", hit, none)
	}
}

func TestServerRefusals(t *testing.T) {
	block := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(block) }) }
	t.Cleanup(release)
	h := HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
		if string(req.Path) == "/block" {
			<-block
		}
		resp.Body = append(resp.Body, "ok"...)
	})
	srvCodec := newCodec(t, wire.Config{MaxEnvelope: 64 << 10})
	o := startOrigin(t, h, func(c *ServerConfig) {
		c.Codec = srvCodec
		c.MaxInFlight = 1
	})
	o.codec = srvCodec
	seal := func(c *wire.Codec, r *wire.Request) []byte {
		f, _, err := c.AppendRequest(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	wrongSecret := newCodec(t, wire.Config{Keys: []wire.Key{{ID: 7, Secret: bytes.Repeat([]byte{1}, 32)}}})
	unknownKey := newCodec(t, wire.Config{Keys: []wire.Key{{ID: 9, Secret: bytes.Repeat([]byte{0x42}, 32)}}})
	big := newCodec(t, wire.Config{MaxEnvelope: 1 << 20})
	noise := make([]byte, 100<<10) // incompressible, so the frame stays large
	rand.Read(noise)
	bigReq := getReq("/")
	bigReq.Body = noise

	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		bodyHas            string
		kind               string
	}{
		{"wrong secret", "POST", wire.Path, seal(wrongSecret, getReq("/")), 401, "authentication failed", "auth"},
		{"unknown key", "POST", wire.Path, seal(unknownKey, getReq("/")), 401, "unknown key 9", "auth"},
		{"garbage", "POST", wire.Path, []byte("hello, origin"), 400, "malformed frame", "frame"},
		{"empty", "POST", wire.Path, nil, 400, "malformed frame", "frame"},
		{"over the codec's limit", "POST", wire.Path, seal(big, bigReq), 413, "too large", "too_large"},
		// Refused on its Content-Length; more than socket buffers hold, so
		// the sender is still writing when the answer is ready.
		{"over the body limit", "POST", wire.Path, make([]byte, 8<<20), 413, "too large", "too_large"},
		{"other path", "POST", "/other", seal(o.codec, getReq("/")), 404, "not found", ""},
		{"wrong method", "GET", wire.Path, nil, 405, "POST", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := metric(t, o.reg, "wedge_origin_errors_total", "kind", c.kind)
			status, body, h := post(t, o.addr, c.method, c.path, c.body)
			if status != c.status || !strings.Contains(string(body), c.bodyHas) {
				t.Fatalf("got %d %q, want %d with %q", status, body, c.status, c.bodyHas)
			}
			if ct := string(h.ContentType()); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("content type %q", ct)
			}
			if c.status == 405 && string(h.Peek("Allow")) != "POST" {
				t.Errorf("Allow %q", h.Peek("Allow"))
			}
			if c.kind != "" {
				if after := metric(t, o.reg, "wedge_origin_errors_total", "kind", c.kind); after != before+1 {
					t.Errorf("errors{kind=%s} went from %v to %v", c.kind, before, after)
				}
			}
		})
	}
	if got := metric(t, o.reg, "wedge_origin_auth_failures_total"); got != 2 {
		t.Errorf("auth failures = %v, want 2", got)
	}

	t.Run("overload", func(t *testing.T) {
		done := make(chan *wire.Response, 1)
		go func() { done <- exchange(t, o.addr, o.codec, getReq("/block")) }()
		testutil.Eventually(t, 5*time.Second, "the blocking exchange to start", func() bool { return o.srv.inflight.Load() == 1 })
		status, body, h := post(t, o.addr, "POST", wire.Path, seal(o.codec, getReq("/")))
		if status != 503 || string(h.Peek("Retry-After")) != "1" {
			t.Fatalf("got %d %q Retry-After %q", status, body, h.Peek("Retry-After"))
		}
		if got := metric(t, o.reg, "wedge_origin_errors_total", "kind", "overload"); got != 1 {
			t.Errorf("overload errors = %v", got)
		}
		release()
		if r := <-done; r.Status != 200 || string(r.Body) != "ok" {
			t.Fatalf("blocked exchange got %+v", r)
		}
		if r := exchange(t, o.addr, o.codec, getReq("/")); string(r.Body) != "ok" {
			t.Fatalf("after overload got %+v", r)
		}
	})
}

func TestServerDeadlines(t *testing.T) {
	s := &Server{maxTime: 30 * time.Second}
	now := time.Unix(1000, 0)
	cases := []struct {
		timeoutUS   uint64
		app, answer time.Duration
	}{
		{0, 30 * time.Second, 30*time.Second + 25*time.Millisecond},
		{1_000_000, 950 * time.Millisecond, 975 * time.Millisecond},
		{200_000, 180 * time.Millisecond, 190 * time.Millisecond},
		{100_000_000, 30 * time.Second, 30*time.Second + 25*time.Millisecond},
		{^uint64(0), 30 * time.Second, 30*time.Second + 25*time.Millisecond},
	}
	for _, c := range cases {
		app, hard := s.deadlines(now, c.timeoutUS)
		if app.Sub(now) != c.app || hard.Sub(now) != c.answer {
			t.Errorf("timeout %dus: app %v answer %v, want %v %v", c.timeoutUS, app.Sub(now), hard.Sub(now), c.app, c.answer)
		}
		if c.timeoutUS > 0 && c.timeoutUS < 1<<40 && hard.Sub(now) >= time.Duration(c.timeoutUS)*time.Microsecond {
			t.Errorf("timeout %dus: answers at %v, after the edge gave up", c.timeoutUS, hard.Sub(now))
		}
	}
}

func TestServerStuckHandler(t *testing.T) {
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	var ctxErr error
	var mu sync.Mutex
	h := HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
		switch string(req.Path) {
		case "/stuck":
			// Ignores its context and keeps writing to its response, which
			// must not be anyone else's by then.
			for {
				select {
				case <-stuck:
					return
				default:
				}
				resp.Body = append(resp.Body[:0], "late"...)
				time.Sleep(time.Millisecond)
			}
		case "/polite":
			<-ctx.Done()
			mu.Lock()
			ctxErr = ctx.Err()
			mu.Unlock()
			failure(resp, 504, "gave up politely")
		default:
			resp.Body = append(resp.Body, req.Path...)
		}
	})
	o := startOrigin(t, h, nil)
	// A budget long enough that the margin (50 ms) dwarfs scheduling noise
	// on a busy machine.
	const budget = time.Second
	// Warm both codecs and the connection, so the timing below is the
	// server's.
	exchange(t, o.addr, o.codec, getReq("/warm"))

	for _, c := range []struct{ path, reason string }{
		{"/stuck", "application did not answer in time"},
		{"/polite", "gave up politely"},
	} {
		req := getReq(c.path)
		req.Timeout = uint64(budget / time.Microsecond)
		start := time.Now()
		resp := exchange(t, o.addr, o.codec, req)
		took := time.Since(start)
		if resp.Status != 504 || string(resp.Error) != c.reason || !strings.Contains(string(resp.Body), c.reason) {
			t.Fatalf("%s: got %d %q %q", c.path, resp.Status, resp.Error, resp.Body)
		}
		if took >= budget || took < budget*8/10 {
			t.Errorf("%s: answered after %v, want within the budget of %v and not long before", c.path, took, budget)
		}
	}
	mu.Lock()
	if ctxErr != context.DeadlineExceeded {
		t.Errorf("polite handler saw ctx.Err() = %v", ctxErr)
	}
	mu.Unlock()
	if got := metric(t, o.reg, "wedge_origin_errors_total", "kind", "timeout"); got != 1 {
		t.Errorf("timeouts = %v, want 1 (the stuck one)", got)
	}
	// The stuck handler still holds its slot, and nothing else.
	if n := o.srv.inflight.Load(); n != 1 {
		t.Errorf("in flight %d, want the stuck handler's 1", n)
	}
	for i := range 20 {
		p := "/fine/" + strconv.Itoa(i)
		if resp := exchange(t, o.addr, o.codec, getReq(p)); string(resp.Body) != p {
			t.Fatalf("after a stuck handler: got %q, want %q", resp.Body, p)
		}
	}
}

func TestServerHandlerFaults(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
		switch string(req.Path) {
		case "/panic":
			panic("boom")
		case "/status":
			resp.Status = 99
		case "/large":
			resp.Body = make([]byte, 8<<10)
			rand.Read(resp.Body)
		case "/zero":
		}
	})
	small := newCodec(t, wire.Config{MaxEnvelope: 4 << 10})
	o := startOrigin(t, h, func(c *ServerConfig) { c.Codec = small })
	for _, c := range []struct {
		path   string
		status uint64
		reason string
	}{
		{"/panic", 502, "application handler panicked"},
		{"/status", 502, "application answered with an invalid status"},
		{"/large", 502, "application response too large for the wire"},
		{"/zero", 200, ""},
	} {
		resp := exchange(t, o.addr, small, getReq(c.path))
		if resp.Status != c.status || string(resp.Error) != c.reason {
			t.Errorf("%s: got %d %q, want %d %q", c.path, resp.Status, resp.Error, c.status, c.reason)
		}
	}
}

// TestServerHammer mixes exchanges that answer in time with ones that miss
// their deadline, from many connections at once, so the race detector sees
// jobs and buffers handed between the worker and handler goroutines.
func TestServerHammer(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
		if bytes.HasPrefix(req.Path, []byte("/slow")) {
			time.Sleep(250 * time.Millisecond) // an application too slow for its budget
		}
		resp.Body = append(resp.Body, req.ID...)
		resp.AddHeader([]byte("X-Path"), req.Path)
	})
	o := startOrigin(t, h, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered, fast := 0, 0
	errs := make(chan error, 1000)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				id := fmt.Sprintf("%d-%d", g, i)
				slow := i%8 == 0
				req := getReq("/fast")
				if slow {
					req = getReq("/slow")
				}
				req.ID = wire.Bytes(id)
				req.Timeout = 200_000
				resp := exchange(t, o.addr, o.codec, req)
				switch {
				case resp.Status == 200 && string(resp.Body) == id && !slow:
					mu.Lock()
					answered++
					mu.Unlock()
				case resp.Status == 504 && string(resp.Error) == "application did not answer in time":
					// Expected of the slow ones; a fast one may miss on a
					// loaded machine, which the count below bounds.
				default:
					errs <- fmt.Errorf("%s %s: got %d %q", id, req.Path, resp.Status, resp.Body)
				}
				if !slow {
					mu.Lock()
					fast++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if answered < fast/2 {
		t.Errorf("only %d of %d fast exchanges answered in time", answered, fast)
	}
	testutil.Eventually(t, 5*time.Second, "slow handlers to return", func() bool { return o.srv.inflight.Load() == 0 })
}

func TestServerShutdown(t *testing.T) {
	srv, err := NewServer(ServerConfig{Codec: newCodec(t, wire.Config{}), Handler: echoHandler()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if _, err := NewServer(ServerConfig{Handler: echoHandler()}); err == nil {
		t.Error("NewServer without a codec succeeded")
	}
}
