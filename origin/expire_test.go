package origin

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/wire"
)

func TestLeft(t *testing.T) {
	sealed := time.UnixMilli(1767225600000)
	ms := func(n int) time.Time { return sealed.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name    string
		now     time.Time
		budget  uint64
		want    uint64
		running bool
	}{
		{"no budget", ms(1 << 30), 0, 0, true},
		{"read at once", ms(0), 2_000_000, 2_000_000, true},
		{"read after a wait", ms(500), 2_000_000, 1_500_000, true},
		{"read just in time", ms(1999), 2_000_000, 1_000, true},
		{"read at the edge's deadline", ms(2000), 2_000_000, 0, false},
		{"read long after", ms(60_000), 2_000_000, 0, false},
		{"edge clock ahead", ms(-300), 2_000_000, 2_000_000, true},
		{"budget past any clock", ms(1 << 40), 1 << 63, 1 << 63, true},
	} {
		got, ok := left(tc.now, sealed, tc.budget)
		if got != tc.want || ok != tc.running {
			t.Errorf("%s: %d µs, %v; want %d µs, %v", tc.name, got, ok, tc.want, tc.running)
		}
	}
}

// TestServerDropsExpiredFrames: a frame the server reads after the edge's
// deadline for it has passed is answered with a 504 and never reaches the
// handler. The frame's budget is 1 ms; the test waits out that millisecond
// before it posts the frame, as a stalled origin would.
func TestServerDropsExpiredFrames(t *testing.T) {
	var ran atomic.Int32
	o := startOrigin(t, HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		ran.Add(1)
		resp.Body = append(resp.Body, "ran"...)
	}), nil)
	req := getReq("/orders")
	req.Method = wire.Bytes("POST")
	req.Timeout = 1000
	frame, x, err := o.codec.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	for time.Since(x.Sealed) < 3*time.Millisecond {
		time.Sleep(time.Millisecond)
	}
	status, body, _ := post(t, o.addr, "POST", wire.Path, frame)
	if status != 200 {
		t.Fatalf("transport status %d: %s", status, body)
	}
	var resp wire.Response
	if _, err := o.codec.DecodeResponse(body, x, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 504 || string(resp.Error) != "request expired before the origin took it" {
		t.Errorf("got %d %q", resp.Status, resp.Error)
	}
	if ran.Load() != 0 {
		t.Error("the handler ran a request whose edge had given up on it")
	}
	if n := metric(t, o.reg, "wedge_origin_errors_total", "kind", "expired"); n != 1 {
		t.Errorf("expired frames counted %v, want 1", n)
	}
	// A request within its budget runs, and gets what is left of it.
	var budget atomic.Value
	o2 := startOrigin(t, HandlerFunc(func(ctx context.Context, _ *wire.Request, _ *wire.Response) {
		d, _ := ctx.Deadline()
		budget.Store(time.Until(d))
	}), nil)
	if resp := exchange(t, o2.addr, o2.codec, getReq("/")); resp.Status != 200 {
		t.Fatalf("in time: %d %q", resp.Status, resp.Error)
	}
	if d := budget.Load().(time.Duration); d <= 0 || d > 5*time.Second {
		t.Errorf("handler's budget %v of the request's 5 s", d)
	}
}
