package edge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/origintest"
)

// TestHoldIdleConnections holds WEDGE_IDLE_CONNS idle keep-alive
// connections (deploy/bench/edge-conns.sh sets 50000) on an edge process
// while other clients load it, and reports the edge's resident memory with
// them and without. It is a measurement, not a CI test: it runs only when
// the variable is set.
func TestHoldIdleConnections(t *testing.T) {
	want, _ := strconv.Atoi(os.Getenv("WEDGE_IDLE_CONNS"))
	if want <= 0 {
		t.Skip("set WEDGE_IDLE_CONNS=N to hold N connections (deploy/bench/edge-conns.sh)")
	}
	lim := syscall.Rlimit{Cur: uint64(want) + 1000, Max: uint64(want) + 1000}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		var cur syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
		t.Fatalf("raise the open-file limit to %d (hard limit here %d; raising it needs CAP_SYS_RESOURCE): %v", lim.Cur, cur.Max, err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "edge")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/edge").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "hello.wasm"), mustRead(t, hello(t)), 0o644)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
limits: {max_conns: %d, idle_timeout: 10m}
origins:
  app: {addr: %q, key: %q}
routes:
  - {origin: app, chain: [{file: hello.wasm}]}
`, want+1000, startOrigin(t, "o"), origintest.Key.Text())
	os.WriteFile(filepath.Join(dir, "edge.yaml"), []byte(cfg), 0o644)
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "edge.yaml"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr := ""
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`listen=(\S+)`)
	for addr == "" && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "edge: serving") {
			addr = m[1]
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if addr == "" {
		t.Fatal("the edge did not start")
	}
	rss := func() int64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n << 10
	}
	// Warm the node up, then measure it idle.
	load(t, addr, 2*time.Second)
	base := rss()

	// Open the connections, each from a loopback source address of its own
	// group (one address has ~28k ephemeral ports), each making one request
	// and then staying open and idle.
	start := time.Now()
	conns := make([]net.Conn, 0, want)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int64
	per := (want + 7) / 8
	for g := range 8 {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+g/2))}, Timeout: 10 * time.Second}
			buf := make([]byte, 512)
			for range min(per, want-g*per) {
				c, err := d.Dial("tcp4", addr)
				if err == nil {
					_, err = c.Write([]byte("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))
				}
				if err == nil {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, err = c.Read(buf)
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	opened := time.Since(start)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	held := rss()
	rps, p99 := load(t, addr, 10*time.Second)
	// Every 100th held connection still answers.
	dead := 0
	buf := make([]byte, 512)
	for i := 0; i < len(conns); i += 100 {
		c := conns[i]
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			dead++
			continue
		}
		if n, err := c.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
			dead++
		}
	}
	t.Logf("held %d idle connections (%d failed to open) in %s", len(conns), failed.Load(), opened.Round(time.Millisecond))
	t.Logf("edge RSS: %d MiB idle, %d MiB holding them: %.1f KiB per connection",
		base>>20, held>>20, float64(held-base)/1024/float64(max(len(conns), 1)))
	t.Logf("meanwhile, 8 other connections: %.0f req/s, p99 %s; %d of %d sampled held connections dead",
		rps, p99, dead, (len(conns)+99)/100)
	if failed.Load() > 0 || dead > 0 || len(conns) != want {
		t.Fatalf("not every connection was held")
	}
}

func mustRead(t *testing.T, f string) []byte {
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// load sends GET /hello on 8 connections for d and returns requests/s and
// the p99 latency.
func load(t *testing.T, addr string, d time.Duration) (float64, time.Duration) {
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 8}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range 8 {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + addr + "/hello")
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
					t.Errorf("load: %v %d", err, resp.StatusCode())
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(lat) == 0 {
		return 0, 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(len(lat)) / d.Seconds(), lat[len(lat)*99/100]
}
