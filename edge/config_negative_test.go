package edge

import (
	"strings"
	"testing"
)

// TestConfigNegativeBounds: a negative overload bound is a mistake (a
// max_limit: -1 meant as "no bound", as a route's max_body_bytes: -1 means),
// and is refused with a clear error, as Limits.given refuses a negative
// limit, rather than replaced in silence by its default (max_limit -1 became
// 10,000; min_limit -5 became 32).
func TestConfigNegativeBounds(t *testing.T) {
	const base = "origins: {app: {addr: 127.0.0.1:1, key: \"1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}}\nroutes: [{path: /, origin: app}]\n"
	for _, bad := range []string{
		"overload: {max_limit: -1}",
		"overload: {min_limit: -5}",
		"overload: {initial_limit: -1}",
	} {
		cfg, err := ParseConfig([]byte(base+bad), "")
		if err == nil || !strings.Contains(err.Error(), "overload") {
			o := cfg.Overload
			t.Errorf("%s: accepted (err %v), running with min %d, initial %d, max %d: want it refused as negative",
				bad, err, o.MinLimit, o.InitialLimit, o.MaxLimit)
		}
	}
	// The same silent default in the HTTP/2 and HTTP/3 front doors' bounds
	// (h2.go, h3.go): max_resets: -1 runs with 100.
	for _, bad := range []string{
		"tls: {http2: {max_resets: -1}}",
		"tls: {http2: {max_concurrent_streams: -1}}",
		"tls: {http3: {max_resets: -1}}",
	} {
		cfg, err := ParseConfig([]byte(base+bad), "")
		if err == nil {
			t.Errorf("%s: accepted, running with http2 %+v, http3 max_resets %d: want it refused as negative",
				bad, cfg.TLS.HTTP2, cfg.TLS.HTTP3.MaxResets)
		}
	}
}
