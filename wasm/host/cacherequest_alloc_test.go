//go:build !race

package host

import (
	"testing"

	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// TestCacheRequestDoesNotAllocate: cache_request answers a hit (fresh, or
// a Vary variant) and prepares a forward without allocating once warm.
func TestCacheRequestDoesNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		vary bool
		path string
		want int32
	}{
		{"hit", false, "", httpcache.Answered | httpcache.Hit},
		{"vary hit", true, "", httpcache.Answered | httpcache.Hit},
		{"miss", false, "/b", httpcache.Forward},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, req, _ := cacheHitCall(t, tc.vary)
			if tc.path != "" {
				req.Path = tc.path
			}
			name := []byte("wedge")
			fn := func() int32 {
				f.ex.Reset() // as the edge does between requests
				f.ex.Req = req
				return f.call.CacheRequest(name)
			}
			for range 3 {
				if got := fn(); got != tc.want {
					t.Fatalf("CacheRequest = %d, want %d", got, tc.want)
				}
			}
			if a := testing.AllocsPerRun(200, func() { fn() }); a != 0 {
				t.Errorf("%.1f allocations per call", a)
			}
		})
	}
}
