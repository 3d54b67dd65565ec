//go:build !race

package edge_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestStreamProcesses runs the edge and the origin service as the
// processes they are in production (their binaries, built here) in front
// of an application in this test, and holds each process's memory while
// bodies far larger than it stream through:
//
//   - 1 GiB down and 1 GiB up, the bytes checked by sha256 at both ends,
//     computed as they go: each process's peak resident memory (VmHWM)
//     grows by less than 64 MiB over its idle size;
//   - 100 clients that each ask for a 256 MiB body and read none of it:
//     what each process holds for them is bounded (logged), under 1 MiB a
//     reader.
//
// Not under -race, which slows the transfers several times over; -short
// skips it (it moves 2 GiB through three processes: a few seconds).
func TestStreamProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB through three processes")
	}
	const (
		size    = 1 << 30
		growMax = 64 << 20
		readers = 100
		slow    = 256 << 20
	)
	dir := t.TempDir()
	for _, b := range []string{"edge", "origin"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b), "../"+b+"/cmd/"+b).CombinedOutput(); err != nil {
			// ../edge/cmd/edge from edge/, ../origin/cmd/origin.
			t.Fatalf("build %s: %v\n%s", b, err, out)
		}
	}

	// The application: downloads of the pattern, uploads hashed; it counts
	// what it wrote for each download in progress.
	var (
		active  atomic.Int64
		writing atomic.Int64 // downloads inside a write: blocked, once nobody reads
		written sync.Map     // request -> *atomic.Int64
	)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			c := new(atomic.Int64)
			written.Store(r, c)
			active.Add(1)
			defer func() { active.Add(-1); written.Delete(r) }()
			io.Copy(&countWriter{w: w, n: c, in: &writing}, &pattern{n: n})
		case "/upload":
			hashUpload(w, r)
		default:
			w.Write([]byte("ok"))
		}
	})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	origin := startProcess(t, `listen=(\S+)`, filepath.Join(dir, "origin"), "-listen", "127.0.0.1:0", "-metrics", "",
		"-health-path", "", "-key", origintest.Key.Text(), "-upstream", "http://"+ln.Addr().String())
	cfg := filepath.Join(dir, "edge.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
limits: {stream_threshold: 1048576}
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app, max_body_bytes: -1}
`, origin.addr, origintest.Key.Text())), 0o644)
	edge := startProcess(t, `edge: serving.*listen=(\S+)`, filepath.Join(dir, "edge"), "-config", cfg)
	base := "http://" + edge.addr

	// Warm up, then take each process's size at rest.
	for range 20 {
		resp, err := http.Get(base + "/download?n=100000")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	restEdge, restOrigin := edge.status(t, "VmRSS"), origin.status(t, "VmRSS")
	want := sumOf(size)

	start := time.Now()
	resp, err := http.Get(base + "/download?n=" + strconv.Itoa(size))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("download: %d bytes (%v), sha256 %x; want %d bytes, %s", n, err, h.Sum(nil), size, want)
	}
	down := time.Since(start)

	start = time.Now()
	req, _ := http.NewRequest("PUT", base+"/upload", &pattern{n: size})
	req.ContentLength = size
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := fmt.Sprintf("%d %s", size, want); resp.StatusCode != 200 || string(b) != got {
		t.Fatalf("upload: %d %q, want 200 %q", resp.StatusCode, b, got)
	}
	up := time.Since(start)
	for _, p := range []struct {
		name string
		proc *process
		rest int64
	}{{"edge", edge, restEdge}, {"origin", origin, restOrigin}} {
		peak := p.proc.status(t, "VmHWM")
		t.Logf("%s: %d MiB at rest, peak %d MiB after 1 GiB down (%v) and up (%v)", p.name, p.rest>>20, peak>>20,
			down.Round(time.Millisecond), up.Round(time.Millisecond))
		if peak-p.rest > growMax {
			t.Errorf("%s: peak resident memory grew by %d MiB moving 1 GiB each way, want under %d MiB", p.name, (peak-p.rest)>>20, growMax>>20)
		}
	}

	// The slow readers: each asks and reads nothing.
	restEdge, restOrigin = edge.status(t, "VmRSS"), origin.status(t, "VmRSS")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range readers {
		c, err := net.Dial("tcp4", edge.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /download?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", slow)
	}
	// Every body is under way, and has stopped moving: every download's
	// write is blocked and no byte moved since the last look, so the
	// buffers between the application and the readers are full.
	testutil.Eventually(t, 60*time.Second, "every slow reader's body to be under way", func() bool {
		return active.Load() == readers
	})
	var last int64 = -1
	testutil.Eventually(t, 60*time.Second, "the slow readers' bodies to stop moving", func() bool {
		var total int64
		written.Range(func(_, v any) bool { total += v.(*atomic.Int64).Load(); return true })
		still := total == last && writing.Load() == readers
		last = total
		return still
	})
	heldEdge, heldOrigin := edge.status(t, "VmRSS")-restEdge, origin.status(t, "VmRSS")-restOrigin
	t.Logf("%d slow readers of a %d MiB body, %.1f MiB on its way to each: edge holds %.1f MiB more, origin %.1f MiB",
		readers, slow>>20, float64(last)/readers/(1<<20), float64(heldEdge)/(1<<20), float64(heldOrigin)/(1<<20))
	// A budget of 1 MiB a reader: what a whole body would take is 256.
	for name, held := range map[string]int64{"edge": heldEdge, "origin": heldOrigin} {
		if held > readers<<20 {
			t.Errorf("%s holds %d MiB for %d slow readers, want under 1 MiB each", name, held>>20, readers)
		}
	}
}

// countWriter counts what it writes.
type countWriter struct {
	w  io.Writer
	n  *atomic.Int64
	in *atomic.Int64 // writes in progress
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.in.Add(1)
	defer c.in.Add(-1)
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// process is a binary the test runs, with the address it logged.
type process struct {
	cmd  *exec.Cmd
	addr string
}

// startProcess runs name with args until the test ends, and waits for the
// log line that addrRE finds its address in.
func startProcess(t *testing.T, addrRE, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, _ := cmd.StderrPipe()
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	re := regexp.MustCompile(addrRE)
	sc := bufio.NewScanner(out)
	p := &process{cmd: cmd}
	var lines []string
	for p.addr == "" && sc.Scan() {
		lines = append(lines, sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			p.addr = m[1]
		}
	}
	if p.addr == "" {
		t.Fatalf("%s did not start:\n%s", filepath.Base(name), strings.Join(lines, "\n"))
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return p
}

// status reads a size field (VmRSS, VmHWM) of /proc/PID/status, in bytes.
func (p *process) status(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n << 10
}
