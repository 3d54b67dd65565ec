package manifest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseSplit(t *testing.T) {
	for in, want := range map[string][2]string{
		"":                {SplitAddr, ""},
		"addr":            {SplitAddr, ""},
		"header:X-User":   {SplitHeader, "X-User"},
		"cookie:uid":      {SplitCookie, "uid"},
		"cookie:__Host-s": {SplitCookie, "__Host-s"},
		"header:Proxyish": {SplitHeader, "Proxyish"},
		"cookie:TE":       {SplitCookie, "TE"},
	} {
		kind, name, err := ParseSplit(in)
		if err != nil || kind != want[0] || name != want[1] {
			t.Errorf("ParseSplit(%q) = %q, %q, %v; want %q, %q", in, kind, name, err, want[0], want[1])
		}
	}
	for _, in := range []string{"ip", "addr:x", "header", "header:", "cookie:", "header:X User", "cookie:a=b",
		"cookie:a;b", "header:é", "query:q", "header:" + strings.Repeat("x", 65),
		// Hop-by-hop fields do not reach a tier owner.
		"header:Connection", "header:keep-alive", "header:TE", "header:Upgrade", "header:Proxy-Authorization",
		"header:proxy-connection", "header:Transfer-Encoding", "header:Trailer"} {
		if _, _, err := ParseSplit(in); err == nil || !strings.HasPrefix(err.Error(), "manifest: split ") {
			t.Errorf("ParseSplit(%q): %v, want a manifest: split error", in, err)
		}
	}
}

// TestDesiredSplit: a canary's split travels in the desired state; a record
// without one (written before splits) reads as the address split, and a
// split an edge cannot read refuses the whole desired state.
func TestDesiredSplit(t *testing.T) {
	good := validDesired(t)
	if strings.Contains(string(good), `"split"`) {
		t.Fatalf("an address split is written: %s", good)
	}
	d, err := ParseDesired(good)
	if err != nil || d.Plugins["api/auth"].Canary.Split != "" {
		t.Fatalf("old record: %+v, %v", d, err)
	}
	with := strings.Replace(string(good), `"share":10`, `"share":10,"split":"header:X-User"`, 1)
	if d, err = ParseDesired([]byte(with)); err != nil || d.Plugins["api/auth"].Canary.Split != "header:X-User" {
		t.Fatalf("split record: %+v, %v", d, err)
	}
	b, _ := json.Marshal(d)
	if !strings.Contains(string(b), `"split":"header:X-User"`) {
		t.Fatalf("split lost on the way back: %s", b)
	}
	bad := strings.Replace(string(good), `"share":10`, `"share":10,"split":"header:a b"`, 1)
	if _, err := ParseDesired([]byte(bad)); err == nil || !strings.Contains(err.Error(), "canary: manifest: split") {
		t.Fatalf("bad split: %v", err)
	}
}

// FuzzParseSplit: whatever a desired state holds as a split, ParseSplit
// never panics, and what it accepts names a kind and, for a header or a
// cookie, an HTTP token that reads back the same.
func FuzzParseSplit(f *testing.F) {
	for _, s := range []string{"", "addr", "header:X-User", "cookie:uid", "cookie:", "header:a b", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, name, err := ParseSplit(s)
		if err != nil {
			return
		}
		switch kind {
		case SplitAddr:
			if name != "" {
				t.Fatalf("ParseSplit(%q): address split with a name %q", s, name)
			}
		case SplitHeader, SplitCookie:
			if s != kind+":"+name || name == "" || strings.ContainsAny(name, " \t;=:\"") || kind == SplitHeader && hopByHop(name) {
				t.Fatalf("ParseSplit(%q) = %q, %q", s, kind, name)
			}
		default:
			t.Fatalf("ParseSplit(%q): kind %q", s, kind)
		}
	})
}
