package httpcache

import (
	"testing"
	"time"
)

// pairs is a flat name, value list as ExplicitlyFresh reads fields.
type pairs [][]byte

func fields(kv ...string) pairs {
	b := make(pairs, len(kv))
	for i, s := range kv {
		b[i] = []byte(s)
	}
	return b
}

func (p pairs) fresh(now time.Time) bool {
	return ExplicitlyFresh(len(p)/2, func(i int) ([]byte, []byte) { return p[2*i], p[2*i+1] }, now)
}

func TestExplicitlyFresh(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	date := "Sun, 06 Dec 2026 10:00:00 GMT"
	for _, c := range []struct {
		name   string
		fields []string
		want   bool
	}{
		{"nothing", nil, false},
		{"last-modified alone (heuristic)", []string{"Last-Modified", "Sun, 01 Nov 2026 10:00:00 GMT"}, false},
		{"public alone", []string{"Cache-Control", "public"}, false},
		{"max-age", []string{"Cache-Control", "public, max-age=60"}, true},
		{"max-age=0", []string{"Cache-Control", "max-age=0"}, false},
		{"s-maxage=0 over max-age", []string{"Cache-Control", "max-age=60, s-maxage=0"}, false},
		{"s-maxage over max-age=0", []string{"Cache-Control", "max-age=0", "Cache-Control", "s-maxage=30"}, true},
		{"max-age twice, the lower", []string{"Cache-Control", "max-age=60, MAX-AGE=0"}, false},
		{"max-age invalid", []string{"Cache-Control", "max-age=soon"}, false},
		{"max-age quoted", []string{"Cache-Control", `max-age="60"`}, true},
		{"max-age under Age", []string{"Cache-Control", "max-age=60", "Age", "60"}, false},
		{"max-age over Age", []string{"Cache-Control", "max-age=60", "Age", "59"}, true},
		{"Expires ahead of Date", []string{"Date", date, "Expires", "Sun, 06 Dec 2026 10:01:00 GMT"}, true},
		{"Expires at Date", []string{"Date", date, "Expires", date}, false},
		{"Expires ahead of now, no Date", []string{"Expires", "Sun, 06 Dec 2026 10:01:00 GMT"}, true},
		{"Expires invalid", []string{"Expires", "0"}, false},
		{"Expires twice", []string{"Expires", "Sun, 06 Dec 2026 10:01:00 GMT", "Expires", "Sun, 06 Dec 2026 10:01:00 GMT"}, false},
		{"max-age=0 over Expires", []string{"Cache-Control", "max-age=0", "Expires", "Sun, 06 Dec 2026 10:01:00 GMT"}, false},
		{"targeted over Cache-Control", []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=0"}, false},
		{"targeted gives it", []string{"Cache-Control", "no-cache", "CDN-Cache-Control", "max-age=60"}, true},
		{"the first target wins", []string{"CDN-Cache-Control", "max-age=0", "Wedge-Cache-Control", "max-age=60"}, true},
		{"targeted without lifetime ignores Expires", []string{"CDN-Cache-Control", "public", "Expires", "Sun, 06 Dec 2026 10:01:00 GMT"}, false},
		{"unparsable targeted is ignored", []string{"CDN-Cache-Control", "max-age=(", "Cache-Control", "max-age=60"}, true},
	} {
		if got := fields(c.fields...).fresh(now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzExplicitlyFresh: any Cache-Control, targeted field, Expires and Age
// values are read without a panic, and a lifetime needs one of them.
func FuzzExplicitlyFresh(f *testing.F) {
	f.Add("public, max-age=60", "", "Sun, 06 Dec 2026 10:01:00 GMT", "3")
	f.Add(`max-age="60", s-maxage=0`, "max-age=60", "0", "")
	f.Add("", "max-age=(", "", "1,2")
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, cc, cdn, expires, age string) {
		p := fields("Cache-Control", cc, "CDN-Cache-Control", cdn, "Expires", expires, "Age", age)
		p.fresh(now)
		if fields("Age", age).fresh(now) {
			t.Fatalf("fresh with Age %q alone", age)
		}
	})
}
