package host

import (
	"log/slog"
	"time"
)

// Env is what the host offers one plugin version: its configuration, the
// shared stores, and its own key ring and metrics. The runtime builds one per
// loaded version and shares it between that version's instances; the key ring
// and metrics are safe for concurrent use, the rest is read-only.
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
