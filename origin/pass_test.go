package origin

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
)

// TestPassAfterUnshareable: once a URL's answer could not be shared,
// identical concurrent requests for it go upstream side by side instead of
// each waiting for the one ahead of it. The upstream holds every request
// after the first until two are in at once; with the requests queued behind
// a flight, the second never arrives while the first is held.
func TestPassAfterUnshareable(t *testing.T) {
	var n atomic.Int32
	both := make(chan struct{})
	var answered, together atomic.Bool
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetBodyString("body of " + string(ctx.Path()))
		switch n.Add(1) {
		case 1:
			return
		case 3:
			together.Store(!answered.Load())
			close(both)
			return
		}
		defer answered.Store(true)
		select {
		case <-both:
		case <-time.After(5 * time.Second):
			// The bound of a failing run, not a synchronisation.
		}
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1})
	if r := serve(p, getReq("/me"), 10*time.Second); r.Status != 200 {
		t.Fatalf("first: %d %q", r.Status, r.Error)
	}
	resps := runConcurrently(p, 2, func() *wire.Request { return getReq("/me") }, 20*time.Second)
	if !together.Load() {
		t.Error("the second request waited for the first: an unshareable URL is still collapsed")
	}
	for i, r := range resps {
		if r.Status != 200 || string(r.Body) != "body of /me" || r.Cache.Shared != 0 {
			t.Errorf("response %d: %d %q shared %d", i, r.Status, r.Body, r.Cache.Shared)
		}
	}
}

// TestPassEndsWhenShareable: the first shareable answer to a passed URL
// lets its requests collapse again.
func TestPassEndsWhenShareable(t *testing.T) {
	var cc atomic.Value
	cc.Store("no-store")
	gate := make(chan struct{})
	var open sync.Once
	t.Cleanup(func() { open.Do(func() { close(gate) }) })
	var hold atomic.Bool
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		if hold.Load() {
			<-gate
		}
		ctx.Response.Header.Set("Cache-Control", cc.Load().(string))
		ctx.SetBodyString("body of " + string(ctx.Path()))
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1})
	serve(p, getReq("/p"), 10*time.Second)
	if passed(p) != 1 {
		t.Fatalf("%d keys passed after a no-store answer, want 1", passed(p))
	}
	cc.Store("public, max-age=60")
	serve(p, getReq("/p"), 10*time.Second)
	if passed(p) != 0 {
		t.Fatalf("%d keys passed after a shareable answer, want 0", passed(p))
	}
	hold.Store(true)
	const k = 4
	done := make(chan []*wire.Response)
	go func() { done <- runConcurrently(p, k, func() *wire.Request { return getReq("/p") }, 10*time.Second) }()
	testutil.Eventually(t, 10*time.Second, "the requests to collapse again", func() bool { return waiting(p, getReq("/p")) == k-1 })
	open.Do(func() { close(gate) })
	for i, r := range <-done {
		if r.Status != 200 {
			t.Errorf("response %d: %d %q", i, r.Status, r.Error)
		}
	}
}

// TestPassBounded: the passed keys stay within maxPasses, and an origin
// failure does not mark its key.
func TestPassBounded(t *testing.T) {
	u := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Set-Cookie", "s=1")
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1})
	p.maxPasses = 8
	for i := range 20 {
		serve(p, getReq("/k"+string(rune('a'+i))), 10*time.Second)
		if got := passed(p); got > 8 {
			t.Fatalf("%d keys passed, at most 8", got)
		}
	}
	if got := passed(p); got != 8 {
		t.Errorf("%d keys passed, want 8", got)
	}
	// A key already marked, marked again with the map full, evicts nobody
	// (each key in turn: an eviction picks a random one).
	p.mu.Lock()
	before := maps.Clone(p.passes)
	p.mu.Unlock()
	for h := range before {
		p.mu.Lock()
		p.mark(h, &wire.Response{Status: 200}, false)
		same := maps.Equal(before, p.passes)
		p.mu.Unlock()
		if !same {
			t.Fatalf("marking a marked key again changed the marks")
		}
	}

	down := newProxy(t, ProxyConfig{Upstreams: []string{deadPort(t)}, HealthInterval: -1})
	if r := serve(down, getReq("/x"), 10*time.Second); len(r.Error) == 0 {
		t.Fatalf("a closed upstream answered: %d", r.Status)
	}
	if got := passed(down); got != 0 {
		t.Errorf("an origin failure passed %d keys", got)
	}
}

func passed(p *Proxy) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.passes)
}

// BenchmarkProxyUnshareableParallel forwards identical GETs for a no-store
// URL from parallel goroutines: each goes upstream on its own, and none
// waits behind a flight for an answer it cannot share.
func BenchmarkProxyUnshareableParallel(b *testing.B) {
	u := startUpstream(b, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetBodyString("<!doctype html><title>hello</title><p>a page nobody may store</p>")
	})
	p := newProxy(b, ProxyConfig{Upstreams: []string{u.url}, HealthInterval: -1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		req := getReq("/account")
		var resp wire.Response
		for pb.Next() {
			resp.Reset()
			p.ServeOrigin(ctx, req, &resp)
			if resp.Status != 200 {
				b.Errorf("status %d %q", resp.Status, resp.Error)
				return
			}
		}
	})
}

// reportCPU reports the process's CPU time per op (cpu-ns/op), upstream
// included, which a busy neighbour does not inflate the way it does wall
// time. Defer the function it returns.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() { b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
