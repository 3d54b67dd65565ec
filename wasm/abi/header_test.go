package abi

import (
	"strings"
	"testing"
)

// TestHeaderCharsets checks the character classes byte by byte against RFC 9110.
func TestHeaderCharsets(t *testing.T) {
	const tchar = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for c := range 256 {
		b := []byte{byte(c)}
		if got, want := ValidToken(b), strings.IndexByte(tchar, byte(c)) >= 0; got != want {
			t.Errorf("ValidToken(%#02x) = %v, want %v", c, got, want)
		}
		// field-content: VCHAR, obs-text, SP, HTAB.
		if got, want := ValidHeaderValue(b), c == '\t' || c >= 0x20 && c != 0x7f; got != want {
			t.Errorf("ValidHeaderValue(%#02x) = %v, want %v", c, got, want)
		}
	}
}

func TestHeaderName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"X-Api-Key", true}, {"", false}, {"Bad Name", false}, {"a:b", false},
		{strings.Repeat("n", MaxHeaderNameLen), true}, {strings.Repeat("n", MaxHeaderNameLen+1), false}} {
		if got := ValidHeaderName(tc.name); got != tc.ok {
			t.Errorf("ValidHeaderName(%q) = %v", tc.name, got)
		}
		if got := ValidHeaderName([]byte(tc.name)); got != tc.ok {
			t.Errorf("ValidHeaderName([]byte %q) = %v", tc.name, got)
		}
	}
}
