package main

// The RFC suite: every case names the section of RFC 9111 (caching), 9110
// (semantics), 9211 (Cache-Status), 9213 (targeted fields), 8941
// (structured fields) or 5861 (stale-* extensions) it checks.

import (
	"net/textproto"
	"testing"
	"time"
)

// hdr is a header map for the pure policy functions.
type hdr map[string][]string

func (h hdr) Values(name string) []string { return h[textproto.CanonicalMIMEHeaderKey(name)] }

// h builds a hdr from name, value pairs; a name may repeat.
func h(kv ...string) hdr {
	out := hdr{}
	for i := 0; i+1 < len(kv); i += 2 {
		k := textproto.CanonicalMIMEHeaderKey(kv[i])
		out[k] = append(out[k], kv[i+1])
	}
	return out
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT") }

var ccCases = []struct {
	rfc      string
	lines    []string
	response bool
	want     string
}{
	{"9111 §5.2.2.1", []string{"max-age=60"}, true, "max-age=60"},
	{"9111 §5.2", []string{"Max-Age=60"}, true, "max-age=60"},
	{"9111 §5.2", []string{`max-age="60"`}, true, "max-age=60"},
	{"9111 §5.2", []string{"public, max-age=60"}, true, "public max-age=60"},
	{"9111 §5.2", []string{"public", "max-age=60"}, true, "public max-age=60"},
	{"9111 §5.2", []string{" no-cache ,  no-store "}, true, "no-store no-cache"},
	{"9111 §5.2", []string{"max-age = 60"}, true, "max-age=60"},
	{"9111 §5.2.2.4", []string{`no-cache="Set-Cookie, X-Foo"`}, true, `no-cache="Set-Cookie,X-Foo"`},
	{"9111 §5.2.2.7", []string{`private="Set-Cookie"`}, true, `private="Set-Cookie"`},
	{"9111 §5.2", []string{`no-cache="a,b", max-age=5`}, true, `max-age=5 no-cache="a,b"`},
	{"9111 §5.2", []string{`no-cache=Set-Cookie`}, true, `no-cache="Set-Cookie"`},
	{"9111 §5.2.2.4", []string{`no-cache, no-cache="X-Foo"`}, true, `no-cache no-cache="X-Foo"`},
	{"9111 §5.2.2.4", []string{`no-cache=""`}, true, "no-cache"},
	{"9111 §5.2.2.7", []string{`private="a b"`}, true, "private"},
	{"9111 §5.2.2.7", []string{`private=", ,"`}, true, "private"},
	{"9111 §1.2.2", []string{"max-age=abc"}, true, "max-age=0"},
	{"9111 §1.2.2", []string{"max-age=-1"}, true, "max-age=0"},
	{"9111 §1.2.2", []string{"max-age=1.5"}, true, "max-age=0"},
	{"9111 §1.2.2", []string{"max-age="}, true, "max-age=0"},
	{"9111 §1.2.2", []string{"max-age=99999999999999999999"}, true, "max-age=2147483648"},
	{"9111 §1.2.2", []string{"max-age=2147483648"}, true, "max-age=2147483648"},
	{"9111 §4.2.1", []string{"max-age=60, max-age=60"}, true, "max-age=60"},
	{"9111 §4.2.1", []string{"max-age=60, max-age=120"}, true, "max-age=0"},
	{"9111 §4.2.1", []string{"max-age=60", "max-age=30"}, true, "max-age=0"},
	{"9111 §4.2.1", []string{"s-maxage=10, s-maxage=20"}, true, "s-maxage=0"},
	{"9111 §5.2.2.10", []string{"s-maxage=30"}, true, "s-maxage=30"},
	{"9111 §5.2.2.2", []string{"must-revalidate"}, true, "must-revalidate"},
	{"9111 §5.2.2.8", []string{"proxy-revalidate"}, true, "proxy-revalidate"},
	{"9111 §5.2.2.3", []string{"must-understand, no-store"}, true, "no-store must-understand"},
	{"9111 §5.2.3", []string{"x-ext=1, foo, max-age=5"}, true, "max-age=5"},
	{"9111 §5.2.3", []string{`x-ext="a,max-age=999", max-age=5`}, true, "max-age=5"},
	{"5861 §3", []string{"max-age=1, stale-while-revalidate=30"}, true, "max-age=1 stale-while-revalidate=30"},
	{"5861 §4", []string{"stale-if-error=300"}, true, "stale-if-error=300"},
	{"5861 §4", []string{"stale-if-error=bad"}, true, ""},
	{"9111 §5.2.1.1", []string{"max-age=0"}, false, "max-age=0"},
	{"9111 §5.2.1.1", []string{"max-age=x"}, false, ""},
	{"9111 §5.2.1.2", []string{"max-stale"}, false, "max-stale"},
	{"9111 §5.2.1.2", []string{"max-stale=10"}, false, "max-stale=10"},
	{"9111 §5.2.1.3", []string{"min-fresh=20"}, false, "min-fresh=20"},
	{"9111 §5.2.1.4", []string{"no-cache"}, false, "no-cache"},
	{"9111 §5.2.1.5", []string{"no-store"}, false, "no-store"},
	{"9111 §5.2.1.7", []string{"only-if-cached"}, false, "only-if-cached"},
	{"9111 §5.2.1.1", []string{"max-age=5, max-age=10"}, false, "max-age=5"},
	{"9111 §5.2", []string{""}, true, ""},
	{"9111 §5.2", []string{",,,"}, true, ""},
}

func TestCacheControlParsing(t *testing.T) {
	for _, c := range ccCases {
		if got := parseCacheControl(c.lines, c.response).String(); got != c.want {
			t.Errorf("%s: %q (response=%v) = %q, want %q", c.rfc, c.lines, c.response, got, c.want)
		}
	}
}

var targetedCases = []struct {
	rfc      string
	hdrs     hdr
	targeted string
	want     string
}{
	{"9213 §2.1", h("Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=600"), "CDN-Cache-Control", "max-age=600"},
	{"9213 §2.1", h("CDN-Cache-Control", "max-age=600", "Wedge-Cache-Control", "max-age=5"), "Wedge-Cache-Control", "max-age=5"},
	{"9213 §2.1", h("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=600"), "CDN-Cache-Control", "max-age=600"},
	{"9213 §3.1", h("Cache-Control", "no-store", "CDN-Cache-Control", "none"), "CDN-Cache-Control", ""},
	{"9213 §2.1", h("Cache-Control", "max-age=60", "CDN-Cache-Control", ""), "", "max-age=60"},
	{"9213 §2.1", h("Cache-Control", "max-age=60", "CDN-Cache-Control", "Max-Age=600"), "", "max-age=60"},
	{"9213 §2.1", h("Cache-Control", "max-age=60", "Wedge-Cache-Control", "max-age=5,", "CDN-Cache-Control", "max-age=7"), "CDN-Cache-Control", "max-age=7"},
	{"9213 §2.1", h("CDN-Cache-Control", "max-age=1.5"), "CDN-Cache-Control", ""},
	{"9213 §2.1", h("CDN-Cache-Control", `max-age="60"`), "CDN-Cache-Control", ""},
	{"9213 §2.1", h("CDN-Cache-Control", "no-store, max-age=60"), "CDN-Cache-Control", "no-store max-age=60"},
	{"9213 §2.1", h("CDN-Cache-Control", `no-cache="set-cookie"`), "CDN-Cache-Control", `no-cache="set-cookie"`},
	{"9213 §2.1", h("CDN-Cache-Control", `private="x-a, x-b"`), "CDN-Cache-Control", `private="x-a,x-b"`},
	{"9213 §2.1", h("CDN-Cache-Control", `private="a b"`), "CDN-Cache-Control", "private"},
	{"9213 §2.1", h("CDN-Cache-Control", "private;foo=bar"), "CDN-Cache-Control", "private"},
	{"9213 §2.1", h("CDN-Cache-Control", "max-age=60", "CDN-Cache-Control", "must-revalidate"), "CDN-Cache-Control", "must-revalidate max-age=60"},
	{"8941 §4.2.2", h("CDN-Cache-Control", "max-age=60, max-age=120"), "CDN-Cache-Control", "max-age=120"},
	{"8941 §4.2.2", h("CDN-Cache-Control", "no-store=?0, max-age=9"), "CDN-Cache-Control", "max-age=9"},
	{"8941 §3.3.1", h("CDN-Cache-Control", "max-age=-5"), "CDN-Cache-Control", ""},
	{"8941 §4.2", h("CDN-Cache-Control", "max-age=60 x"), "", ""},
	{"9213 §2.1", h("CDN-Cache-Control", "s-maxage=10, stale-if-error=60"), "CDN-Cache-Control", "s-maxage=10 stale-if-error=60"},
}

func TestTargetedFields(t *testing.T) {
	for _, c := range targetedCases {
		p := readResponse(c.hdrs)
		if got := p.cc.String(); got != c.want || p.targeted != c.targeted {
			t.Errorf("%s: %v = %q via %q, want %q via %q", c.rfc, c.hdrs, got, p.targeted, c.want, c.targeted)
		}
	}
}

var freshCases = []struct {
	rfc       string
	status    int
	hdrs      hdr
	want      time.Duration
	heuristic bool
}{
	{"9111 §4.2.1", 200, h("Cache-Control", "max-age=60"), 60 * time.Second, false},
	{"9111 §4.2.1", 200, h("Cache-Control", "max-age=60, s-maxage=10"), 10 * time.Second, false},
	{"9111 §4.2.1", 200, h("Cache-Control", "max-age=60", "Expires", httpDate(t0.Add(time.Hour)), "Date", httpDate(t0)), 60 * time.Second, false},
	{"9111 §4.2.1", 200, h("Expires", httpDate(t0.Add(time.Hour)), "Date", httpDate(t0)), time.Hour, false},
	{"9111 §4.2.1", 200, h("Expires", httpDate(t0.Add(time.Hour))), time.Hour, false},
	{"9111 §5.3", 200, h("Expires", "0"), 0, false},
	{"9111 §5.3", 200, h("Expires", "garbage", "Last-Modified", httpDate(t0.Add(-100*time.Hour))), 0, false},
	{"9111 §4.2.1", 200, h("Expires", httpDate(t0.Add(-time.Hour)), "Date", httpDate(t0)), 0, false},
	{"9111 §4.2.1", 200, h("Expires", httpDate(t0.Add(time.Hour)), "Expires", httpDate(t0.Add(2*time.Hour))), 0, false},
	{"9111 §1.2.2", 200, h("Cache-Control", "max-age=2147483648"), maxLifetime, false},
	{"9111 §1.2.2", 200, h("Cache-Control", "s-maxage=34560001"), maxLifetime, false},
	{"9111 §4.2.1", 200, h("Cache-Control", "max-age=34560000"), 400 * 24 * time.Hour, false},
	{"9111 §4.2.1", 200, h("Expires", "Fri, 01 Jan 9999 00:00:00 GMT", "Date", httpDate(t0)), maxLifetime, false},
	{"9111 §5.3", 200, h("Expires", "Fri, 27 Nov 2026  13:00:00 GMT", "Date", httpDate(t0)), 0, false},
	{"9111 §5.3", 200, h("Expires", "Fri, 27 Nov 2026 3:00:00 GMT", "Date", httpDate(t0)), 0, false},
	{"9111 §5.3", 200, h("Expires", "Fri, 27 Nov 2026 13:00:00 UTC", "Date", httpDate(t0)), 0, false},
	{"9111 §5.3", 200, h("Expires", "Fri, 27-Nov-26 13:00:00 GMT", "Date", httpDate(t0)), 0, false},
	{"9110 §5.6.7", 200, h("Expires", "Friday, 27-Nov-26 13:00:00 GMT", "Date", httpDate(t0)), time.Hour, false},
	{"9110 §5.6.7", 200, h("Expires", "Fri Nov 27 13:00:00 2026", "Date", httpDate(t0)), time.Hour, false},
	{"9111 §4.2.2", 200, h("Last-Modified", httpDate(t0.Add(-10*time.Hour)), "Date", httpDate(t0)), time.Hour, true},
	{"9111 §4.2.2", 404, h("Last-Modified", httpDate(t0.Add(-10*time.Hour)), "Date", httpDate(t0)), time.Hour, true},
	{"9111 §4.2.2", 302, h("Last-Modified", httpDate(t0.Add(-10*time.Hour)), "Date", httpDate(t0)), 0, false},
	{"9111 §4.2.2", 302, h("Cache-Control", "public", "Last-Modified", httpDate(t0.Add(-10*time.Hour)), "Date", httpDate(t0)), time.Hour, true},
	{"9111 §4.2.2", 200, h("Last-Modified", httpDate(t0.Add(-1000*24*time.Hour)), "Date", httpDate(t0)), 24 * time.Hour, true},
	// 10% of more than 29 years overflowed into a negative lifetime: what
	// a reproducible build's files (mtime 1970) were served with.
	{"9111 §4.2.2", 200, h("Last-Modified", "Thu, 01 Jan 1970 00:00:01 GMT", "Date", httpDate(t0)), 24 * time.Hour, true},
	{"9111 §4.2.2", 200, h("Last-Modified", "Sun, 01 Jan 1995 00:00:00 GMT", "Date", httpDate(t0)), 24 * time.Hour, true},
	{"9111 §4.2.2", 200, h(), 0, false},
	{"9111 §4.2.2", 200, h("Last-Modified", httpDate(t0.Add(time.Hour)), "Date", httpDate(t0)), 0, false},
	{"9213 §2.1", 200, h("Expires", httpDate(t0.Add(time.Hour)), "Date", httpDate(t0), "CDN-Cache-Control", "no-cache"), 0, false},
	{"9213 §2.1", 200, h("Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=600"), 600 * time.Second, false},
}

// TestFreshnessHeuristicAllTime: at the largest heuristic_percent and
// heuristic_max a config allows, any age of Last-Modified gives a lifetime
// up to the cap, never a negative one (100% of 2.9 years overflowed).
func TestFreshnessHeuristicAllTime(t *testing.T) {
	const maxHeur = 400 * 24 * time.Hour
	for _, lm := range []time.Time{t0.Add(-100 * time.Hour), t0.AddDate(-3, 0, 0), t0.AddDate(-30, 0, 0), time.Unix(1, 0), time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)} {
		want := min(t0.Sub(lm), maxHeur)
		got, heur := freshness(readResponse(h("Last-Modified", httpDate(lm), "Date", httpDate(t0))), 200, t0, 100, maxHeur)
		if got != want || !heur {
			t.Errorf("Last-Modified %s at 100%%: %v (heuristic %v), want %v", httpDate(lm), got, heur, want)
		}
	}
}

