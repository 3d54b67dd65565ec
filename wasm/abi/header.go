package abi

// The rules the host applies to header fields a plugin sets (header_set,
// header_add) and to the keys of forwarded values. They are here, beside the
// limits, so a plugin can check its configuration against the very rules
// that will judge it at request time.

// tokenChars marks the tchar set of RFC 9110 §5.6.2.
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

// IsTokenChar reports whether c is a tchar (RFC 9110 §5.6.2), for parsers
// of grammars built on tokens (RFC 8941's sf-token adds ':' and '/').
func IsTokenChar(c byte) bool { return tokenChars[c] }

// ValidToken reports whether s is an RFC 9110 token (§5.6.2): what field
// names and the keys of forwarded values must be.
func ValidToken[S ~string | ~[]byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// ValidHeaderName reports whether s is a token of at most MaxHeaderNameLen
// bytes.
func ValidHeaderName[S ~string | ~[]byte](s S) bool {
	return len(s) <= MaxHeaderNameLen && ValidToken(s)
}

// ValidHeaderValue reports whether s is field content (RFC 9110 §5.5)
// without control characters other than HTAB: CR, LF and NUL are how a
// value turns into header injection.
func ValidHeaderValue[S ~string | ~[]byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
