package sdk

import (
	"time"

	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

// Now is the host's wall clock.
func Now() time.Time { return time.Unix(0, hostcall.TimeNow()) }

// Random fills b with cryptographically secure random bytes.
func Random(b []byte) { hostcall.RandomFill(b) }

// Log logs msg at level with attributes given as alternating keys and values.
// The host adds plugin, version and request id. A value left without a key
// is logged under !BADKEY, as log/slog does: the host refuses an odd list,
// and the record would be lost.
func Log(level abi.Level, msg string, kv ...string) {
	var attrs []byte
	for i, s := range kv {
		if i == len(kv)-1 && i%2 == 0 {
			attrs = abi.AppendList(attrs, bytesOf("!BADKEY"))
		}
		attrs = abi.AppendList(attrs, bytesOf(s))
	}
	hostcall.Log(level, bytesOf(msg), attrs)
}

// Debug, Info, Warn and Error log at their level.
func Debug(msg string, kv ...string) { Log(abi.LevelDebug, msg, kv...) }

// Info logs at info level.
func Info(msg string, kv ...string) { Log(abi.LevelInfo, msg, kv...) }

// Warn logs at warn level.
func Warn(msg string, kv ...string) { Log(abi.LevelWarn, msg, kv...) }

// Error logs at error level.
func Error(msg string, kv ...string) { Log(abi.LevelError, msg, kv...) }

// Metric is a plugin-defined metric, exported by the host as
// wedge_plugin_<name>{plugin, version}.
type Metric struct{ handle int32 }

func defineMetric(kind abi.MetricKind, name string) (Metric, error) {
	h := hostcall.MetricDefine(kind, bytesOf(name))
	if h < 0 {
		return Metric{handle: -1}, Errno(h)
	}
	return Metric{handle: h}, nil
}

// NewCounter defines a counter; call it from Configure.
func NewCounter(name string) (Metric, error) { return defineMetric(abi.MetricCounter, name) }

// NewGauge defines a gauge; call it from Configure.
func NewGauge(name string) (Metric, error) { return defineMetric(abi.MetricGauge, name) }

// NewHistogram defines a histogram; call it from Configure.
func NewHistogram(name string) (Metric, error) { return defineMetric(abi.MetricHistogram, name) }

// Record adds v to a counter, sets a gauge, or observes v in a histogram.
func (m Metric) Record(v float64) { hostcall.MetricRecord(m.handle, v) }
