package httpcache

import (
	"strings"
	"testing"
)

// sfCases are Structured Field Dictionaries (RFC 8941 §4.2.2) and whether
// they parse. The numbers are at the limits of §3.3.1 and §3.3.2: an
// integer has at most 15 digits; a decimal at most 12 before the point and
// 1 to 3 after it, with a digit first.
var sfCases = []struct {
	in string
	ok bool
}{
	{"", true},
	{"max-age=60, no-store", true},
	{"max-age=60;a=1;b, private=\"x, y\"", true},
	{"a=?1, b=?0, c=:AAE=:, d=tok/en:x, e=*", true},
	{"a=999999999999999, b=-999999999999999", true},
	{"a=1.5, b=-1.5, c=123456789012.123, d=-0.001", true},
	{"a=1234567890123456", false},   // 16 digits
	{"a=1234567890123.5", false},    // 13 digits before the point
	{"a=12345678901234.5", false},   // 14 before, 15 in all
	{"a=1.2345", false},             // 4 after the point
	{"a=123456789012.1234", false},  // 12 before, 4 after
	{"a=1.", false},                 // none after the point
	{"a=-.5", false},                // no digit before the point
	{"a=1.2.3", false},              // a second point
	{"a=-", false},                  // a sign alone
	{"max-age=60,", false},          // trailing comma
	{"Max-Age=60", false},           // keys are lowercase
	{"a=\"unterminated", false},     // string without its closing quote
	{"a=\"bad \\n escape\"", false}, // only \" and \\ escape
	{"a=?2", false},                 // booleans are ?0 and ?1
	{"a=(b c)", false},              // inner lists: not needed for cache directives
}

func TestParseSFDictionary(t *testing.T) {
	for _, tc := range sfCases {
		if _, ok := parseSFDictionary(tc.in); ok != tc.ok {
			t.Errorf("parseSFDictionary(%q): ok %v, want %v", tc.in, ok, tc.ok)
		}
	}
	// A targeted field RFC 8941 cannot parse is ignored whole (RFC 9213
	// §2.1), max-age included.
	if d, ok := ParseTargeted([]string{"max-age=60, x=1.2345"}); ok {
		t.Errorf("a field with a 4-digit fraction was used: %+v", d)
	}
}

// FuzzSFDictionary feeds untrusted field values to the Structured Field
// parser: it may not panic, and what it accepts holds only well-formed
// keys and integers in range.
func FuzzSFDictionary(f *testing.F) {
	for _, tc := range sfCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dict, ok := parseSFDictionary(s)
		if !ok {
			return
		}
		for k, it := range dict {
			if k == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz0123456789_-.*") != "" {
				t.Fatalf("%q: key %q", s, k)
			}
			if it.kind == 'i' && (it.i > 999999999999999 || it.i < -999999999999999) {
				t.Fatalf("%q: integer %d out of range", s, it.i)
			}
		}
	})
}
