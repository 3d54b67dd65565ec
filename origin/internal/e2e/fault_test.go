package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
	"github.com/valyala/fasthttp"
)

// slack is what scheduling on a loaded 2-core machine (with -race) may add
// to a deadline before the test calls it a hang.
const slack = 250 * time.Millisecond

// rawUpstream accepts connections and hands each to misbehave.
func rawUpstream(tb testing.TB, misbehave func(net.Conn)) string {
	ln := listen(tb)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go misbehave(c)
		}
	}()
	return "http://" + ln.Addr().String()
}

// slowUpstream is an application whose handlers block until the test ends
// (or 10 s) and returns its URL.
func slowUpstream(tb testing.TB) string {
	ln := listen(tb)
	release := make(chan struct{})
	serve(tb, ln, func(ctx *fasthttp.RequestCtx) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		ctx.SetBodyString("too late")
	})
	// Registered after serve's shutdown, so it runs first and lets the
	// shutdown finish.
	tb.Cleanup(func() { close(release) })
	return "http://" + ln.Addr().String()
}

// TestUpstreamFaults: whatever the application does, the edge gets a
// well-formed answer from the origin, with a reason, within its deadline.
func TestUpstreamFaults(t *testing.T) {
	slow := slowUpstream(t)
	faults := []struct {
		name     string
		upstream string
		status   uint64
		reason   string
	}{
		{"down", "http://" + freeAddr(t), 502, "refused"},
		{"slow", slow, 504, "timeout"},
		{"reset", rawUpstream(t, func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			c.(*net.TCPConn).SetLinger(0) // RST, not FIN
			c.Close()
		}), 502, ""},
		{"garbage", rawUpstream(t, func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n\r\n"))
			c.Close()
		}), 502, ""},
		{"silent close", rawUpstream(t, func(c net.Conn) { c.Close() }), 502, ""},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			s := newStack(t, stackOpts{proxy: origin.ProxyConfig{Upstreams: []string{f.upstream}, HealthInterval: -1}})
			for _, method := range []string{"GET", "POST"} {
				const budget = 400 * time.Millisecond
				start := time.Now()
				resp := new(wire.Response)
				err := s.client.Do(start.Add(budget), newRequest(method, "/x"), resp)
				took := time.Since(start)
				if took > budget+slack {
					t.Errorf("%s: answered after %s, budget %s", method, took, budget)
				}
				// The origin answers a slow application 504 a margin
				// before the edge's deadline; on a loaded machine that
				// margin can run out first, and the edge's own timeout
				// gives its client the same 504.
				if f.status == 504 && errors.Is(err, originclient.ErrTimeout) {
					t.Logf("%s: the edge's deadline passed before the origin's 504 arrived", method)
					continue
				}
				if err != nil {
					t.Fatalf("%s: edge client error %v, want the origin's %d", method, err, f.status)
				}
				if resp.Status != f.status || len(resp.Error) == 0 || !strings.Contains(string(resp.Error), f.reason) {
					t.Errorf("%s: %d %q, want %d with a reason containing %q", method, resp.Status, resp.Error, f.status, f.reason)
				}
			}
		})
	}
}

// TestUpstreamFailover: with one of two upstreams down, every request is
// answered by the other, and health checks take the dead one out.
func TestUpstreamFailover(t *testing.T) {
	dead, live := freeAddr(t), echoUpstream(t)
	s := newStack(t, stackOpts{proxy: origin.ProxyConfig{
		Upstreams:      []string{"http://" + dead, live},
		HealthInterval: 50 * time.Millisecond, HealthPath: "/health"}})
	for i := range 20 {
		if resp := s.do(t, 2*time.Second, newRequest("GET", "/x")); resp.Status != 200 {
			t.Fatalf("request %d: %d %q", i, resp.Status, resp.Error)
		}
	}
	testutil.Eventually(t, 5*time.Second, "dead upstream still in rotation", func() bool {
		return wasmtest.Metric(t, s.originReg, "wedge_origin_upstream_healthy", map[string]string{"upstream": dead}) == 0
	})
	if up := wasmtest.Metric(t, s.originReg, "wedge_origin_upstream_healthy", map[string]string{"upstream": strings.TrimPrefix(live, "http://")}); up != 1 {
		t.Errorf("live upstream healthy = %v", up)
	}
}

