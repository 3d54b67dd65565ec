package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEventually(t *testing.T) {
	var calls atomic.Int32
	Eventually(t, time.Minute, "the third call", func() bool { return calls.Add(1) == 3 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

// recorder is a testing.TB that records a Fatalf instead of stopping the
// test, so that Eventually's failure can be seen.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventuallyFails(t *testing.T) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(r, time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if !strings.Contains(r.failed, "never: not within 1ms") {
		t.Fatalf("failure %q, want the condition and the limit named", r.failed)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "x")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes, want 800", n)
	}
}

func TestMetricSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total"}, []string{"route", "code"})
	reg.MustRegister(c)
	c.WithLabelValues("a", "2xx").Add(3)
	c.WithLabelValues("a", "5xx").Add(1)
	c.WithLabelValues("b", "2xx").Add(10)
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{nil, 14},
		{map[string]string{"route": "a"}, 4},
		{map[string]string{"route": "a", "code": "5xx"}, 1},
		{map[string]string{"route": "c"}, 0},
	} {
		if got := MetricSum(t, reg, "requests_total", tc.labels); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.labels, got, tc.want)
		}
	}
}

// TestSilent: a request to a silent server times out, its bytes read.
func TestSilent(t *testing.T) {
	c, err := net.Dial("tcp4", Silent(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v; want nothing until the deadline", n, err)
	}
}
