package origin

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/wire"
)

// keeper marks a handler as a DeadlineKeeper.
type keeper struct{ Handler }

func (keeper) KeepsDeadline() bool { return true }

// onServeGoroutine reports whether the caller runs on the goroutine
// fasthttp serves the exchange's connection on.
func onServeGoroutine() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "origin.(*Server).handle(")
}

// TestServerDeadlineKeeperInline: a DeadlineKeeper (the Proxy) runs on the
// connection's goroutine, without a goroutine and timer of the server's per
// exchange; any other handler still runs on its own, under the server's
// watch.
func TestServerDeadlineKeeperInline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wrap   func(Handler) Handler
		inline bool
	}{
		{"deadline keeper", func(h Handler) Handler { return keeper{h} }, true},
		{"other handler", func(h Handler) Handler { return h }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inline := make(chan bool, 1)
			h := HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
				inline <- onServeGoroutine()
				resp.Body = append(resp.Body, "ok"...)
			})
			o := startOrigin(t, tc.wrap(h), nil)
			if resp := exchange(t, o.addr, o.codec, getReq("/")); resp.Status != 200 || string(resp.Body) != "ok" {
				t.Fatalf("got %d %q %q", resp.Status, resp.Body, resp.Error)
			}
			if got := <-inline; got != tc.inline {
				t.Fatalf("ran on the connection's goroutine: %v, want %v", got, tc.inline)
			}
		})
	}
	if !(&Proxy{}).KeepsDeadline() {
		t.Fatal("the Proxy does not run inline")
	}
}

// TestServerDeadlineKeeperContext: without the server's timer, a
// DeadlineKeeper's context still ends at its deadline, for a handler that
// waits on Done and for one that only asks Err.
func TestServerDeadlineKeeperContext(t *testing.T) {
	for _, waitDone := range []bool{true, false} {
		h := keeper{HandlerFunc(func(ctx context.Context, req *wire.Request, resp *wire.Response) {
			deadline, _ := ctx.Deadline()
			if waitDone {
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
					resp.Body = append(resp.Body, "context never ended"...)
					return
				}
			} else {
				for ctx.Err() == nil && time.Now().Before(deadline.Add(10*time.Second)) {
					runtime.Gosched()
				}
			}
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Now().Before(deadline) {
				resp.Body = append(resp.Body, "context ended early or wrongly: "+ctx.Err().Error()...)
				return
			}
			resp.Body = append(resp.Body, "ok"...)
		})}
		o := startOrigin(t, h, nil)
		req := getReq("/")
		req.Timeout = 100_000
		if resp := exchange(t, o.addr, o.codec, req); string(resp.Body) != "ok" {
			t.Fatalf("wait on Done %v: %d %q %q", waitDone, resp.Status, resp.Body, resp.Error)
		}
	}
}

// BenchmarkServerExchangeInline is BenchmarkServerExchange with the
// handler a DeadlineKeeper: no goroutine, no timer.
func BenchmarkServerExchangeInline(b *testing.B) {
	be := newBenchExchange(b)
	s, err := NewServer(ServerConfig{Codec: be.codec, Handler: keeper{be.s.handler}})
	if err != nil {
		b.Fatal(err)
	}
	be.s = s
	be.run()
	be.check(b)
	b.ReportAllocs()
	for b.Loop() {
		be.run()
	}
}