// TestOriginFaults: the edge client against an origin that is down or
// never answers returns by its deadline with the status the edge should
// give its client.
func TestOriginFaults(t *testing.T) {
	blackhole := listen(t) // accepts (the kernel does) and never reads
	codec := origintest.NewCodec(t, wire.Config{})
	for _, c := range []struct {
		name   string
		addr   string
		want   error
		status int
	}{
		{"down", freeAddr(t), originclient.ErrTransport, 502},
		{"blackhole", blackhole.Addr().String(), originclient.ErrTimeout, 504},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := originclient.New(originclient.Config{Addr: c.addr, Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			const budget = 300 * time.Millisecond
			start := time.Now()
			err = cl.Do(start.Add(budget), newRequest("GET", "/"), new(wire.Response))
			if took := time.Since(start); took > budget+slack {
				t.Errorf("returned after %s, budget %s", took, budget)
			}
			if !errors.Is(err, c.want) || originclient.Status(err) != c.status {
				t.Errorf("err = %v (status %d), want %v (%d)", err, originclient.Status(err), c.want, c.status)
			}
		})
	}
}

// TestBreaker: the breaker opens after consecutive failures and then fails
// fast without touching the network; once the origin is back it half-opens,
// probes and closes.
func TestBreaker(t *testing.T) {
	addr := freeAddr(t)
	var accepted atomic.Int64
	edgeCodec := origintest.NewCodec(t, wire.Config{})
	cl, err := originclient.New(originclient.Config{Addr: addr, Codec: edgeCodec, MaxRetries: -1,
		Breaker: originclient.BreakerConfig{Failures: 3, OpenFor: 300 * time.Millisecond},
		Dial: func(a string) (net.Conn, error) {
			accepted.Add(1)
			return net.DialTimeout("tcp4", a, time.Second)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	get := func() error {
		return cl.Do(time.Now().Add(time.Second), newRequest("GET", "/"), new(wire.Response))
	}
	for i := range 3 {
		if err := get(); !errors.Is(err, originclient.ErrTransport) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	dials := accepted.Load()
	for range 10 {
		start := time.Now()
		if err := get(); !errors.Is(err, originclient.ErrBreakerOpen) || originclient.Status(err) != 503 {
			t.Fatalf("open breaker: %v", err)
		}
		if took := time.Since(start); took > slack {
			t.Errorf("open breaker took %s to refuse", took)
		}
	}
	if accepted.Load() != dials || cl.State() != "open" {
		t.Fatalf("open breaker dialled %d times; state %s", accepted.Load()-dials, cl.State())
	}

	// The origin comes back on the same address.
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{echoUpstream(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer origintest.StartConfig(t, origin.ServerConfig{Handler: p}, ln).Close()
	testutil.Eventually(t, 5*time.Second, "breaker never let a probe through to the recovered origin", func() bool {
		return get() == nil
	})
	if cl.State() != "closed" {
		t.Fatalf("after a good probe the breaker is %s", cl.State())
	}
	for i := range 5 {
		if err := get(); err != nil {
			t.Fatalf("request %d after recovery: %v", i, err)
		}
	}
}

// TestNoHangUnderLoad: 64 concurrent requests against a stalled upstream
// all come back, as 504s from the origin, within their deadline.
func TestNoHangUnderLoad(t *testing.T) {
	s := newStack(t, stackOpts{proxy: origin.ProxyConfig{Upstreams: []string{slowUpstream(t)}}})
	const budget = 500 * time.Millisecond
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Go(func() {
			start := time.Now()
			resp := new(wire.Response)
			err := s.client.Do(start.Add(budget), newRequest("GET", "/slow/"+string(rune('a'+i%26))), resp)
			took := time.Since(start)
			switch {
			case took > budget+2*slack:
				errs <- "answered after " + took.String()
			case err == nil && resp.Status != 504:
				errs <- fmt.Sprint("status ", resp.Status)
			case err != nil && !errors.Is(err, originclient.ErrTimeout):
				errs <- err.Error()
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
