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
	maxHeaderNameLen  = 256
	// maxCacheMs bounds TTLs, stale windows and rate periods: ~400 days.
	maxCacheMs = 400 * 24 * 3600 * 1000
)

// tokenChars marks the tchar set of RFC 9110 section 5.6.2.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

func validHeaderName(b []byte) bool { return len(b) <= maxHeaderNameLen && validToken(b) }

// validHeaderValue accepts field-content (RFC 9110 section 5.5): visible
// characters, obs-text, and SP or HTAB. CR, LF, NUL and other controls are
// refused: they are how a header value turns into header injection.
func validHeaderValue(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

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
		return validToken(v)
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
