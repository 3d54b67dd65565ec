package host

import (
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// storeForCache stores body under the plugin's primary key of req, as the
// cache plugin's response phase does: max-age lifetime, an ETag, fresh
// for ttl.
func storeForCache(t testing.TB, f *fixture, req Request, m httpcache.Meta, ttl time.Duration, body string) {
	t.Helper()
	key := httpcache.AppendKey(nil, req.Scheme, req.Host, req.Path, req.RawQuery)
	f.env.Cache.Set(key, &CacheEntry{
		Response: &StoredResponse{Status: 200, Header: []HeaderField{{"Content-Type", "text/plain"}, {"ETag", m.ETag}}, Body: []byte(body)},
		Meta:     m.Encode(),
		Stored:   f.now,
		TTL:      ttl,
	})
}

func cacheRequestFixture(t testing.TB) (*fixture, Request) {
	f := newFixture(t, abi.PhaseRequest)
	req := Request{Method: "GET", Scheme: "https", Host: "Example.com", Path: "/a", RawQuery: "q=1"}
	storeForCache(t, f, req, httpcache.Meta{Lifetime: 60_000, ETag: `"e1"`}, time.Minute, "0123456789")
	return f, req
}

// TestCacheRequest covers what cache_request itself checks and answers;
// the RFC 9111 behaviour is the cache plugin's suite (plugins/cache),
// which runs its request phase through it natively and as Wasm.
func TestCacheRequest(t *testing.T) {
	name := []byte("edge")
	for _, tc := range []struct {
		desc      string
		req       func(*Request)
		want      int32
		status    int
		cs, age   string
		body      string
		state     string // the saved state's mode and fwd, "" for none
		condition string // If-None-Match sent on
	}{
		{desc: "fresh hit", want: httpcache.Answered | httpcache.Hit, status: 200, cs: "edge; hit; ttl=50", age: "10", body: "0123456789"},
		{desc: "hit with range", req: func(r *Request) { r.Header.Add("Range", "bytes=2-4") },
			want: httpcache.Answered | httpcache.Hit, status: 206, cs: "edge; hit; ttl=50", age: "10", body: "234"},
		{desc: "conditional hit", req: func(r *Request) { r.Header.Add("If-None-Match", `W/"e1"`) },
			want: httpcache.Answered | httpcache.Hit, status: 304, cs: "edge; hit; ttl=50", age: "10"},
		{desc: "miss", req: func(r *Request) { r.Path = "/b" }, want: httpcache.Forward, state: "f uri-miss"},
		{desc: "request no-cache validates", req: func(r *Request) { r.Header.Add("Cache-Control", "no-cache") },
			want: httpcache.Forward, state: "f request", condition: `"e1"`},
		{desc: "only-if-cached miss", req: func(r *Request) { r.Path = "/b"; r.Header.Add("Cache-Control", "only-if-cached") },
			want: httpcache.Answered, status: 504, cs: "edge; detail=only-if-cached", body: "Gateway Timeout: not in cache\n", state: "a uri-miss"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f, req := cacheRequestFixture(t)
			f.now = f.now.Add(10 * time.Second)
			if tc.req != nil {
				tc.req(&req)
			}
			f.ex.Req = req
			if got := f.call.CacheRequest(name); got != tc.want {
				t.Fatalf("CacheRequest = %d, want %d", got, tc.want)
			}
			if tc.status != 0 {
				cs, _ := f.ex.Resp.Header.Get("Cache-Status")
				age, _ := f.ex.Resp.Header.Get("Age")
				if f.ex.Resp.Status != tc.status || cs != tc.cs || age != tc.age || string(f.ex.Resp.Body) != tc.body {
					t.Errorf("answer %d %q, Cache-Status %q, Age %q; want %d %q, %q, %q",
						f.ex.Resp.Status, f.ex.Resp.Body, cs, age, tc.status, tc.body, tc.cs, tc.age)
				}
			}
			v, saved := f.ex.Vals.Get([]byte(httpcache.StateKey))
			if tc.state == "" {
				if saved {
					t.Errorf("state %q saved for a hit", v)
				}
			} else {
				st, ok := httpcache.DecodeState(string(v))
				if got := string(st.Mode) + " " + st.Fwd; !ok || got != tc.state {
					t.Errorf("state %q, want %q", got, tc.state)
				}
			}
			if inm, _ := f.ex.Req.Header.Get("If-None-Match"); tc.condition != "" && inm != tc.condition {
				t.Errorf("forwarded with If-None-Match %q, want %q", inm, tc.condition)
			}
		})
	}
}

