package host

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Env is what the host offers one plugin version: its configuration, the
// shared stores, and its own key ring and metrics. The runtime builds one per
// loaded version and shares it between that version's instances; the key ring,
// metrics and log budget are safe for concurrent use, the rest is read-only.
type Env struct {
	// Plugin and Version name the plugin in logs and errors.
	Plugin, Version string
	// Config is what config_read returns.
	Config []byte
	// Cache and Limiter are the host stores; nil makes their functions return
	// ErrUnavailable.
	Cache   Cache
	Limiter Limiter
	// Keys holds verification keys registered at configure time.
	Keys *Keyring
	// Metrics holds plugin-defined metrics.
	Metrics *Metrics
	// Log receives the plugin's log calls; nil discards them.
	Log *slog.Logger
	// MaxBodySize bounds body_set; 0 means DefaultMaxBodySize.
	MaxBodySize int
	// Now is the clock of time_now and the cache; nil means time.Now.
	Now func() time.Time

	logs logBudget
}

// The log lines a plugin version writes: logBytesPerSecond of message and
// attributes, logBurst at once. Past it lines are dropped and counted, and
// the next line written says how many: one request's loop of log calls
// wrote 24 MB in 50 ms, and at any rate of requests would fill a disk and
// bury the node's own lines.
const (
	logBytesPerSecond = 256 << 10
	logBurst          = 1 << 20
)

type logBudget struct {
	once    sync.Once
	lim     *rate.Limiter
	dropped atomic.Int64
}

// allow reports whether a line of n bytes may be written now, and how
// many lines were dropped before it (which it then forgets).
func (b *logBudget) allow(n int) (ok bool, dropped int64) {
	b.once.Do(func() { b.lim = rate.NewLimiter(logBytesPerSecond, logBurst) })
	if !b.lim.AllowN(time.Now(), n) {
		b.dropped.Add(1)
		return false, 0
	}
	return true, b.dropped.Swap(0)
}

// DefaultMaxBodySize is the largest body a plugin may set by default.
const DefaultMaxBodySize = 8 << 20

func (e *Env) maxBody() int {
	if e.MaxBodySize > 0 {
		return e.MaxBodySize
	}
	return DefaultMaxBodySize
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

var discard = slog.New(slog.DiscardHandler)

func (e *Env) logger() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return discard
}
