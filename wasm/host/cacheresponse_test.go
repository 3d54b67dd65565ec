package host

import (
	"slices"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// cacheResponseFixture is the response phase of a request cache_request
// forwarded as a miss, answered 200 with the given fields.
func cacheResponseFixture(t testing.TB, fields ...string) *fixture {
	f := newFixture(t, abi.PhaseResponse)
	st := httpcache.State{Mode: httpcache.ModeForward, Fwd: "uri-miss", ReqTime: 1}
	if e := f.ex.Values().Set([]byte(httpcache.StateKey), []byte(st.Encode()), 0); e != 0 {
		t.Fatal(e)
	}
	f.ex.Resp = Response{Status: 200}
	for i := 0; i+1 < len(fields); i += 2 {
		f.ex.Resp.Header.Add(fields[i], fields[i+1])
	}
	return f
}

// TestCacheResponse covers what cache_response itself checks and settles;
// that it settles as the cache plugin would is the plugin's test
// (plugins/cache TestSettledInHost, FuzzSettle).
func TestCacheResponse(t *testing.T) {
	name := []byte("edge")
	for _, tc := range []struct {
		desc    string
		fields  []string
		options int32
		want    int32
		after   []HeaderField // the response's fields after the call
	}{
		{"no-store", []string{"Cache-Control", "no-store", "Wedge-Cache-Control", "no-store", "CDN-Cache-Control", "x"}, 0, httpcache.Settled,
			[]HeaderField{{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "x"}, {"Cache-Status", "edge; fwd=uri-miss; fwd-status=200; detail=no-store"}}},
		{"strip CDN-Cache-Control", []string{"CDN-Cache-Control", "private"}, httpcache.StripCDN, httpcache.Settled,
			[]HeaderField{{"Cache-Status", "edge; fwd=uri-miss; fwd-status=200; detail=private"}}},
		{"set-cookie refused", []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=1"}, 0, httpcache.Settled,
			[]HeaderField{{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=1"}, {"Cache-Status", "edge; fwd=uri-miss; fwd-status=200; detail=set-cookie"}}},
		{"set-cookie stripped: left to the plugin", []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=1"}, httpcache.StripSetCookie, 0,
			[]HeaderField{{"Cache-Control", "max-age=60"}, {"Set-Cookie", "a=1"}}},
		{"storable: left to the plugin", []string{"Cache-Control", "max-age=60", "Wedge-Cache-Control", "max-age=5"}, 0, 0,
			[]HeaderField{{"Cache-Control", "max-age=60"}, {"Wedge-Cache-Control", "max-age=5"}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := cacheResponseFixture(t, tc.fields...)
			if got := f.call.CacheResponse(name, tc.options); got != tc.want {
				t.Errorf("CacheResponse = %d, want %d", got, tc.want)
			}
			if !slices.Equal(f.ex.Resp.Header.Fields, tc.after) {
				t.Errorf("fields %v, want %v", f.ex.Resp.Header.Fields, tc.after)
			}
		})
	}

	f := cacheResponseFixture(t, "Cache-Control", "no-store")
	for _, c := range []struct {
		name    string
		options int32
	}{{"a b", 0}, {"", 0}, {"edge", 4}} {
		if got := f.call.CacheResponse([]byte(c.name), c.options); got != abi.ErrInvalid {
			t.Errorf("CacheResponse(%q, %d) = %d, want ErrInvalid", c.name, c.options, got)
		}
	}
	f.ex.Vals.Reset()
	if got := f.call.CacheResponse(name, 0); got != httpcache.Settled || len(f.ex.Resp.Header.Fields) != 1 {
		t.Errorf("without a state: %d, fields %v; want Settled and nothing added", got, f.ex.Resp.Header.Fields)
	}
	rq := newFixture(t, abi.PhaseRequest)
	if got := rq.call.CacheResponse(name, 0); got != abi.ErrPhase {
		t.Errorf("in the request phase: %d, want ErrPhase", got)
	}
}

// TestCacheResponseDoesNotAllocate: settling the common miss (no-store)
// allocates nothing once warm.
func TestCacheResponseDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f := cacheResponseFixture(t, "Cache-Control", "no-store")
	fields := slices.Clone(f.ex.Resp.Header.Fields)
	name := []byte("edge")
	fn := func() {
		f.ex.Resp.Header.Fields = append(f.ex.Resp.Header.Fields[:0], fields...)
		if got := f.call.CacheResponse(name, 0); got != httpcache.Settled {
			t.Fatalf("CacheResponse = %d", got)
		}
	}
	fn()
	if a := testing.AllocsPerRun(200, fn); a != 0 {
		t.Errorf("%.1f allocations per call", a)
	}
}
