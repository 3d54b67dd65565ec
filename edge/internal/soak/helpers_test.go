package soak

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmbuild"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// root is the repository root, relative to this package.
const root = "../../../"

// poolSize is the wasm runtime's default pool size (wasm.NewConfig: two
// instances per GOMAXPROCS), which the edge does not override.
func poolSize() int { return 2 * runtime.GOMAXPROCS(0) }

// pluginFile builds the plugin or test guest in dir (relative to the
// repository root) and writes it to a temporary .wasm file.
func pluginFile(t *testing.T, dir string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), filepath.Base(dir)+".wasm")
	if err := os.WriteFile(f, wasmtest.Build(t, root+dir), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

var originKey = wire.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)}

// startOrigin runs an origin service in front of h and returns its address.
func startOrigin(t *testing.T, h origin.HandlerFunc) string {
	t.Helper()
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{originKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(codec.Close)
	srv, err := origin.NewServer(origin.ServerConfig{Codec: codec, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

type node struct {
	*edge.Node
	addr string
}

// startNode runs an edge node with the YAML config on a loopback port.
func startNode(t *testing.T, yaml string) *node {
	t.Helper()
	cfg, err := edge.ParseConfig([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{CompilationCache: wasmbuild.CompilationCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.Serve(ln)
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return &node{Node: n, addr: ln.Addr().String()}
}

// client returns a keep-alive client of the node holding one connection,
// as one closed-loop user does.
func (n *node) client() *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: n.addr, MaxConns: 1, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
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

// token mints an HS256 JWT for sub, valid for an hour.
func token(sub string) string {
	enc := base64.RawURLEncoding
	now := time.Now().Unix()
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := enc.EncodeToString(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, sub, now, now+3600))
	mac := hmac.New(sha256.New, jwtSecret)
	mac.Write([]byte(head + "." + claims))
	return head + "." + claims + "." + enc.EncodeToString(mac.Sum(nil))
}

// sum adds the values of every series of the family name whose labels
// include labels (counters and gauges).
func sum(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

// hangGuard bounds a wait for an event (a pool refilled, the load under
// way): only a hang reaches it, however busy the machine.
const hangGuard = 2 * time.Minute

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

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
