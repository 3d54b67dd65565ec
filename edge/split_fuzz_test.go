package edge

import (
	"bytes"
	"testing"

	"github.com/talowa/wedge/deploy/manifest"
)

// FuzzSplitValue: finding a split's key in a header section a client sent
// never panics, and what it finds is a non-empty part of that section (a
// cookie's value holds no separator).
func FuzzSplitValue(f *testing.F) {
	f.Add([]byte("Host: a\r\nX-User: u1\r\n\r\n"), true, "X-User")
	f.Add([]byte("Cookie: a=1; uid=\"u2\"\r\nCookie: uid=3\r\n\r\n"), false, "uid")
	f.Add([]byte("Cookie: uid=\r\nCookie: ;;=;uid\r\n"), false, "uid")
	f.Add([]byte("X-User:\r\nX-User: late\n"), true, "x-user")
	f.Add([]byte("\r\n"), true, "a")
	f.Fuzz(func(t *testing.T, raw []byte, header bool, name string) {
		kind := manifest.SplitCookie
		if header {
			kind = manifest.SplitHeader
		}
		sp := split{kind: kind, name: []byte(name)}
		v := sp.value(raw)
		if v == nil {
			return
		}
		if len(v) == 0 || !bytes.Contains(raw, v) {
			t.Fatalf("value %q is not a non-empty part of %q", v, raw)
		}
		if !header && bytes.IndexByte(v, ';') >= 0 {
			t.Fatalf("cookie value %q holds a separator", v)
		}
	})
}

// BenchmarkSplitValue is what a header or cookie split adds to a request's
// choice of version: a scan of its header section.
func BenchmarkSplitValue(b *testing.B) {
	raw := []byte("Host: www.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n" +
		"Authorization: Bearer abc.def.ghi\r\nCookie: theme=dark; lang=en; uid=u-4242\r\nX-User: u-4242\r\n\r\n")
	for _, sp := range []split{{manifest.SplitHeader, []byte("X-User")}, {manifest.SplitCookie, []byte("uid")}} {
		b.Run(sp.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if sp.value(raw) == nil {
					b.Fatal("no value")
				}
			}
		})
	}
}
