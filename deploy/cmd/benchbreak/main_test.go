package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stack builds perf script lines for one sample, leaf first; a frame is
// "sym (dso)".
func stack(header string, frames ...string) string {
	var b strings.Builder
	b.WriteString(header + "\n")
	for i, f := range frames {
		b.WriteString("\t    " + strings.Repeat("a", i+1) + " " + f + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

const (
	kern = " ([kernel.kallsyms])"
	bin  = " (/tmp/x/edge)"
	jit  = " (/tmp/perf-100.map)"
)

// The perf map names modules by the last function index; 1932 is auth.
const perfMap = `7f5dde538000 40 [1916/1932].main.__auth_.OnRequest:::::L0
7f5dde538040 40 [1916/1932].main.__auth_.OnRequest:::::L27
7f5ddd000000 40 [1851/1863].main.__ratelimit_.OnRequest:::::L0
7f5ddc000000 40 [2000/2098].main.cache.OnRequest:::::L0
7f5e3473b044 10 entry_preamble::type=v_i32
`

func TestClassify(t *testing.T) {
	plugins, err := pluginNames(strings.NewReader(perfMap))
	if err != nil {
		t.Fatal(err)
	}
	c := &classifier{roles: map[int]string{100: "edge", 200: "origin", 300: "app"}, plugins: plugins}
	for _, tc := range []struct {
		name   string
		pid    int
		frames []string
		want   string
	}{
		{"send", 100, []string{"copy_user_enhanced" + kern, "tcp_sendmsg_locked" + kern, "ksys_write" + kern, "do_syscall_64" + kern, "syscall.write" + bin}, partSend},
		{"loopback delivery in the send", 100, []string{"tcp_v4_rcv" + kern, "net_rx_action" + kern, "__x64_sys_sendto" + kern}, partSend},
		{"receive", 200, []string{"tcp_recvmsg" + kern, "__x64_sys_recvfrom" + kern, "internal/runtime/syscall/linux.Syscall6" + bin}, partRecv},
		{"context switch at syscall exit", 100, []string{"finish_task_switch.isra.0" + kern, "__schedule" + kern, "schedule" + kern, "do_syscall_64" + kern, "internal/runtime/syscall/linux.Syscall6" + bin}, partSwitch},
		{"wake-up IPI over Wasm", 100, []string{"irqentry_exit_to_user_mode" + kern, "asm_sysvec_reschedule_ipi" + kern, "[1887/1932].github.com_talowa_wedge_sdk_jsonscan.scanString:::::L22" + jit}, partSwitch},
		{"epoll", 100, []string{"ep_poll" + kern, "__x64_sys_epoll_pwait" + kern}, partKernel},
		{"page fault", 100, []string{"clear_page_erms" + kern, "asm_exc_page_fault" + kern, "runtime.memclrNoHeapPointers" + bin}, partKernel},
		{"plugin code", 100, []string{"[1919/1932].main.__auth_.checkJWT:::::L196" + jit, "[1916/1932].main.__auth_.OnRequest:::::L27" + jit, "entry_preamble::type=v_i32" + jit}, pluginPart("auth")},
		{"exported entry, no dot", 100, []string{"[1835/1863]wedge_on_request:::::L0" + jit}, pluginPart("ratelimit")},
		{"guest allocation", 100, []string{"[100/2098].runtime.memclrNoHeapPointers:::::L1" + jit, "[101/2098].runtime.mallocgcTiny:::::L3" + jit, "[2000/2098].main.cache.OnRequest:::::L0" + jit}, guestGCPart("cache")},
		{"guest runtime that is not allocation", 100, []string{"[231/2098].runtime.__itabTableType_.find:::::L52" + jit, "[1302/2098].runtime.getitab:::::L43" + jit, "[2000/2098].main.cache.OnRequest:::::L0" + jit}, pluginPart("cache")},
		{"unnamed module", 100, []string{"[3/7].main.f:::::L0" + jit}, pluginPart("module#7")},
		{"entry preamble", 100, []string{"entry_preamble::type=v_i32" + jit}, partTrampolines},
		{"host trampoline", 100, []string{"trampoline:wedge.verify" + jit}, partTrampolines},
		{"wazero", 100, []string{"github.com/tetratelabs/wazero/internal/engine/wazevo.(*callEngine).callWithStack" + bin, "github.com/talowa/wedge/wasm.(*instance).invoke" + bin}, partWazero},
		{"host crypto", 100, []string{"crypto/internal/fips140/sha256.blockAMD64" + bin, "crypto/hmac.(*HMAC).Sum" + bin, "github.com/talowa/wedge/wasm/host.(*Call).Verify" + bin, "github.com/talowa/wedge/wasm.init.func26" + bin, "github.com/tetratelabs/wazero/internal/engine/wazevo.(*callEngine).callWithStack" + bin}, partHost},
		{"ABI adapter", 100, []string{"github.com/talowa/wedge/wasm.view" + bin, "github.com/talowa/wedge/wasm.init.func12" + bin, "github.com/tetratelabs/wazero/internal/engine/wazevo.(*callEngine).callWithStack" + bin}, partHost},
		{"plugin pool", 100, []string{"sync/atomic.CompareAndSwapUintptr" + bin, "github.com/talowa/wedge/wasm.(*pool).put" + bin, "github.com/talowa/wedge/wasm.(*Module).call" + bin, "github.com/talowa/wedge/edge.(*Node).serve" + bin}, partPool},
		{"memmove counts for its caller", 100, []string{"runtime.memmove" + bin, "github.com/valyala/fasthttp.(*Response).Write" + bin}, partFasthttp},
		{"allocation", 100, []string{"runtime.nextFreeFast" + bin, "runtime.mallocgc" + bin, "github.com/talowa/wedge/edge.(*Node).serve" + bin}, partGC},
		{"GC worker", 100, []string{"runtime.scanobject" + bin, "runtime.gcDrain" + bin, "runtime.gcBgMarkWorker" + bin}, partGC},
		{"scheduler", 100, []string{"runtime.findRunnable" + bin, "runtime.schedule" + bin}, partSched},
		{"vdso clock for edge logic", 100, []string{"__vdso_clock_gettime ([vdso])", "time.Now" + bin, "github.com/talowa/wedge/edge.(*Node).serve" + bin}, partEdge},
		{"envelope hmac", 100, []string{"crypto/internal/fips140/sha256.blockAMD64" + bin, "crypto/hmac.(*HMAC).Write" + bin, "github.com/talowa/wedge/origin/wire.(*Codec).Seal" + bin}, partCodec},
		{"zstd", 200, []string{"github.com/klauspost/compress/zstd.(*fastEncoder).Encode" + bin}, partCodec},
		{"cbor", 200, []string{"reflect.Value.Field" + bin, "github.com/fxamacker/cbor/v2.encodeStruct" + bin}, partCodec},
		{"edge origin client", 100, []string{"github.com/talowa/wedge/edge/originclient.(*Client).Do" + bin}, partLink},
		{"origin service", 200, []string{"github.com/talowa/wedge/origin.(*Server).serve" + bin}, partOrigin},
		{"origin main", 200, []string{"main.main" + bin}, partOrigin},
		{"metrics", 100, []string{"github.com/prometheus/client_golang/prometheus.(*histogram).Observe" + bin}, partMetrics},
		{"application", 300, []string{"github.com/valyala/fasthttp.(*Server).serveConn" + bin}, partApp},
		{"application's kernel time", 300, []string{"tcp_sendmsg" + kern, "ksys_write" + kern}, partSend},
		{"an unknown library", 100, []string{"github.com/someone/else.F" + bin}, partOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := parseScript(strings.NewReader(stack("edge "+strconv.Itoa(tc.pid)+"/1", tc.frames...)), func(s sample) {
				got = append(got, c.classify(s))
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("classify = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRun renders a table from two runs: shares of each process's samples
// times its CPU, over the requests.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "perf-100.map")
	write(t, mapPath, perfMap)
	hit := filepath.Join(dir, "hit")
	// 1000 requests, the edge spent 40,000 us: 40 us per request, 3 of the
	// 4 samples in auth's Wasm code (30 us), 1 in a send (10 us).
	write(t, filepath.Join(hit, "run.tsv"), "scenario\thit\nrequests\t1000\nproc\tedge\t100\t40000\n")
	write(t, filepath.Join(hit, "perf.txt"),
		strings.Repeat(stack("edge 100/101", "[1919/1932].main.__auth_.checkJWT:::::L196"+jit), 3)+
			stack("edge 100/102", "tcp_sendmsg"+kern, "ksys_write"+kern)+
			// A process the run did not measure is ignored.
			stack("other 999/999", "tcp_sendmsg"+kern, "ksys_write"+kern))
	miss := filepath.Join(dir, "miss")
	// The application: 2 of 2 samples user space, 5,000 us over 500 requests.
	write(t, filepath.Join(miss, "run.tsv"), "scenario\tmiss\nrequests\t500\nproc\tedge\t100\t0\nproc\tapp\t300\t5000\n")
	write(t, filepath.Join(miss, "perf.txt"), strings.Repeat(stack("benchserve 300/300", "main.main"+bin), 2))
	out := filepath.Join(dir, "BREAKDOWN.md")
	var stdout bytes.Buffer
	if err := run([]string{"-map", mapPath, "-plugins", "auth,ratelimit,cache", "-out", out, "-note", "a note", hit, miss}, &stdout); err != nil {
		t.Fatal(err)
	}
	md := stdout.String()
	for _, want := range []string{
		"a note\n",
		"| part | us per hit | us per miss |\n",
		"| plugin auth (Wasm code) | 30.0 | 0.0 |\n",
		"| " + partSend + " | 10.0 | 0.0 |\n",
		"| " + partApp + " | 0.0 | 10.0 |\n",
		"| **total CPU per request** | 40.0 | 10.0 |\n",
		"| edge | 40.0 | 0.0 |\n",
		"| app | - | 10.0 |\n",
		"| requests measured | 1000 | 500 |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "ratelimit") {
		t.Errorf("a plugin without samples got a row:\n%s", md)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != md {
		t.Errorf("-out file differs from stdout (err %v)", err)
	}
}

// TestRunWithoutPerf prints CPU per request by process and says why.
func TestRunWithoutPerf(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "run.tsv"), "scenario\thit\nrequests\t100\nproc\tedge\t100\t2500\n")
	var stdout bytes.Buffer
	if err := run([]string{dir}, &stdout); err != nil {
		t.Fatal(err)
	}
	md := stdout.String()
	if !strings.Contains(md, "perf was not available") || !strings.Contains(md, "| edge | 25.0 |") || strings.Contains(md, "| part |") {
		t.Errorf("table without perf:\n%s", md)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "run.tsv"), "scenario\thit\nrequests\t0\n")
	for _, args := range [][]string{nil, {filepath.Join(dir, "absent")}, {dir}} {
		if err := run(args, &bytes.Buffer{}); err == nil || !strings.HasPrefix(err.Error(), "benchbreak: ") {
			t.Errorf("run(%q) = %v, want a benchbreak error", args, err)
		}
	}
}

// FuzzParseScript feeds perf script output of any shape: every sample it
// hands on has a pid and frames, and classifying it does not panic.
func FuzzParseScript(f *testing.F) {
	f.Add(stack("edge 100/101", "[1919/1932].main.__auth_.checkJWT:::::L196"+jit, "tcp_sendmsg"+kern))
	f.Add(stack("edge 100", "runtime.memmove"+bin, "github.com/valyala/fasthttp.F"+bin) + "garbage\n\t x\n\n")
	f.Add("perf: warning\n\n\t 1 [unknown] ([unknown])\nedge x/y\n\tzz\n")
	c := &classifier{roles: map[int]string{100: "edge"}, plugins: map[string]string{"1932": "auth"}}
	f.Fuzz(func(t *testing.T, in string) {
		err := parseScript(strings.NewReader(in), func(s sample) {
			if s.pid <= 0 || len(s.frames) == 0 {
				t.Fatalf("sample %+v", s)
			}
			if c.classify(s) == "" {
				t.Fatalf("no part for %+v", s)
			}
		})
		if err != nil && !strings.HasPrefix(err.Error(), "benchbreak: ") {
			t.Fatal(err)
		}
	})
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
