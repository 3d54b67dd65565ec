// Package jsontest holds what the differential fuzz tests of sdk/jsonscan
// and sdk/jwt need to compare with encoding/json.
package jsontest

import (
	"strings"
	"unicode/utf8"
)

// Depth is the nesting depth of well-formed JSON: how many containers
// enclose the deepest point.
func Depth(data []byte) int {
	d, maxD, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			maxD = max(maxD, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return maxD
}

// ToValidUTF8 replaces each byte of an invalid UTF-8 sequence with U+FFFD,
// as encoding/json does when it decodes a string (strings.ToValidUTF8
// replaces a whole run with one).
func ToValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