// TestCacheRequestHoldsValidatedEntry: the entry cache_request forwards a
// validation of stays the exchange's to freshen with the origin's 304
// though the store lost it meanwhile (a purge here; an eviction or the end
// of its keep window alike): without it, the response phase had nothing
// to serve, and an unconditional GET got the origin's bare 304 to the
// validators the host had added. cache_serve serves it; cache_lookup and
// other keys do not find it.
func TestCacheRequestHoldsValidatedEntry(t *testing.T) {
	f, req := cacheRequestFixture(t)
	f.now = f.now.Add(2 * time.Minute) // stale: validated with If-None-Match
	f.ex.Req = req
	if got := f.call.CacheRequest([]byte("edge")); got != httpcache.Forward {
		t.Fatalf("CacheRequest = %d, want Forward", got)
	}
	v, _ := f.ex.Vals.Get([]byte(httpcache.StateKey))
	st, ok := httpcache.DecodeState(string(v))
	if !ok || st.EntryKey == "" || st.ClientCond {
		t.Fatalf("state %q: want a validation of its own", v)
	}
	key := []byte(st.EntryKey)
	if n := f.env.Cache.Purge(key); n != 1 {
		t.Fatalf("purge removed %d entries", n)
	}
	f.call.Reset(f.env, abi.PhaseResponse, f.ex)
	f.ex.Resp = Response{Status: 304}
	// What the plugin decides from the store (its Vary generation) sees
	// the purge.
	if n := f.call.CacheLookup(key, nil); n != abi.ErrNotFound {
		t.Errorf("cache_lookup of the purged key = %d, want ErrNotFound", n)
	}
	if got := f.call.CacheServe(key); got != 200 || string(f.ex.Resp.Body) != "0123456789" {
		t.Errorf("cache_serve of the validated key = %d %q, want the held 200", got, f.ex.Resp.Body)
	}
	other := httpcache.AppendKey(nil, req.Scheme, req.Host, "/other", "")
	if got := f.call.CacheServe(other); got != abi.ErrNotFound {
		t.Errorf("cache_serve of another key = %d, want ErrNotFound", got)
	}
	if _, ok := f.env.Cache.Get(key); ok {
		t.Errorf("serving the held entry put it back in the store")
	}
	f.ex.Reset()
	if got := f.call.CacheServe(key); got != abi.ErrNotFound {
		t.Errorf("cache_serve after the exchange's reset = %d, want ErrNotFound", got)
	}
}

func TestCacheRequestRefuses(t *testing.T) {
	f, req := cacheRequestFixture(t)
	f.ex.Req = req
	for _, tc := range []struct {
		desc string
		fn   func() int32
		want int32
	}{
		{"empty name", func() int32 { return f.call.CacheRequest(nil) }, abi.ErrInvalid},
		{"name not a token", func() int32 { return f.call.CacheRequest([]byte("a b")) }, abi.ErrInvalid},
		{"POST", func() int32 { f.ex.Req.Method = "POST"; return f.call.CacheRequest([]byte("c")) }, abi.ErrInvalid},
		{"response phase", func() int32 {
			f.ex.Req.Method = "GET"
			f.call.Reset(f.env, abi.PhaseResponse, f.ex)
			return f.call.CacheRequest([]byte("c"))
		}, abi.ErrPhase},
	} {
		if got := tc.fn(); got != tc.want {
			t.Errorf("%s: CacheRequest = %d, want %d", tc.desc, got, tc.want)
		}
	}
}