func TestFreshness(t *testing.T) {
	for _, c := range freshCases {
		got, heur := freshness(readResponse(c.hdrs), c.status, t0, 10, 24*time.Hour)
		if got != c.want || heur != c.heuristic {
			t.Errorf("%s: %d %v = %v (heuristic %v), want %v (%v)", c.rfc, c.status, c.hdrs, got, heur, c.want, c.heuristic)
		}
	}
}

var ageCases = []struct {
	rfc          string
	hdrs         hdr
	reqAt, resAt time.Duration // after t0
	want         time.Duration
}{
	{"9111 §4.2.3", h("Date", httpDate(t0)), 0, 0, 0},
	{"9111 §4.2.3", h("Date", httpDate(t0)), 0, 2 * time.Second, 2 * time.Second},
	{"9111 §4.2.3", h("Date", httpDate(t0), "Age", "30"), 0, time.Second, 31 * time.Second},
	{"9111 §4.2.3", h("Date", httpDate(t0.Add(-100*time.Second)), "Age", "30"), 0, time.Second, 101 * time.Second},
	{"9111 §4.2.3", h("Date", httpDate(t0.Add(time.Hour))), 0, 0, 0},
	{"9111 §4.2.3", h("Age", "10"), time.Second, 3 * time.Second, 12 * time.Second},
	{"9111 §5.1", h("Age", "10, 20"), 0, 0, 10 * time.Second},
	{"9111 §5.1", h("Age", "ten"), 0, 0, 0},
	{"9111 §5.1", h("Age", "-5"), 0, 0, 0},
	{"9111 §1.2.2", h("Age", "99999999999999"), 0, 0, (1 << 31) * time.Second},
	{"9111 §4.2.3", h(), 0, 500 * time.Millisecond, 500 * time.Millisecond},
}

