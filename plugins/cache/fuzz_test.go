package main

import (
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