// BenchmarkCacheRequest is cache_request answering a fresh hit, host side
// only: the exchange is reused as the edge reuses its own.
func BenchmarkCacheRequest(b *testing.B) {
	for _, vary := range []bool{false, true} {
		name := "fresh"
		if vary {
			name = "vary"
		}
		b.Run(name, func(b *testing.B) {
			_, _, fn := cacheHitCall(b, vary)
			b.ReportAllocs()
			for b.Loop() {
				if got := fn(); got != httpcache.Answered|httpcache.Hit {
					b.Fatalf("CacheRequest = %d", got)
				}
			}
		})
	}
}

// cacheHitCall returns a call of cache_request that answers a fresh hit on
// a reused exchange: with vary, the entry is the second variant of a
// Vary: Accept-Encoding response.
func cacheHitCall(t testing.TB, vary bool) (*fixture, Request, func() int32) {
	f, req := cacheRequestFixture(t)
	if vary {
		primary := httpcache.Meta{Lifetime: 60_000, ETag: `"e1"`, VaryNames: "accept-encoding", Variant: "br\x00", Gen: "g1"}
		storeForCache(t, f, req, primary, time.Minute, "br body")
		req.Header.Add("Accept-Encoding", "gzip")
		v := httpcache.Meta{Lifetime: 60_000, ETag: `"e2"`, VaryNames: "accept-encoding", Variant: "gzip\x00", Gen: "g1"}
		key := httpcache.AppendKey(nil, req.Scheme, req.Host, req.Path, req.RawQuery)
		f.env.Cache.Set(httpcache.AppendVariantKey(nil, string(key), "g1", "gzip\x00"), &CacheEntry{
			Response: &StoredResponse{Status: 200, Header: []HeaderField{{"ETag", `"e2"`}}, Body: []byte("gzip body")},
			Meta:     v.Encode(), Stored: f.now, TTL: time.Minute,
		})
	}
	f.ex.Req = req
	name := []byte("wedge")
	return f, req, func() int32 {
		f.ex.Reset() // as the edge does between requests
		f.ex.Req = req
		return f.call.CacheRequest(name)
	}
}

// freshenedCache is a MemCache on which a revalidation of the key ends
// just after the first lookup: it stores a fresh entry, and its key is
// released.
type freshenedCache struct {
	*MemCache
	fresh *CacheEntry
	done  bool
}

func (c *freshenedCache) Get(key []byte) (*CacheEntry, bool) {
	e, ok := c.MemCache.Get(key)
	if !c.done {
		c.done = true
		c.MemCache.Set(key, c.fresh)
	}
	return e, ok
}

// TestCacheRequestStaleRevalidatedMeanwhile: a stale-while-revalidate hit
// whose lookup came just before another request's revalidation of the
// entry stored a fresh one and ended is served stale, and starts no
// revalidation of its own: the origin was asked a second time for one
// stale entry (and the tier's owner answered that one from its fresh copy).
func TestCacheRequestStaleRevalidatedMeanwhile(t *testing.T) {
	for _, meanwhile := range []bool{false, true} {
		f, req := cacheRequestFixture(t)
		m := httpcache.Meta{Lifetime: 60_000, ETag: `"e1"`, SWR: 60}
		storeForCache(t, f, req, m, time.Minute, "stale")
		fresh := &CacheEntry{Response: &StoredResponse{Status: 200, Body: []byte("fresh")}, Meta: m.Encode(), Stored: f.now.Add(2 * time.Minute), TTL: time.Minute}
		mem := f.env.Cache.(*MemCache)
		if meanwhile {
			f.env.Cache = &freshenedCache{MemCache: mem, fresh: fresh}
		}
		f.now = f.now.Add(2 * time.Minute)
		f.ex.Req = req
		if got := f.call.CacheRequest([]byte("edge")); got&httpcache.Hit == 0 || string(f.ex.Resp.Body) != "stale" {
			t.Fatalf("revalidated meanwhile %v: CacheRequest = %d, body %q: want a stale hit", meanwhile, got, f.ex.Resp.Body)
		}
		rv := f.ex.TakeRevalidation()
		if started := rv != nil; started == meanwhile {
			t.Errorf("revalidated meanwhile %v: a revalidation started %v", meanwhile, started)
		}
		if rv != nil {
			rv.Done()
		}
		if n := mem.Revalidating(); n != 0 {
			t.Errorf("revalidated meanwhile %v: %d keys left in flight", meanwhile, n)
		}
	}
}
