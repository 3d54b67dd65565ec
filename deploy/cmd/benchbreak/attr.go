package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The parts a sample is charged to, in the order the table lists them.
// Plugin rows are added per module found in the perf map, between
// partPluginsEnd's neighbours.
const (
	partTrampolines = "wazero trampolines (entering Wasm, host-call exits; JIT)"
	partWazero      = "wazero call machinery (Go: call setup, host-call dispatch)"
	partHost        = "host functions (wasm/host, ABI adapters)"
	partPool        = "plugin pools and calls (wasm/)"
	partEdge        = "edge logic (edge/)"
	partLink        = "origin link, edge side (edge/originclient)"
	partCodec       = "envelope codec (origin/wire, cbor, zstd, hmac)"
	partOrigin      = "origin service logic (origin/)"
	partApp         = "application (benchserve, user space)"
	partFasthttp    = "fasthttp"
	partMetrics     = "metrics (prometheus)"
	partGC          = "Go runtime: allocation and GC"
	partSched       = "Go runtime: scheduler, netpoll, timers"
	partRecv        = "kernel receive (read, recvfrom, recvmsg)"
	partSend        = "kernel send (write, writev, sendto, sendmsg)"
	partSwitch      = "kernel scheduling (context switches, wake-up IPIs)"
	partKernel      = "kernel other (epoll, futex, timers, page faults)"
	partOther       = "other"
)

// fixedParts is the table's row order after the plugin rows.
var fixedParts = []string{
	partTrampolines, partWazero, partHost, partPool, partEdge, partLink, partCodec,
	partOrigin, partApp, partFasthttp, partMetrics, partGC, partSched,
	partRecv, partSend, partSwitch, partKernel, partOther,
}

// pluginPart and guestGCPart name a plugin's rows: all of its Wasm code, and
// the share of it spent in the guest's own Go runtime allocating and
// collecting (the part buffer reuse in the guest removes).
func pluginPart(name string) string  { return pluginPrefix + name }
func guestGCPart(name string) string { return guestGCPrefix + name }

const (
	pluginPrefix  = "wasm:"
	guestGCPrefix = "wasm-gc:"
)

// A frame is one line of a perf script call chain.
type frame struct {
	sym string
	dso string
}

// A sample is one perf sample: the process it hit and its call chain, leaf
// first.
type sample struct {
	pid    int
	frames []frame
}

// parseScript reads `perf script -F comm,pid,ip,sym,dso` output: a header
// line per sample ("comm pid", perhaps "pid/tid" and more fields), then one indented "addr sym (dso)" line per
// frame, then a blank line. It calls fn for every sample with at least one
// frame; lines it cannot read are skipped, since perf prints warnings among
// the samples.
func parseScript(r io.Reader, fn func(sample)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var cur sample
	flush := func() {
		if cur.pid != 0 && len(cur.frames) > 0 {
			fn(cur)
		}
		cur = sample{frames: cur.frames[:0]}
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			flush()
			// comm, then pid or pid/tid; other fields (time, period) may
			// follow.
			for _, f := range strings.Fields(line)[1:] {
				pid, _, _ := strings.Cut(f, "/")
				if n, err := strconv.Atoi(pid); err == nil && n > 0 {
					cur.pid = n
					break
				}
			}
			continue
		}
		if cur.pid == 0 {
			continue
		}
		f := strings.TrimSpace(line)
		_, rest, ok := strings.Cut(f, " ")
		if !ok {
			continue
		}
		fr := frame{sym: rest}
		if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
			fr = frame{sym: rest[:i], dso: rest[i+2 : len(rest)-1]}
		}
		cur.frames = append(cur.frames, fr)
	}
	flush()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("benchbreak: reading perf script output: %w", err)
	}
	return nil
}

// wasmFunc matches a Wasm function in wazero's perf map: wazero v1.12 names
// each compiled basic block "[index/last]module.function:::::label", where
// last (the module's highest function index) tells modules apart, and host
// module trampolines, entry preambles and shared stubs by what they are.
var wasmFunc = regexp.MustCompile(`^\[\d+/(\d+)\]\.?(.*?)(?::{5}.*)?$`)

// onRequest finds a plugin's handler in the perf map: the SDK registers a
// type whose OnRequest method the Go wasm name section spells
// main.(*name).OnRequest as "main.__name_.OnRequest".
var onRequest = regexp.MustCompile(`^\[\d+/(\d+)\]\.main\.(?:__)?([A-Za-z0-9_]+?)_?\.OnRequest:`)

