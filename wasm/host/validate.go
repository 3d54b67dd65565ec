package host

import (
	"bytes"
	"strings"

	"github.com/talowa/wedge/wasm/abi"
)

// Limits on what a plugin may write, so that nothing a plugin sets can break
// HTTP framing or smuggle a second header onto the wire.
const (
	maxFieldLen       = 8 << 10
	maxHeaderValueLen = 16 << 10
	// A call's header writes (header_set, header_add) together: past them
	// ErrTooLarge. A header section of more than this is of no use to a
	// client or an origin (the edge takes 16 KiB from a client), and
	// without a bound one call could build tens of MB of fields within
	// its CPU deadline, outside its memory limit.
	maxHeaderWrites     = 256
	maxHeaderWriteBytes = 64 << 10
	// maxCacheMs bounds TTLs, stale windows and rate periods: ~400 days.
	maxCacheMs = 400 * 24 * 3600 * 1000
)

// reservedHeaders are the fields the host owns: those that decide message
// framing (a plugin changes a body with body_set and the length follows),
// the hop-by-hop fields of RFC 9110 section 7.6.1 that concern only one
// connection, and Host, which field_set changes under its own rules. A
// plugin that could set them could split or smuggle requests.
var reservedHeaders = []string{"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
	"Proxy-Connection", "TE", "Trailer", "Upgrade", "Host"}

func isReservedHeader(name []byte) bool {
	for _, h := range reservedHeaders {
		if bytes.EqualFold(name, []byte(h)) {
			return true
		}
	}
	return false
}

// validField checks a new value of a writable request field.
func validField(f abi.Field, v []byte) bool {
	switch f {
	case abi.FieldMethod:
		return abi.ValidToken(v)
	case abi.FieldHost:
		return len(v) > 0 && visibleExcept(v, "/?#@\\")
	case abi.FieldPath:
		return len(v) > 0 && v[0] == '/' && visibleExcept(v, "?#")
	case abi.FieldRawQuery:
		return visibleExcept(v, "#")
	}
	return false
}

// visibleExcept reports whether b is printable ASCII without the given bytes.
func visibleExcept(b []byte, except string) bool {
	for _, c := range b {
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(except, c) >= 0 {
			return false
		}
	}
	return true
}
