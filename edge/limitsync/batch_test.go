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
	pop, es, skipped, err := decodeBatch(b, host.ScopeGlobal, nil)
	if err != nil || skipped != 0 || pop != "eu-west-1" || len(es) != 2 {
		t.Fatalf("decoded %q, %v, %v", pop, es, err)
	}
	if e := es[0]; string(e.key) != "@global:a" || e.limit != 600 || e.period != time.Minute || e.units != 7 {
		t.Errorf("first entry %+v", e)
	}
	if _, es, _, err := decodeBatch(appendHeader(nil, "p"), host.ScopeRegion, nil); err != nil || len(es) != 0 {
		t.Errorf("heartbeat: %v, %v", es, err)
	}
}

// TestBatchRefused: a batch whose framing is broken is refused whole.
func TestBatchRefused(t *testing.T) {
	ok := appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 1, Period: time.Second, Units: 1})
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"empty":     {nil, "version"},
		"version":   {[]byte{2, 1, 'p'}, "version"},
		"no pop":    {[]byte{1, 0}, "names no POP"},
		"long pop":  {append([]byte{1}, 0x80, 0x02), "at most 255"},
		"truncated": {ok[:len(ok)-1], "truncated"},
		"long key":  {append(appendHeader(nil, "p"), 0x81, 0x10), "truncated"},
	} {
		_, _, _, err := decodeBatch(tc.b, host.ScopeRegion, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, tc.want)
		}
	}
}

// TestBatchSkips: a bad entry is skipped, the entries around it are kept.
func TestBatchSkips(t *testing.T) {
	u := host.Usage{Limit: 1, Period: time.Second, Units: 1}
	b := appendHeader(nil, "p")
	b = appendEntry(b, "@region:good1", u)
	b = appendEntry(b, "@global:k", u)                          // other scope
	b = appendEntry(b, "ratelimit", u)                          // a POP key
	b = appendEntry(b, "@region:"+strings.Repeat("k", 1024), u) // too long
	b = appendEntry(b, "@region:k", host.Usage{Limit: 1, Period: time.Second})
	b = appendEntry(b, "@region:k", host.Usage{Limit: 1, Units: 1})
	b = appendEntry(b, "@region:good2", u)
	pop, es, skipped, err := decodeBatch(b, host.ScopeRegion, nil)
	if err != nil || pop != "p" || skipped != 5 || len(es) != 2 || string(es[0].key) != "@region:good1" || string(es[1].key) != "@region:good2" {
		t.Fatalf("decoded %q, %d entries, %d skipped, %v; want p, good1 and good2, 5 skipped", pop, len(es), skipped, err)
	}
}

// TestBatchEntryCap: no more than maxEntries entries are charged from one
// batch.
func TestBatchEntryCap(t *testing.T) {
	b := appendHeader(nil, "p")
	for range maxEntries + 3 {
		b = appendEntry(b, "@region:k", host.Usage{Limit: 1, Period: time.Second, Units: 1})
	}
	if _, es, skipped, err := decodeBatch(b, host.ScopeRegion, nil); err != nil || len(es) != maxEntries || skipped != 3 {
		t.Fatalf("%d entries, %d skipped, %v; want %d and 3", len(es), skipped, err, maxEntries)
	}
}

// TestBatchClampsUnits: a sender clamps units to what receivers accept.
func TestBatchClampsUnits(t *testing.T) {
	b := appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 1, Period: time.Second, Units: 3 * maxUnits})
	if _, es, _, err := decodeBatch(b, host.ScopeRegion, nil); err != nil || len(es) != 1 || es[0].units != maxUnits {
		t.Fatalf("decoded %+v, %v; want units %d", es, err, int64(maxUnits))
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendHeader(nil, "eu-west-1"))
	f.Add(appendEntry(appendHeader(nil, "p"), "@region:k", host.Usage{Limit: 100, Period: 10 * time.Second, Units: 3}))
	f.Add([]byte{1, 1, 'p', 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		pop, es, _, err := decodeBatch(b, host.ScopeRegion, nil)
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