func TestInitialAge(t *testing.T) {
	for _, c := range ageCases {
		if got := initialAge(readResponse(c.hdrs), t0.Add(c.reqAt), t0.Add(c.resAt)); got != c.want {
			t.Errorf("%s: %v = %v, want %v", c.rfc, c.hdrs, got, c.want)
		}
	}
}

var storeCases = []struct {
	rfc    string
	method string
	status int
	reqCC  string
	hdrs   hdr
	auth   bool
	want   string
}{
	{"9111 §3", "GET", 200, "", h("Cache-Control", "max-age=60"), false, okStore},
	{"9111 §3", "GET", 200, "", h(), false, okStore},
	{"9111 §3", "POST", 200, "", h("Cache-Control", "max-age=60"), false, whyMethod},
	{"9111 §3", "HEAD", 200, "", h("Cache-Control", "max-age=60"), false, whyMethod},
	{"9111 §3", "GET", 302, "", h(), false, whyNoFreshness},
	{"9111 §3", "GET", 302, "", h("Cache-Control", "max-age=60"), false, okStore},
	{"9111 §3", "GET", 307, "", h("Expires", httpDate(t0)), false, okStore},
	{"9111 §3", "GET", 500, "", h(), false, whyNoFreshness},
	{"9111 §3", "GET", 404, "", h(), false, okStore},
	{"9111 §3", "GET", 410, "", h(), false, okStore},
	{"9111 §3", "GET", 501, "", h(), false, okStore},
	{"9111 §3", "GET", 299, "", h("Cache-Control", "max-age=60"), false, whyStatus},
	{"9111 §3", "GET", 304, "", h("Cache-Control", "max-age=60"), false, whyStatus},
	{"9111 §3.3", "GET", 206, "", h("Cache-Control", "max-age=60"), false, whyPartialCache},
	// A 412 or 416 answers the request's preconditions or range, which the
	// key does not hold, whatever freshness the origin gives it.
	{"9110 §15.5.13", "GET", 412, "", h("Cache-Control", "public, max-age=60"), false, whyStatus},
	{"9110 §15.5.17", "GET", 416, "", h("Cache-Control", "public, max-age=31536000"), false, whyStatus},
	{"9110 §15.5.17", "GET", 416, "", h("Expires", httpDate(t0.Add(time.Hour))), false, whyStatus},
	{"9111 §5.2.2.5", "GET", 200, "", h("Cache-Control", "no-store, max-age=60"), false, whyNoStore},
	{"9111 §5.2.2.3", "GET", 200, "", h("Cache-Control", "must-understand, no-store, max-age=60"), false, okStore},
	{"9111 §5.2.2.3", "GET", 299, "", h("Cache-Control", "must-understand, no-store, max-age=60"), false, whyStatus},
	{"9111 §5.2.1.5", "GET", 200, "no-store", h("Cache-Control", "max-age=60"), false, whyReqNoStore},
	{"9111 §5.2.2.7", "GET", 200, "", h("Cache-Control", "private, max-age=60"), false, whyPrivate},
	{"9111 §5.2.2.7", "GET", 200, "", h("Cache-Control", `private="Set-Cookie", max-age=60`), false, okStore},
	{"9111 §5.2.2.7", "GET", 200, "", h("Cache-Control", `private="X-A", private, max-age=60`), false, whyPrivate},
	{"9111 §7.3", "GET", 200, "", h("Cache-Control", "public, max-age=60", "Set-Cookie", "s=1"), false, whySetCookie},
	{"9111 §7.3", "GET", 404, "", h("Set-Cookie", "s=1"), false, whySetCookie},
	{"9111 §5.2.2.4", "GET", 200, "", h("Cache-Control", `max-age=60, no-cache="Set-Cookie"`, "Set-Cookie", "s=1"), false, okStore},
	{"9111 §5.2.2.7", "GET", 200, "", h("Cache-Control", `max-age=60, private="set-cookie"`, "Set-Cookie", "s=1"), false, okStore},
	{"9111 §5.2.2.7", "GET", 200, "", h("Cache-Control", `max-age=60, private="X-Other"`, "Set-Cookie", "s=1"), false, whySetCookie},
	{"9213 §2.1", "GET", 200, "", h("CDN-Cache-Control", `max-age=60, no-cache="set-cookie"`, "Set-Cookie", "s=1"), false, okStore},
	{"9111 §3.5", "GET", 200, "", h("Cache-Control", "max-age=60"), true, whyAuth},
	{"9111 §3.5", "GET", 200, "", h("Cache-Control", "public, max-age=60"), true, okStore},
	{"9111 §3.5", "GET", 200, "", h("Cache-Control", "s-maxage=60"), true, okStore},
	{"9111 §3.5", "GET", 200, "", h("Cache-Control", "must-revalidate, max-age=60"), true, okStore},
	{"9111 §4.1", "GET", 200, "", h("Cache-Control", "max-age=60", "Vary", "*"), false, whyVaryStar},
	{"9111 §4.1", "GET", 200, "", h("Cache-Control", "max-age=60", "Vary", "Accept, *"), false, whyVaryStar},
	{"9111 §5.2.2.4", "GET", 200, "", h("Cache-Control", "no-cache"), false, okStore},
	{"9111 §5.2.2.9", "GET", 302, "", h("Cache-Control", "public"), false, okStore},
	{"9213 §2.1", "GET", 200, "", h("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=600"), false, okStore},
	{"9213 §2.1", "GET", 200, "", h("Cache-Control", "max-age=600", "CDN-Cache-Control", "no-store"), false, whyNoStore},
	{"9213 §2.1", "GET", 200, "", h("Cache-Control", "max-age=600", "CDN-Cache-Control", "private"), false, whyPrivate},
}