// pluginNames reads a wazero perf map and names each compiled module by the
// type its OnRequest belongs to, keyed by the module's last function index.
func pluginNames(r io.Reader) (map[string]string, error) {
	names := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		if m := onRequest.FindStringSubmatch(f[2]); m != nil {
			names[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("benchbreak: reading perf map: %w", err)
	}
	return names, nil
}

// A classifier charges samples to parts. roles maps a pid to its role
// ("edge", "origin", "app"); plugins maps a module's last function index to
// its plugin name.
type classifier struct {
	roles   map[int]string
	plugins map[string]string
}

// classify returns the part a sample's CPU is charged to. Kernel samples go
// by the system call they serve; Wasm samples by module; Go samples to the
// innermost frame of ours or of a library we name, so that the standard
// library, memmove and map lookups count for whoever called them.
func (c *classifier) classify(s sample) string {
	if isKernel(s.frames[0]) {
		return kernelPart(s.frames)
	}
	if c.roles[s.pid] == "app" {
		return partApp
	}
	if isJIT(s.frames[0]) {
		return c.wasmPart(s.frames)
	}
	for i, f := range s.frames {
		if isKernel(f) || isJIT(f) {
			continue
		}
		sym := f.sym
		switch {
		case strings.HasPrefix(sym, "runtime.") || strings.HasPrefix(sym, "internal/runtime/"):
			switch runtimeKind(strings.TrimPrefix(sym, "runtime.")) {
			case partGC:
				return partGC
			case partSched:
				return partSched
			}
			continue
		case hasPkg(sym, "github.com/talowa/wedge/wasm/host"):
			return partHost
		case hasPkg(sym, "github.com/talowa/wedge/wasm"):
			// The guest's host calls reach Go through wazero: a frame of
			// the plugin runtime whose next caller of note is wazero is
			// an ABI adapter (generated into wasm/zhostfuncs.go).
			if c.calledByWazero(s.frames[i+1:]) {
				return partHost
			}
			return partPool
		case hasPkg(sym, "github.com/tetratelabs/wazero"):
			return partWazero
		case hasPkg(sym, "github.com/talowa/wedge/origin/wire"),
			hasPkg(sym, "github.com/fxamacker/cbor"),
			hasPkg(sym, "github.com/x448/float16"),
			hasPkg(sym, "github.com/klauspost/compress"):
			return partCodec
		case hasPkg(sym, "github.com/talowa/wedge/edge/originclient"):
			return partLink
		case hasPkg(sym, "github.com/talowa/wedge/edge"):
			return partEdge
		case hasPkg(sym, "github.com/talowa/wedge/origin"):
			return partOrigin
		case hasPkg(sym, "github.com/valyala/fasthttp"):
			return partFasthttp
		case hasPkg(sym, "github.com/prometheus"):
			return partMetrics
		case strings.HasPrefix(sym, "main."):
			switch c.roles[s.pid] {
			case "edge":
				return partEdge
			case "origin":
				return partOrigin
			}
			return partOther
		case neutral(sym):
			continue
		default:
			return partOther
		}
	}
	if strings.HasPrefix(s.frames[0].sym, "runtime.") {
		return partSched
	}
	return partOther
}

// calledByWazero reports whether the first frame of ours or of a library
// among callers is wazero's.
func (c *classifier) calledByWazero(callers []frame) bool {
	for _, f := range callers {
		switch {
		case hasPkg(f.sym, "github.com/tetratelabs/wazero"):
			return true
		case hasPkg(f.sym, "github.com/talowa/wedge/wasm"), neutral(f.sym),
			strings.HasPrefix(f.sym, "runtime."):
			continue
		default:
			return false
		}
	}
	return false
}

// wasmPart charges a sample whose leaf is JIT-compiled code: a trampoline,
// or a plugin's function, split by whether the guest's Go runtime was
// allocating or collecting.
func (c *classifier) wasmPart(frames []frame) string {
	m := wasmFunc.FindStringSubmatch(frames[0].sym)
	if m == nil {
		return partTrampolines
	}
	name, ok := c.plugins[m[1]]
	if !ok {
		name = "module#" + m[1]
	}
	for _, f := range frames {
		fm := wasmFunc.FindStringSubmatch(f.sym)
		if fm == nil || fm[1] != m[1] || !strings.HasPrefix(fm[2], "runtime.") {
			break
		}
		if runtimeKind(strings.TrimPrefix(fm[2], "runtime.")) == partGC {
			return guestGCPart(name)
		}
	}
	return pluginPart(name)
}

func isKernel(f frame) bool { return f.dso == "[kernel.kallsyms]" }

// isJIT reports a frame in code wazero compiled, named by its perf map.
func isJIT(f frame) bool {
	return strings.HasPrefix(f.dso, "/tmp/perf-") || strings.HasPrefix(f.sym, "entry_preamble::") ||
		strings.HasPrefix(f.sym, "trampoline:") || wasmFunc.MatchString(f.sym)
}

// syscall finds the system call a kernel stack serves.
var syscall = regexp.MustCompile(`^(?:__x64_sys|__ia32_sys|__se_sys|__do_sys|ksys)_(\w+)$`)

// kernelPart charges a kernel sample by what it was doing: switching
// threads (blocking, preemption, the IPIs that wake a parked thread), or
// else the system call it serves. Loopback delivery runs the receiver's
// network stack in the sender's write (softirq), so it counts as sending,
// the cost a real NIC would move off this core.
func kernelPart(frames []frame) string {
	for _, f := range frames {
		if !isKernel(f) {
			break
		}
		if f.sym == "__schedule" || f.sym == "asm_sysvec_reschedule_ipi" {
			return partSwitch
		}
	}
	for _, f := range frames {
		if !isKernel(f) {
			break
		}
		m := syscall.FindStringSubmatch(f.sym)
		if m == nil {
			continue
		}
		switch m[1] {
		case "read", "readv", "recvfrom", "recvmsg", "recvmmsg", "pread64":
			return partRecv
		case "write", "writev", "sendto", "sendmsg", "sendmmsg", "sendfile64", "pwrite64":
			return partSend
		}
		return partKernel
	}
	return partKernel
}

// runtimeKind sorts a Go runtime function (without "runtime.") into
// allocation and GC, scheduling, or neither (memmove, hashing, maps: charged
// to the caller).
func runtimeKind(fn string) string {
	for _, s := range gcNames {
		if strings.Contains(fn, s) {
			return partGC
		}
	}
	for _, s := range schedNames {
		if strings.Contains(fn, s) {
			return partSched
		}
	}
	return ""
}

var gcNames = []string{
	"malloc", "newobject", "newarray", "growslice", "makeslice", "makemap", "rawstring", "rawbyteslice",
	"gcBgMarkWorker", "gcDrain", "gcAssist", "gcStart", "gcMark", "gcWriteBarrier", "wbBuf", "markroot",
	"scanobject", "scanblock", "scanstack", "greyobject", "bgsweep", "sweep", "scavenge", "heapBits",
	"nextFree", "refill", "mcache", "mcentral", "mheap", "gcController", "gcFlush",
}

var schedNames = []string{
	"schedule", "findRunnable", "park", "ready", "wakep", "startm", "stopm", "handoff", "note", "futex",
	"netpoll", "mcall", "gosched", "goexit", "execute", "runq", "stealWork", "timer", "Timer", "nanotime",
	"usleep", "osyield", "lock2", "unlock2", "semacquire", "semrelease", "sysmon", "retake", "casgstatus",
	"entersyscall", "exitsyscall", "spinning", "newproc", "gfget", "gfput", "mstart", "selectgo", "chansend",
	"chanrecv", "procyield",
}

// neutral reports code charged to its caller: the standard library (no
// dotted host before the first slash), golang.org/x, data-structure
// libraries, the vDSO and frames perf could not name.
func neutral(sym string) bool {
	if strings.HasPrefix(sym, "golang.org/x/") || hasPkg(sym, "github.com/maypok86/otter") ||
		hasPkg(sym, "github.com/cespare/xxhash") {
		return true
	}
	first, _, slash := strings.Cut(sym, "/")
	return !slash || !strings.Contains(first, ".")
}

// hasPkg reports whether sym is a function of pkg or of a package under it.
func hasPkg(sym, pkg string) bool {
	if !strings.HasPrefix(sym, pkg) {
		return false
	}
	rest := sym[len(pkg):]
	return strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "/")
}
