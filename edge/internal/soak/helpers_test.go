package soak

import (
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge/edgetest"
)

// root is the repository root, relative to this package.
const root = "../../../"

// poolSize is the wasm runtime's default pool size (wasm.NewConfig: two
// instances per GOMAXPROCS), which the edge does not override.
func poolSize() int { return 2 * runtime.GOMAXPROCS(0) }

// client returns a keep-alive client of the node holding one connection,
// as one closed-loop user does.
func client(n *edgetest.Node) *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: n.Addr, MaxConns: 1, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
}

// reply is what a request got back.
type reply struct {
	status      int
	body        string
	cacheStatus string
	instance    string // X-Instance, which the misbehave guest sets
	err         error
	took        time.Duration
}

// do sends one GET with the header pairs in hdr.
func do(c *fasthttp.HostClient, host, target string, hdr ...string) reply {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.Addr + target)
	req.Header.SetHost(host)
	req.UseHostHeader = true
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	start := time.Now()
	err := c.DoTimeout(req, resp, 10*time.Second)
	r := reply{err: err, took: time.Since(start)}
	if err == nil {
		r.status, r.body, r.cacheStatus = resp.StatusCode(), string(resp.Body()), string(resp.Header.Peek("Cache-Status"))
		r.instance = string(resp.Header.Peek("X-Instance"))
	}
	return r
}

var jwtSecret = []byte("0123456789abcdef0123456789abcdef")

// hangGuard bounds a wait for an event (a pool refilled, the load under
// way): only a hang reaches it, however busy the machine.
const hangGuard = 2 * time.Minute

// proc is what the process holds at one moment.
type proc struct {
	heap       uint64 // Go heap in use right after a full GC: live objects
	rss        uint64 // resident set size
	goroutines int
	fds        int
}

// measure forces a GC so that the heap figure is live memory, not how far
// the collector happened to be behind, and, with release, returns freed
// heap to the kernel first so RSS is what the process retains rather than
// what the scavenger has not got round to yet.
func measure(t *testing.T, release bool) proc {
	t.Helper()
	runtime.GC()
	if release {
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := proc{heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm (not Linux?): %v", err)
	}
	f := strings.Fields(string(statm))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatalf("statm %q: %v", statm, err)
	}
	p.rss = pages * uint64(os.Getpagesize())
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	p.fds = len(fds)
	return p
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