func TestStorable(t *testing.T) {
	for _, c := range storeCases {
		_, star := varyNames(c.hdrs.Values("Vary"))
		rq := parseCacheControl([]string{c.reqCC}, false)
		if got := storable(c.method, c.status, rq, readResponse(c.hdrs), c.auth, star); got != c.want {
			t.Errorf("%s: %s %d %v auth=%v = %q, want %q", c.rfc, c.method, c.status, c.hdrs, c.auth, got, c.want)
		}
	}
}

var reuseCases = []struct {
	rfc   string
	m     meta
	age   time.Duration
	reqCC string
	want  decision
}{
	{"9111 §4.2", meta{lifetime: 60000}, 30 * time.Second, "", useFresh},
	{"9111 §4.2", meta{lifetime: 60000}, 60 * time.Second, "", validate},
	{"9111 §4.2", meta{lifetime: 60000}, 61 * time.Second, "", validate},
	{"9111 §4.2.4", meta{lifetime: 0}, 0, "", validate},
	{"9111 §5.2.2.4", meta{lifetime: 60000, noCache: true}, time.Second, "", validate},
	{"9111 §5.2.1.4", meta{lifetime: 60000}, time.Second, "no-cache", validateByReq},
	{"9111 §5.2.1.1", meta{lifetime: 60000}, 30 * time.Second, "max-age=10", validateByReq},
	{"9111 §5.2.1.1", meta{lifetime: 60000}, 30 * time.Second, "max-age=30", useFresh},
	{"9111 §5.2.1.1", meta{lifetime: 60000}, 0, "max-age=0", useFresh},
	{"9111 §5.2.1.3", meta{lifetime: 60000}, 30 * time.Second, "min-fresh=40", validateByReq},
	{"9111 §5.2.1.3", meta{lifetime: 60000}, 30 * time.Second, "min-fresh=20", useFresh},
	{"9111 §5.2.1.2", meta{lifetime: 60000}, 70 * time.Second, "max-stale", useStale},
	{"9111 §5.2.1.2", meta{lifetime: 60000}, 70 * time.Second, "max-stale=20", useStale},
	{"9111 §5.2.1.2", meta{lifetime: 60000}, 90 * time.Second, "max-stale=20", validate},
	{"9111 §5.2.2.2", meta{lifetime: 60000, mustRevalidate: true}, 70 * time.Second, "max-stale", validate},
	{"9111 §5.2.2.4", meta{lifetime: 60000, noCache: true}, 70 * time.Second, "max-stale", validate},
	{"9111 §5.2.1.1", meta{lifetime: 60000}, 70 * time.Second, "max-stale, max-age=65", validate},
	{"5861 §3", meta{lifetime: 60000, swr: 30}, 70 * time.Second, "", useStaleSWR},
	{"5861 §3", meta{lifetime: 60000, swr: 30}, 100 * time.Second, "", validate},
	{"5861 §3", meta{lifetime: 60000, swr: 30, mustRevalidate: true}, 70 * time.Second, "", validate},
	{"5861 §3", meta{lifetime: 60000, swr: 30}, 70 * time.Second, "no-cache", validateByReq},
}

