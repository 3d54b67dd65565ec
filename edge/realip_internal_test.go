package edge

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var testProxies = func() proxySet {
	s, err := parseProxySet([]string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.10"})
	if err != nil {
		panic(err)
	}
	return s
}()

// walkFields runs an xffWalk over fields, the values of X-Forwarded-For
// fields in order; "" when they name no client.
func walkFields(fields ...string) string {
	w := xffWalk{trusted: testProxies}
	for _, f := range fields {
		w.field([]byte(f))
	}
	a, ok := w.result()
	if !ok {
		return ""
	}
	return a.String()
}

func TestXFFWalk(t *testing.T) {
	for _, tc := range []struct {
		fields []string
		want   string
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{" , ,"}, ""},
		{[]string{"203.0.113.7"}, "203.0.113.7"},
		{[]string{"203.0.113.7, 10.0.0.1"}, "203.0.113.7"},
		{[]string{"198.51.100.1, 203.0.113.7, 10.0.0.1"}, "203.0.113.7"}, // the first untrusted from the right
		{[]string{"198.51.100.1", "203.0.113.7", "10.0.0.1"}, "203.0.113.7"},
		{[]string{"10.0.0.2, 10.0.0.1"}, "10.0.0.2"}, // all trusted: the left-most
		{[]string{"10.0.0.2", "192.0.2.10"}, "10.0.0.2"},
		{[]string{"198.51.100.1, bogus, 10.0.0.1"}, "10.0.0.1"}, // stopped: the last known good
		{[]string{"198.51.100.1, bogus, 10.0.0.2, 10.0.0.1"}, "10.0.0.2"},
		{[]string{"198.51.100.1, 10.0.0.1, bogus"}, ""}, // malformed right-most: the peer
		{[]string{"bogus, 203.0.113.7"}, "203.0.113.7"},
		{[]string{"bogus", "10.0.0.3"}, "10.0.0.3"},
		{[]string{"203.0.113.7,,10.0.0.1,"}, "203.0.113.7"}, // empty elements ignored
		{[]string{" \t203.0.113.7 \t,\t10.0.0.1 "}, "203.0.113.7"},
		{[]string{"2001:db8::1, 2001:db9::7, 2001:db8::2"}, "2001:db9::7"},
		{[]string{"[2001:db9::7]:443, [2001:db8::2]"}, "2001:db9::7"},
		{[]string{"203.0.113.7:51234, 10.0.0.1:80"}, "203.0.113.7"},
		{[]string{"::ffff:203.0.113.7, ::ffff:10.0.0.1"}, "203.0.113.7"}, // mapped: as IPv4
		{[]string{"203.0.113.7, fe80::1%eth0"}, ""},
		{[]string{"203.0.113.7, unknown"}, ""},
		{[]string{"203.0.113.7:99999, 10.0.0.1"}, "10.0.0.1"},
		{[]string{"[203.0.113.7]:80, 10.0.0.1"}, "10.0.0.1"},     // brackets are for IPv6
		{[]string{"2001:db9::7:80, 10.0.0.1"}, "2001:db9::7:80"}, // an IPv6 address, no port
		{[]string{`"203.0.113.7", 10.0.0.1`}, "10.0.0.1"},
		{[]string{"203.0.113.7 198.51.100.1, 10.0.0.1"}, "10.0.0.1"},
	} {
		if got := walkFields(tc.fields...); got != tc.want {
			t.Errorf("%q: client %q, want %q", tc.fields, got, tc.want)
		}
	}
}

// refWalk is the walk as the documentation says it, right to left over
// the elements, for FuzzXForwardedFor to hold xffWalk's one pass to.
func refWalk(trusted proxySet, fields []string) (netip.Addr, bool) {
	var elems [][]byte
	for _, f := range fields {
		for e := range bytes.SplitSeq([]byte(f), []byte{','}) {
			if e = bytes.Trim(e, " \t"); len(e) > 0 {
				elems = append(elems, e)
			}
		}
	}
	var good netip.Addr // the last address known good
	for i := len(elems) - 1; i >= 0; i-- {
		a, ok := parseHop(elems[i])
		if !ok {
			return good, good.IsValid()
		}
		if good = a; !trusted.contains(a) {
			return a, true
		}
	}
	return good, good.IsValid()
}

// FuzzXForwardedFor: the walk over X-Forwarded-For fields (fields is
// their values, one per line) ends where the right-to-left walk of its
// documentation ends, names an address as the node keys it (no zone,
// IPv4 as IPv4), and parseHop takes for a plain address what net.ParseIP
// does.
func FuzzXForwardedFor(f *testing.F) {
	for _, s := range []string{
		"", ",", " , ,, ", "203.0.113.7", "203.0.113.7, 10.0.0.1", "198.51.100.1,203.0.113.7,10.0.0.1",
		"203.0.113.7\n10.0.0.1", "10.0.0.2, 10.0.0.1", "bogus, 10.0.0.1", "203.0.113.7, bogus",
		"2001:db8::1, 2001:db9::7", "[2001:db9::7]:443, [2001:db8::2]", "[2001:db9::7", "[2001:db9::7]x",
		"[]", "[:]:1", "203.0.113.7:51234", "203.0.113.7:", "203.0.113.7:65536", ":80", "::ffff:10.0.0.1",
		"fe80::1%eth0", "unknown", "\t203.0.113.7\t", "1.2.3.4.5", "01.2.3.4", "2001:db8::1:80",
		strings.Repeat("10.0.0.1, ", 2000) + "203.0.113.7",
		strings.Repeat("203.0.113.7,", 1000) + strings.Repeat("x", 8000),
		strings.Repeat(",", 5000), strings.Repeat("[", 3000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fields := strings.Split(s, "\n")
		w := xffWalk{trusted: testProxies}
		for _, v := range fields {
			w.field([]byte(v))
		}
		got, ok := w.result()
		want, wok := refWalk(testProxies, fields)
		if ok != wok || got != want {
			t.Fatalf("%q: walk gave %v %v, the right-to-left walk %v %v", s, got, ok, want, wok)
		}
		if ok && (got.Zone() != "" || got.Is4In6()) {
			t.Fatalf("%q: client %v, want an address without zone, IPv4 as IPv4", s, got)
		}
		// Without brackets or colons an element is IPv4 or malformed.
		for e := range strings.SplitSeq(s, ",") {
			if e = strings.Trim(e, " \t"); e == "" || strings.ContainsAny(e, "[]:\n") {
				continue
			}
			a, ok := parseHop([]byte(e))
			if ip := net.ParseIP(e); ok != (ip != nil) || ok && !net.IP(a.AsSlice()).Equal(ip) {
				t.Fatalf("%q: parseHop %v %v, net.ParseIP %v", e, a, ok, ip)
			}
		}
	})
}
