package main

import (
	"strings"
	"testing"
	"time"
)

// FuzzPolicy feeds untrusted field values to every parser: none may panic,
// and what they accept must stay within the RFC's bounds.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{"max-age=60", `no-cache="a,b", max-age="5"`, "max-age=99999999999999999999",
		"max-age=1;a=?1, private, x=:YWJj:", `s="\"", t=*tok/x:y, d=1.5, n=-3`, "a=1,", "", ",", `"`, `max-age="`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := parseCacheControl([]string{v}, true)
		for _, n := range []int64{d.maxAge, d.sMaxAge, d.swr, d.sie} {
			if n < absent || n > maxDelta {
				t.Fatalf("%q: delta %d out of range", v, n)
			}
		}
		parseCacheControl([]string{v}, false)
		if td, ok := parseTargeted([]string{v}); ok && (td.maxAge < absent || td.maxAge > maxDelta) {
			t.Fatalf("%q: targeted max-age %d", v, td.maxAge)
		}
		p := readResponse(h("Cache-Control", v, "Expires", v, "Date", v, "Age", v, "CDN-Cache-Control", v))
		if lt, _ := freshness(p, 200, t0, 10, time.Hour); lt < 0 {
			t.Fatalf("%q: negative lifetime", v)
		}
		names, _ := varyNames([]string{v})
		variant(names, h("Accept", v))
		tags([]string{v}, []string{v}, 32)
		decodeMeta([]byte(v))
		decodeState(v)
		sameOriginKey("https", "example.com", "/a", "", v)
	})
}

// FuzzHTTPDate holds the strict date parser to the grammar of RFC 9110
// §5.6.7 by difference with time.Parse, which is more lenient: whatever
// the strict parser accepts, time.Parse accepts in the same form as the
// same instant (RFC 850's century and a leap second aside), and every field
// it read is where the grammar puts it.
func FuzzHTTPDate(f *testing.F) {
	for _, c := range dateCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHTTPDate(s)
		if !ok {
			if !got.IsZero() {
				t.Fatalf("%q: refused with a time %v", s, got)
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("%q: %v is not UTC", s, got)
		}
		layout, century := "Mon, 02 Jan 2006 15:04:05 GMT", true
		switch {
		case len(s) == 24 && s[3] == ' ':
			layout = "Mon Jan _2 15:04:05 2006"
		case !(len(s) == 29 && s[3] == ','):
			layout, century = "Monday, 02-Jan-06 15:04:05 GMT", false
		}
		lenient, err := time.Parse(layout, s)
		if err != nil {
			if strings.Contains(s, ":60") && strings.Contains(err.Error(), "second out of range") {
				return // a leap second: the grammar has it, time.Parse does not
			}
			t.Fatalf("%q: accepted, but not in the form %q: %v", s, layout, err)
		}
		same := lenient.Equal(got)
		if !century { // the same date and time of day, in some century
			same = lenient.AddDate(got.Year()-lenient.Year(), 0, 0).Equal(got) && (got.Year()-lenient.Year())%100 == 0
		}
		if !same {
			t.Fatalf("%q = %v, time.Parse says %v", s, got, lenient)
		}
		if strings.Contains(s, "  ") && layout != "Mon Jan _2 15:04:05 2006" || strings.Contains(s, "   ") {
			t.Fatalf("%q: doubled space accepted", s)
		}
	})
}