func TestReuse(t *testing.T) {
	for _, c := range reuseCases {
		rq := parseCacheControl([]string{c.reqCC}, false)
		if got := reuse(&c.m, c.age, rq); got != c.want {
			t.Errorf("%s: %+v age %v req %q = %d, want %d", c.rfc, c.m, c.age, c.reqCC, got, c.want)
		}
	}
}

var sieCases = []struct {
	rfc    string
	m      meta
	age    time.Duration
	reqSIE int64
	status int
	want   bool
}{
	{"5861 §4", meta{lifetime: 10000, sie: 60}, 30 * time.Second, 0, 503, true},
	{"5861 §4", meta{lifetime: 10000, sie: 60}, 30 * time.Second, 0, 500, true},
	{"5861 §4", meta{lifetime: 10000, sie: 60}, 30 * time.Second, 0, 404, false},
	{"5861 §4", meta{lifetime: 10000, sie: 60}, 30 * time.Second, 0, 501, false},
	{"5861 §4", meta{lifetime: 10000, sie: 60}, 80 * time.Second, 0, 502, false},
	{"5861 §4", meta{lifetime: 10000}, 30 * time.Second, 60, 504, true},
	{"5861 §4", meta{lifetime: 10000}, 30 * time.Second, 0, 504, false},
	{"9111 §5.2.2.2", meta{lifetime: 10000, sie: 60, mustRevalidate: true}, 30 * time.Second, 0, 503, false},
	{"9111 §5.2.2.4", meta{lifetime: 10000, sie: 60, noCache: true}, 30 * time.Second, 0, 503, false},
}

func TestStaleIfError(t *testing.T) {
	for _, c := range sieCases {
		if got := staleIfError(&c.m, c.age, c.reqSIE, c.status); got != c.want {
			t.Errorf("%s: %+v age %v status %d = %v, want %v", c.rfc, c.m, c.age, c.status, got, c.want)
		}
	}
}

