package wasm

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/wasm/host"
)

// Config configures a Runtime. It is immutable: each WithX returns a changed
// copy, so one Config may be shared freely.
type Config struct {
	cacheDir     string
	initTimeout  time.Duration
	memoryLimit  uint32 // pages
	recycleBytes uint32
	timeout      time.Duration
	poolSize     int
	unprotected  bool
	registerer   prometheus.Registerer
	logger       *slog.Logger
	cache        host.Cache
	limiter      host.Limiter
	maxBodySize  int
}

// Defaults.
const (
	DefaultMemoryLimit = 64 << 20 // bytes of linear memory per instance
	DefaultTimeout     = 100 * time.Millisecond
	wasmPage           = 64 << 10
	DefaultInitTimeout = 5 * time.Second
	// verifyCacheEntries bounds the cache of signature verification
	// results the runtime's plugins share (host.VerifyCache).
	verifyCacheEntries = 1 << 16
	guestOutputMax     = 2 << 10 // bytes of guest stdout and stderr kept per call
	// fuelPerYield is how many loop iterations a guest runs between calls
	// to the yield host function: rare enough that the call costs nothing
	// measurable, often enough that a runaway stops within a millisecond or
	// so of its deadline and never holds up the Go garbage collector long.
	fuelPerYield = 1 << 12
	// hostWorkCheck is how much host work (about a byte each, see charge)
	// runs between deadline checks: some 100 us of hashing.
	hostWorkCheck = 256 << 10
)

// NewConfig returns the defaults: runaway protection on, 64 MiB of linear
// memory per instance (recycled past 3/4 of it), 100 ms per call, a pool of
// 2 x GOMAXPROCS instances per plugin version, no compilation cache on disk,
// no cache or limiter store.
func NewConfig() Config {
	return Config{
		memoryLimit:  DefaultMemoryLimit / wasmPage,
		recycleBytes: DefaultMemoryLimit / 4 * 3,
		timeout:      DefaultTimeout,
		initTimeout:  DefaultInitTimeout,
		poolSize:     2 * runtime.GOMAXPROCS(0),
	}
}

// WithCompilationCache keeps compiled code in dir, so the next process that
// loads the same plugin skips most of the compile. Runtimes of one process
// with the same dir also share the compiled code in memory, and compile a
// module once between them. A cache that fails (a damaged entry, a full or
// read-only disk, a path that is not a directory) is logged and bypassed.
func (c Config) WithCompilationCache(dir string) Config { c.cacheDir = dir; return c }

// WithMemoryLimit caps each instance's linear memory at bytes (rounded down
// to 64 KiB pages) and recycles an instance once it has grown past 3/4 of it.
// Spec.MemoryLimit may lower it for one version.
func (c Config) WithMemoryLimit(bytes uint32) Config {
	c.memoryLimit = max(bytes/wasmPage, 1)
	c.recycleBytes = c.memoryLimit * wasmPage / 4 * 3
	return c
}

// WithRecycleAt recycles an instance whose linear memory grew past bytes.
func (c Config) WithRecycleAt(bytes uint32) Config { c.recycleBytes = bytes; return c }

// WithTimeout sets the default per-call deadline, in CPU time used by the
// call; Spec.Timeout overrides it.
func (c Config) WithTimeout(d time.Duration) Config { c.timeout = d; return c }

// WithInitTimeout bounds a new instance's start-up: the Go runtime's
// initialisation and the plugin's configure, which on a loaded machine take
// far longer than a request.
func (c Config) WithInitTimeout(d time.Duration) Config { c.initTimeout = d; return c }

// WithPoolSize sets the default number of instances per plugin version.
func (c Config) WithPoolSize(n int) Config { c.poolSize = max(n, 1); return c }

// WithProtection turns runaway protection on or off. Off, guests run as
// compiled, without the fuel check (wasmbin.Instrument), so a looping call
// cannot be stopped and holds up the Go garbage collector: only for
// benchmarks and trusted code.
func (c Config) WithProtection(on bool) Config { c.unprotected = !on; return c }

// WithRegisterer registers the runtime's metrics with reg.
func (c Config) WithRegisterer(reg prometheus.Registerer) Config { c.registerer = reg; return c }

// WithLogger sets the logger for runtime events and plugin log calls.
func (c Config) WithLogger(l *slog.Logger) Config { c.logger = l; return c }

// WithStores sets the host stores plugins reach through the ABI.
func (c Config) WithStores(cache host.Cache, limiter host.Limiter) Config {
	c.cache, c.limiter = cache, limiter
	return c
}

// WithMaxBodySize bounds the bodies plugins may set.
func (c Config) WithMaxBodySize(n int) Config { c.maxBodySize = n; return c }
