package limitsync

import (
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/host"
)

func TestBatchRoundTrip(t *testing.T) {
	b := appendHeader(nil, "eu-west-1")
	b = appendEntry(b, "@global:a", host.Usage{Limit: 600, Period: time.Minute, Units: 7})
	b = appendEntry(b, "@global:b", host.Usage{Limit: 1, Period: time.Second, Units: 1})
	pop, es, err := decodeBatch(b, host.ScopeGlobal, nil)
	if err != nil || pop != "eu-west-1" || len(es) != 2 {
		t.Fatalf("decoded %q, %v, %v", pop, es, err)
	}
	if e := es[0]; string(e.key) != "@global:a" || e.limit != 600 || e.period != time.Minute || e.units != 7 {
		t.Errorf("first entry %+v", e)
	}
	if _, es, err := decodeBatch(appendHeader(nil, "p"), host.ScopeRegion, nil); err != nil || len(es) != 0 {
		t.Errorf("heartbeat: %v, %v", es, err)
	}
}

func TestBatchRefused(t *testing.T) {
	ok := appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 1, Period: time.Second, Units: 1})
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"empty":         {nil, "version"},
		"version":       {[]byte{2, 1, 'p'}, "version"},
		"no pop":        {[]byte{1, 0}, "names no POP"},
		"truncated":     {ok[:len(ok)-1], "truncated"},
		"long key":      {append(appendHeader(nil, "p"), 0x81, 0x10), "at most 1024"},
		"other scope":   {appendEntry(appendHeader(nil, "p"), "@global:k", host.Usage{Limit: 1, Period: time.Second, Units: 1}), "scope"},
		"pop key":       {appendEntry(appendHeader(nil, "p"), "ratelimit", host.Usage{Limit: 1, Period: time.Second, Units: 1}), "scope"},
		"zero units":    {appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 1, Period: time.Second}), "out of range"},
		"zero period":   {appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 1, Units: 1}), "out of range"},
		"bad then good": {append(appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 1, Period: time.Second}), ok[3:]...), "out of range"},
	} {
		_, _, err := decodeBatch(tc.b, host.ScopeRegion, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, tc.want)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendHeader(nil, "eu-west-1"))
	f.Add(appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 100, Period: 10 * time.Second, Units: 3}))
	f.Add([]byte{1, 1, 'p', 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		pop, es, err := decodeBatch(b, host.ScopeRegion, nil)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		again := appendHeader(nil, pop)
		for _, e := range es {
			if host.KeyScope(e.key) != host.ScopeRegion || e.limit < 1 || e.period < time.Millisecond || e.units < 1 {
				t.Fatalf("accepted %+v", e)
			}
			again = appendEntry(again, string(e.key), host.Usage{Limit: e.limit, Period: e.period, Units: e.units})
		}
		if len(again) > len(b) {
			t.Fatalf("re-encoding grew: %x to %x", b, again)
		}
	})
}