var varyCases = []struct {
	rfc        string
	vary       []string
	a, b       hdr
	same, star bool
}{
	{"9111 §4.1", []string{"Accept-Encoding"}, h("Accept-Encoding", "gzip"), h("Accept-Encoding", "gzip"), true, false},
	{"9111 §4.1", []string{"Accept-Encoding"}, h("Accept-Encoding", "gzip"), h("Accept-Encoding", "br"), false, false},
	{"9111 §4.1", []string{"accept-encoding"}, h("Accept-Encoding", "gzip, br"), h("Accept-Encoding", "gzip,br"), true, false},
	{"9111 §4.1", []string{"Accept-Encoding"}, h("Accept-Encoding", "gzip", "Accept-Encoding", "br"), h("Accept-Encoding", "gzip, br"), true, false},
	{"9111 §4.1", []string{"Accept-Encoding"}, h(), h("Accept-Encoding", ""), false, false},
	{"9111 §4.1", []string{"Accept-Encoding"}, h(), h(), true, false},
	{"9111 §4.1", []string{"Accept, Accept-Language"}, h("Accept", "a", "Accept-Language", "en"), h("Accept", "a", "Accept-Language", "fr"), false, false},
	{"9111 §4.1", []string{"Accept", "Accept-Language"}, h("Accept", "a", "Accept-Language", "en"), h("Accept", "a", "Accept-Language", "en"), true, false},
	{"9111 §4.1", []string{"Accept"}, h("Accept", "a", "X-Other", "1"), h("Accept", "a", "X-Other", "2"), true, false},
	{"9110 §12.5.5", []string{"*"}, h(), h(), true, true},
	{"9111 §4.1", []string{"Accept-Encoding"}, h("Accept-Encoding", "gzip"), h("Accept-Encoding", "GZIP"), false, false},
}

func TestVary(t *testing.T) {
	for _, c := range varyCases {
		names, star := varyNames(c.vary)
		if same := variant(names, c.a) == variant(names, c.b); same != c.same || star != c.star {
			t.Errorf("%s: Vary %q, %v vs %v: same %v star %v, want %v %v", c.rfc, c.vary, c.a, c.b, same, star, c.same, c.star)
		}
	}
	if n, _ := varyNames([]string{"Accept, accept", "ACCEPT-Language"}); n != "accept,accept-language" {
		t.Errorf("9111 §4.1: names normalised to %q", n)
	}
}

var invalidationCases = []struct {
	rfc    string
	method string
	status int
	want   bool
}{
	{"9111 §4.4", "POST", 200, true},
	{"9111 §4.4", "PUT", 204, true},
	{"9111 §4.4", "DELETE", 200, true},
	{"9111 §4.4", "PATCH", 303, true},
	{"9111 §4.4", "PURGE-ISH", 200, true},
	{"9111 §4.4", "POST", 404, false},
	{"9111 §4.4", "POST", 500, false},
	{"9111 §4.4", "GET", 200, false},
	{"9111 §4.4", "OPTIONS", 200, false},
}

func TestInvalidation(t *testing.T) {
	for _, c := range invalidationCases {
		if got := invalidates(c.method, c.status); got != c.want {
			t.Errorf("%s: %s %d invalidates = %v, want %v", c.rfc, c.method, c.status, got, c.want)
		}
	}
}

var locationCases = []struct {
	rfc, ref, want string
	ok             bool
}{
	{"9111 §4.4", "/items/2", cacheKey("https", "example.com", "/items/2", ""), true},
	{"9111 §4.4", "2?x=1", cacheKey("https", "example.com", "/items/2", "x=1"), true},
	{"9111 §4.4", "https://EXAMPLE.com/a", cacheKey("https", "example.com", "/a", ""), true},
	{"9111 §4.4", "https://other.example/a", "", false},
	{"9111 §4.4", "http://example.com/a", "", false},
	{"9111 §4.4", "//other.example/a", "", false},
	// An empty path is "/", the path a client requests it by.
	{"9110 §4.2.3", "https://example.com", cacheKey("https", "example.com", "/", ""), true},
	{"9110 §4.2.3", "https://example.com?x=1", cacheKey("https", "example.com", "/", "x=1"), true},
}

func TestLocationInvalidation(t *testing.T) {
	for _, c := range locationCases {
		got, ok := sameOriginKey("https", "example.com", "/items/1", "", c.ref)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %q = %q %v, want %q %v", c.rfc, c.ref, got, ok, c.want, c.ok)
		}
	}
}

var updateCases = []struct {
	rfc, name string
	skip      bool
}{
	{"9111 §3.2", "Content-Length", true},
	{"9111 §3.2", "Connection", true},
	{"9111 §3.2", "Transfer-Encoding", true},
	{"9111 §3.2", "Content-Encoding", true},
	{"9111 §3.2", "ETag", false},
	{"9111 §3.2", "Cache-Control", false},
	{"9111 §3.2", "Date", false},
	{"9111 §3.2", "X-Custom", false},
}

func TestUpdateFields(t *testing.T) {
	for _, c := range updateCases {
		if got := skipOnUpdate(c.name); got != c.skip {
			t.Errorf("%s: skip %s = %v, want %v", c.rfc, c.name, got, c.skip)
		}
	}
}

