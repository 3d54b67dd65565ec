package edge

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// FuzzAccessLogEscape: whatever bytes a client sends, appendJSONString
// makes a JSON string that encoding/json reads back as them, invalid UTF-8
// read as U+FFFD per byte (as encoding/json reads such bytes itself); and
// appendReferer's output, quoted, is one too, without the value's query,
// fragment or userinfo.
func FuzzAccessLogEscape(f *testing.F) {
	for _, s := range []string{"", "plain", `"quoted" \ back\slash`, "tab\tnl\nncr\r", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 😀", "\xff\xfe bad \xc3 utf8 \xed\xa0\x80", "\u2028\u2029", "</script>&<>",
		"https://user:pass@example.com/p?token=x#frag", "//a@b/c", "x://@", "http://h/p@q",
		"//user:pw@h.example/", "//u:p@h/x://c@d/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString([]byte(`{"k":`), s)
		var got struct{ K string }
		if err := json.Unmarshal(append(b, '}'), &got); err != nil {
			t.Fatalf("%q escaped to %q, which is no JSON: %v", s, b, err)
		}
		if want := string([]rune(s)); got.K != want {
			t.Fatalf("%q escaped to %q, read back as %q, want %q", s, b, got.K, want)
		}

		ref := append(appendReferer([]byte(`"`), s), '"')
		var r string
		if err := json.Unmarshal(ref, &r); err != nil {
			t.Fatalf("referer %q gave %q, which is no JSON string: %v", s, ref, err)
		}
		if strings.ContainsAny(r, "?#") {
			t.Fatalf("referer %q logged as %q: a query or fragment is left", s, r)
		}
		// The authority: after a scheme-relative "//", else after the
		// scheme's "://".
		rest, ok := strings.CutPrefix(r, "//")
		if !ok {
			_, rest, ok = strings.Cut(r, "://")
		}
		if auth, _, _ := strings.Cut(rest, "/"); ok && strings.Contains(auth, "@") {
			t.Fatalf("referer %q logged as %q: userinfo is left", s, r)
		}
	})
}

// TestAccessLogTime: appendTime writes what AppendFormat does, over the
// years of a log and in any time zone.
func TestAccessLogTime(t *testing.T) {
	zone := time.FixedZone("x", -7*3600)
	for range 10000 {
		tm := time.Unix(rand.Int64N(8e9), rand.Int64N(1e9)).In(zone)
		want := tm.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000000Z07:00")
		if got := appendTime(nil, tm); string(got) != string(want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