var statusCases = []struct {
	rfc    string
	got    string
	expect string
}{
	{"9211 §2.1", cacheStatus{Name: "wedge", Hit: true, TTL: 37, HasTTL: true}.String(), "wedge; hit; ttl=37"},
	{"9211 §2.2", cacheStatus{Name: "wedge", Fwd: "uri-miss", FwdStatus: 200, Stored: true, TTL: 60, HasTTL: true}.String(), "wedge; fwd=uri-miss; fwd-status=200; stored; ttl=60"},
	{"9211 §2.7", cacheStatus{Name: "wedge", Hit: true, TTL: ttlSeconds(60*time.Second, 61500*time.Millisecond), HasTTL: true}.String(), "wedge; hit; ttl=-1"},
	{"9211 §2.7", cacheStatus{Name: "wedge", Hit: true, TTL: ttlSeconds(60*time.Second, 5900*time.Millisecond), HasTTL: true}.String(), "wedge; hit; ttl=55"},
	{"9211 §2.4", cacheStatus{Name: "wedge", Fwd: "stale", FwdStatus: 304, Stored: true, TTL: 10, HasTTL: true}.String(), "wedge; fwd=stale; fwd-status=304; stored; ttl=10"},
	{"9211 §2.8", cacheStatus{Name: "wedge", Fwd: "method", FwdStatus: 201, Detail: "invalidated"}.String(), "wedge; fwd=method; fwd-status=201; detail=invalidated"},
}

func TestCacheStatusFormat(t *testing.T) {
	for _, c := range statusCases {
		if c.got != c.expect {
			t.Errorf("%s: %q, want %q", c.rfc, c.got, c.expect)
		}
	}
}

func TestTags(t *testing.T) {
	cases := []struct {
		rfc               string
		surrogate, cacheT []string
		want              string
	}{
		{"tags", []string{"a b  c"}, nil, "a|b|c"},
		{"tags", nil, []string{"a, b,c"}, "a|b|c"},
		{"tags", []string{"a b"}, []string{"b, c"}, "a|b|c"},
		{"tags", []string{"t1 t2 t3"}, nil, "t1|t2"},
	}
	for _, c := range cases {
		got := tags(c.surrogate, c.cacheT, 2+boolInt(c.want != "t1|t2")*30)
		if s := joinBar(got); s != c.want {
			t.Errorf("%s: %q %q = %q, want %q", c.rfc, c.surrogate, c.cacheT, s, c.want)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func joinBar(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += "|"
		}
		out += v
	}
	return out
}

func TestMetaRoundTrip(t *testing.T) {
	m := meta{initialAge: 1500, lifetime: 60000, noCache: true, mustRevalidate: true, swr: 5, sie: 9,
		etag: `W/"x,y"`, lastMod: httpDate(t0), varyNames: "accept,accept-encoding", variant: "a\x00\x01\x00", gen: "abc"}
	got, ok := decodeMeta(m.encode())
	if !ok || got != m {
		t.Fatalf("round trip: %+v %v, want %+v", got, ok, m)
	}
	if _, ok := decodeMeta([]byte("other plugin's meta")); ok {
		t.Fatal("foreign metadata decoded")
	}
	if _, ok := decodeMeta([]byte("wc1\nia=x\n")); ok {
		t.Fatal("bad number decoded")
	}
	st := state{mode: modeForward, fwd: "stale", noStore: true, clientCond: true, reqTime: 42, reqSIE: 7,
		entryKey: "k\x00v\x00g\x00a\x01", primary: true, primaryNames: "accept", primaryVar: "a\x00", primaryGen: "g"}
	if got, ok := decodeState(st.encode()); !ok || got != st {
		t.Fatalf("state round trip: %+v, want %+v", got, st)
	}
}

var conditionalCases = []struct {
	rfc                string
	inm                []string
	ims, etag, lastMod string
	want               bool
}{
	{"9110 §13.1.2", []string{`"a"`}, "", `"a"`, "", true},
	{"9110 §13.1.2", []string{`"b", "a"`}, "", `"a"`, "", true},
	{"9110 §13.1.2", []string{`W/"a"`}, "", `"a"`, "", true},
	{"9110 §13.1.2", []string{`"a"`}, "", `W/"a"`, "", true},
	{"9110 §13.1.2", []string{`"b"`}, "", `"a"`, "", false},
	{"9110 §13.1.2", []string{"*"}, "", `"a"`, "", true},
	{"9110 §13.1.2", []string{`"a"`}, "", "", httpDate(t0), false},
	{"9110 §13.1.3", nil, httpDate(t0), "", httpDate(t0), true},
	{"9110 §13.1.3", nil, httpDate(t0), "", httpDate(t0.Add(-time.Hour)), true},
	{"9110 §13.1.3", nil, httpDate(t0), "", httpDate(t0.Add(time.Hour)), false},
	{"9110 §13.1.3", nil, "yesterday", "", httpDate(t0), false},
	{"9110 §13.1.3", []string{`"b"`}, httpDate(t0), `"a"`, httpDate(t0), false},
}

func TestConditional(t *testing.T) {
	for _, c := range conditionalCases {
		if got := notModified(c.inm, c.ims, c.etag, c.lastMod); got != c.want {
			t.Errorf("%s: INM %q IMS %q vs %q %q = %v, want %v", c.rfc, c.inm, c.ims, c.etag, c.lastMod, got, c.want)
		}
	}
}

var dateCases = []struct {
	rfc, in string
	ok      bool
	want    time.Time
}{
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08:49:37 GMT", true, time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
	{"9110 §5.6.7", "Sunday, 06-Nov-94 08:49:37 GMT", true, time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
	{"9110 §5.6.7", "Sun Nov  6 08:49:37 1994", true, time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
	{"9110 §5.6.7", "Sun Nov 16 08:49:37 1994", true, time.Date(1994, 11, 16, 8, 49, 37, 0, time.UTC)},
	{"9110 §5.6.7", "Sun Nov 06 08:49:37 1994", true, time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
	{"9110 §5.6.7", "Thu, 29 Feb 2024 23:59:59 GMT", true, time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)},
	{"9110 §5.6.7", "Mon, 06 Nov 1994 08:49:37 GMT", true, time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)}, // weekday not checked
	{"9110 §5.6.7", "Sun, 06 Nov 1994  08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun,  06 Nov 1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 8:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 6 Nov 1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 94 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 nov 1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "sun, 06 Nov 1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08:49:37 gmt", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08:49:37 UTC", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08:49:37 +0000", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08:49:37", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 24:00:00 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08:60:00 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 31 Nov 1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Fri, 29 Feb 2026 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 00 Nov 1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08:49:3x GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06 Nov 1994 08-49-37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sunday, 06 Nov 1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun, 06-Nov-94 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sunday, 06-Nov-1994 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sunday, 6-Nov-94 08:49:37 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun Nov 6 08:49:37 1994", false, time.Time{}},
	{"9110 §5.6.7", "Sun Nov  6 08:49:37 1994 GMT", false, time.Time{}},
	{"9110 §5.6.7", "Sun Nov   6 08:49:37 1994", false, time.Time{}},
	{"9110 §5.6.7", "1994-11-06T08:49:37Z", false, time.Time{}},
	{"9110 §5.6.7", "0", false, time.Time{}},
	{"9110 §5.6.7", "", false, time.Time{}},
}

func TestHTTPDate(t *testing.T) {
	for _, c := range dateCases {
		got, ok := parseHTTPDate(c.in)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("%s: %q = %v %v, want %v %v", c.rfc, c.in, got, ok, c.want, c.ok)
		}
	}
	// RFC 850's two-digit year: within 50 years ahead, else the century
	// before (RFC 9110 §5.6.7).
	for _, c := range []struct{ yy, now, want int }{{94, 2026, 1994}, {26, 2026, 2026}, {76, 2026, 2076}, {77, 2026, 1977}, {5, 2099, 2105}} {
		if got := twoDigitYear(c.yy, c.now); got != c.want {
			t.Errorf("9110 §5.6.7: year %02d in %d = %d, want %d", c.yy, c.now, got, c.want)
		}
	}
}

// TestHTTPDateAllocs: dates are parsed for every response that is stored.
func TestHTTPDateAllocs(t *testing.T) {
	for _, in := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "garbage"} {
		if n := testing.AllocsPerRun(100, func() { parseHTTPDate(in) }); n != 0 {
			t.Errorf("%q: %v allocations", in, n)
		}
	}
}

// TestDatesNotParsedForUnstored: a response refused on its directives
// never has its dates looked at (the miss path's cost).
func TestDatesNotParsedForUnstored(t *testing.T) {
	seen := map[string]bool{}
	p := readPolicy(spy{h("Cache-Control", "no-store", "Expires", httpDate(t0), "Date", httpDate(t0), "Last-Modified", httpDate(t0)), seen})
	if storable("GET", 200, directives{}, p, false, false) != whyNoStore {
		t.Fatal("no-store stored")
	}
	if seen["Date"] || seen["Last-Modified"] {
		t.Fatalf("read %v deciding storability", seen)
	}
}

// spy is a hdr that records the fields read.
type spy struct {
	hdr
	seen map[string]bool
}

func (s spy) Values(name string) []string {
	s.seen[name] = true
	return s.hdr.Values(name)
}

var ifRangeCases = []struct {
	rfc, ifRange string
	has          bool
	etag         string
	want         bool
}{
	{"9110 §13.1.5", "", false, `"a"`, true},
	{"9110 §13.1.5", `"a"`, true, `"a"`, true},
	{"9110 §13.1.5", ` "a" `, true, `"a"`, true},
	{"9110 §13.1.5", `"b"`, true, `"a"`, false},
	{"9110 §13.1.5", `W/"a"`, true, `"a"`, false},
	{"9110 §13.1.5", `W/"a"`, true, `W/"a"`, false},
	{"9110 §13.1.5", `"a"`, true, `W/"a"`, false},
	{"9110 §13.1.5", `"a"`, true, "", false},
	{"9110 §13.1.5", httpDate(t0), true, `"a"`, false},
}

func TestIfRange(t *testing.T) {
	for _, c := range ifRangeCases {
		if got := rangeAllowed(c.ifRange, c.has, c.etag); got != c.want {
			t.Errorf("%s: If-Range %q against %q = %v, want %v", c.rfc, c.ifRange, c.etag, got, c.want)
		}
	}
}

// TestSuiteSize keeps the RFC suite at its promised size.
func TestSuiteSize(t *testing.T) {
	n := len(ccCases) + len(targetedCases) + len(freshCases) + len(ageCases) + len(storeCases) + len(reuseCases) +
		len(sieCases) + len(varyCases) + len(invalidationCases) + len(locationCases) + len(updateCases) + len(statusCases) +
		len(conditionalCases) + len(dateCases) + len(ifRangeCases)
	if n < 100 {
		t.Fatalf("RFC suite has %d cases, want at least 100", n)
	}
	t.Logf("RFC suite: %d cases", n)
}
