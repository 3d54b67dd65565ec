package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// e2e are end-to-end scenarios through the plugin and the real host logic
// (scenario_test.go has the format). Those without wait and purge-tag also
// run as Wasm.
var e2e = []struct{ name, rfc, script string }{
	{"age grows with the clock", "9111 §4.2.3", `
origin: 200 a
origin-header: Cache-Control: max-age=100
origin-header: Age: 10
request: GET /a
expect: 200 a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=90
expect-header: Age: 10
wait: 20s
request: GET /a
expect: 200 a
expect-header: Age: 30
expect-header: Cache-Status: wedge; hit; ttl=70
wait: 75s
request: GET /a
expect: 200 a
expect-header: Cache-Status: wedge; fwd=stale; fwd-status=200; stored; ttl=90
expect-origin: 2
`},
	{"date makes apparent age", "9111 §4.2.3", `
origin: 200 a
origin-header: Date: Fri, 27 Nov 2026 11:59:00 GMT
origin-header: Cache-Control: max-age=100
request: GET /a
expect: 200 a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=40
request: GET /a
expect-header: Age: 60
`},
	{"query is part of the key", "9111 §2", `
origin: 200 one
origin-header: Cache-Control: max-age=60
request: GET /q?x=1
expect: 200 one
origin: 200 two
origin-header: Cache-Control: max-age=60
request: GET /q?x=2
expect: 200 two
request: GET /q?x=1
expect: 200 one
expect-origin: 2
`},
	{"no-store is not stored", "9111 §5.2.2.5", `
origin: 200 a
origin-header: Cache-Control: no-store
request: GET /a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; detail=no-store
request: GET /a
expect-origin: 2
`},
	{"request no-store is not stored", "9111 §5.2.1.5", `
origin: 200 a
origin-header: Cache-Control: max-age=60
request: GET /a
request-header: Cache-Control: no-store
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; detail=request-no-store
request: GET /a
expect-origin: 2
`},
	{"authorization needs public", "9111 §3.5", `
origin: 200 secret
origin-header: Cache-Control: max-age=60
request: GET /a
request-header: Authorization: Bearer x
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; detail=authorization
request: GET /a
expect-origin: 2
origin: 200 shared
origin-header: Cache-Control: public, max-age=60
request: GET /b
request-header: Authorization: Bearer x
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=60
`},
	{"no freshness, no validator: not stored", "9111 §4.2.2", `
origin: 200 a
request: GET /a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; ttl=0; detail=no-lifetime
`},
	{"heuristic freshness from Last-Modified", "9111 §4.2.2", `
origin: 200 a
origin-header: Date: Fri, 27 Nov 2026 12:00:00 GMT
origin-header: Last-Modified: Fri, 27 Nov 2026 02:00:00 GMT
request: GET /a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=3600
`},
	{"no-cache always revalidates", "9111 §5.2.2.4", `
origin: 200 a
origin-header: Cache-Control: no-cache
origin-header: ETag: "e"
request: GET /a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=0
origin: 304
origin-header: ETag: "e"
request: GET /a
expect: 200 a
expect-origin-header: If-None-Match: "e"
expect-header: Cache-Status: wedge; fwd=stale; fwd-status=304; stored; ttl=0
expect-origin: 2
`},
	{"last-modified validation", "9111 §4.3.1", `
origin: 200 a
origin-header: Cache-Control: max-age=1
origin-header: Last-Modified: Thu, 26 Nov 2026 12:00:00 GMT
request: GET /a
expect: 200 a
wait: 2s
origin: 304
request: GET /a
expect: 200 a
expect-origin-header: If-Modified-Since: Thu, 26 Nov 2026 12:00:00 GMT
expect-header: Cache-Control: max-age=1
`},
	{"request no-cache forwards", "9111 §5.2.1.4", `
origin: 200 a
origin-header: Cache-Control: max-age=60
origin-header: ETag: "e"
request: GET /a
expect: 200 a
request: GET /a
request-header: Cache-Control: no-cache
expect: 200 a
expect-origin-header: If-None-Match: "e"
expect-header: Cache-Status: wedge; fwd=request; fwd-status=200; stored; ttl=60
expect-origin: 2
`},
	{"pragma no-cache forwards", "9111 §5.4", `
origin: 200 a
origin-header: Cache-Control: max-age=60
request: GET /a
expect: 200 a
request: GET /a
request-header: Pragma: no-cache
expect-origin: 2
`},
	{"client conditionals pass through", "9111 §4.3.2", `
origin: 200 a
origin-header: Cache-Control: max-age=1
origin-header: ETag: "new"
request: GET /a
expect: 200 a
wait: 5s
origin: 304
origin-header: ETag: "old"
request: GET /a
request-header: If-None-Match: "old"
expect: 304
expect-origin-header: If-None-Match: "old"
`},
	{"max-age request directive", "9111 §5.2.1.1", `
origin: 200 a
origin-header: Cache-Control: max-age=60
request: GET /a
expect: 200 a
wait: 10s
request: GET /a
request-header: Cache-Control: max-age=5
expect-header: Cache-Status: wedge; fwd=request; fwd-status=200; stored; ttl=60
`},
	{"max-stale serves stale", "9111 §5.2.1.2", `
origin: 200 a
origin-header: Cache-Control: max-age=10
request: GET /a
expect: 200 a
wait: 15s
request: GET /a
request-header: Cache-Control: max-stale=10
expect-header: Cache-Status: wedge; hit; ttl=-5; detail=max-stale
expect-origin: 1
`},
	{"only-if-cached misses with 504", "9111 §5.2.1.7", `
origin: 200 a
request: GET /nothing
request-header: Cache-Control: only-if-cached
expect: 504
expect-header: Cache-Status: wedge; detail=only-if-cached
expect-origin: 0
`},
	{"stale-if-error serves stale on 503", "5861 §4", `
origin: 200 good
origin-header: Cache-Control: max-age=10, stale-if-error=60
request: GET /a
expect: 200 good
wait: 30s
origin: 503 down
request: GET /a
expect: 200 good
expect-header: Cache-Status: wedge; fwd=stale; fwd-status=503; ttl=-20; detail=stale-if-error
expect-header: Age: 30
wait: 60s
request: GET /a
expect: 503 down
`},
	{"must-revalidate refuses stale-if-error", "9111 §5.2.2.2", `
origin: 200 good
origin-header: Cache-Control: max-age=10, stale-if-error=60, must-revalidate
request: GET /a
expect: 200 good
wait: 30s
origin: 503 down
request: GET /a
expect: 503 down
`},
	{"stale-while-revalidate serves stale and refreshes in the background", "5861 §3", `
origin: 200 v1
origin-header: Cache-Control: max-age=1, stale-while-revalidate=60
request: GET /a
expect: 200 v1
wait: 5s
origin: 200 v2
origin-header: Cache-Control: max-age=10, stale-while-revalidate=60
request: GET /a
expect: 200 v1
expect-header: Cache-Status: wedge; hit; ttl=-4; detail=stale-while-revalidate
expect-header: Age: 5
expect-origin: 2
request: GET /a
expect: 200 v2
expect-header: Cache-Status: wedge; hit; ttl=10
expect-origin: 2
`},
	{"stale-while-revalidate revalidates with the validators", "5861 §3", `
origin: 200 body
origin-header: Cache-Control: max-age=1, stale-while-revalidate=60
origin-header: ETag: "e1"
request: GET /a
expect: 200 body
wait: 5s
origin: 304
origin-header: Cache-Control: max-age=30
origin-header: ETag: "e1"
request: GET /a
request-header: Range: bytes=0-1
request-header: If-None-Match: "other"
expect: 206 bo
expect-origin: 2
expect-origin-header: If-None-Match: "e1"
expect-origin-header: Range:
request: GET /a
expect: 200 body
expect-header: Cache-Status: wedge; hit; ttl=30
expect-origin: 2
`},
	{"stale-while-revalidate on HEAD serves stale only", "5861 §3", `
origin: 200 v1
origin-header: Cache-Control: max-age=1, stale-while-revalidate=60
request: GET /a
expect: 200 v1
wait: 5s
request: HEAD /a
expect-header: Cache-Status: wedge; hit; ttl=-4; detail=stale-while-revalidate
expect-origin: 1
`},
	{"vary keeps variants", "9111 §4.1", `
origin: 200 gzip
origin-header: Cache-Control: max-age=60
origin-header: Vary: Accept-Encoding
request: GET /v
request-header: Accept-Encoding: gzip
expect: 200 gzip
origin: 200 br
origin-header: Cache-Control: max-age=60
origin-header: Vary: Accept-Encoding
request: GET /v
request-header: Accept-Encoding: br
expect: 200 br
expect-header: Cache-Status: wedge; fwd=vary-miss; fwd-status=200; stored; ttl=60
request: GET /v
request-header: Accept-Encoding: gzip
expect: 200 gzip
expect-header: Cache-Status: wedge; hit; ttl=60
request: GET /v
request-header: Accept-Encoding: br
expect: 200 br
request: GET /v
expect-header: Cache-Status: wedge; fwd=vary-miss; fwd-status=200; stored; ttl=60
expect-origin: 3
`},
	// The host builds the request's variant from several fields, the
	// first absent: its values must not overwrite each other.
	{"vary on several fields, one absent", "9111 §4.1", `
origin: 200 gzip
origin-header: Cache-Control: max-age=60
origin-header: Vary: Origin, Accept-Encoding
request: GET /v
request-header: Accept-Encoding: gzip, br
expect: 200 gzip
request: GET /v
request-header: Accept-Encoding: gzip, br
expect: 200 gzip
expect-header: Cache-Status: wedge; hit; ttl=60
expect-origin: 1
`},
	{"vary star is never reused", "9111 §4.1", `
origin: 200 a
origin-header: Cache-Control: max-age=60
origin-header: Vary: *
request: GET /a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; detail=vary-star
request: GET /a
expect-origin: 2
`},
	{"post invalidates url and location", "9111 §4.4", `
origin: 200 one
origin-header: Cache-Control: max-age=60
request: GET /items/1
expect: 200 one
request: GET /items/2
expect: 200 one
request: GET /items/3
expect: 200 one
origin: 201 made
origin-header: Location: /items/2
origin-header: Content-Location: https://other.example/items/3
request: POST /items/1
expect: 201 made
expect-header: Cache-Status: wedge; fwd=method; fwd-status=201; detail=invalidated
origin: 200 two
origin-header: Cache-Control: max-age=60
request: GET /items/1
expect: 200 two
request: GET /items/2
expect: 200 two
request: GET /items/3
expect: 200 one
`},
	{"failed post does not invalidate", "9111 §4.4", `
origin: 200 one
origin-header: Cache-Control: max-age=60
request: GET /a
expect: 200 one
origin: 500 no
request: DELETE /a
expect: 500 no
expect-header: Cache-Status: wedge; fwd=method; fwd-status=500
request: GET /a
expect: 200 one
`},
	{"invalidation drops every variant", "9111 §4.4", `
origin: 200 x
origin-header: Cache-Control: max-age=60
origin-header: Vary: Accept
request: GET /v
request-header: Accept: a
expect: 200 x
request: GET /v
request-header: Accept: b
expect: 200 x
origin: 204
request: PUT /v
expect: 204
origin: 200 y
origin-header: Cache-Control: max-age=60
origin-header: Vary: Accept
request: GET /v
request-header: Accept: b
expect: 200 y
`},
	{"targeted field wins and is consumed", "9213 §2.1", `
origin: 200 a
origin-header: Cache-Control: no-store
origin-header: CDN-Cache-Control: max-age=30
origin-header: Wedge-Cache-Control: max-age=600
request: GET /a
expect: 200 a
expect-header: Wedge-Cache-Control:
expect-header: CDN-Cache-Control: max-age=30
expect-header: Cache-Control: no-store
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=600
request: GET /a
expect-header: Wedge-Cache-Control:
expect-header: Cache-Status: wedge; hit; ttl=600
`},
	{"invalid targeted field is ignored", "9213 §2", `
origin: 200 a
origin-header: Cache-Control: max-age=5
origin-header: CDN-Cache-Control: Max-Age=600
request: GET /a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=5
`},
	{"options bypasses", "9211 §2.2", `
origin: 200 a
request: OPTIONS /a
expect-header: Cache-Status: wedge; fwd=method; fwd-status=200
`},
	{"set-cookie is not stored", "9111 §7.3", `
origin: 200 a
origin-header: Cache-Control: public, max-age=60
origin-header: Set-Cookie: session=alice
request: GET /a
expect: 200 a
expect-header: Set-Cookie: session=alice
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; detail=set-cookie
request: GET /a
expect-origin: 2
`},
	{"qualified no-cache stores without the field", "9111 §5.2.2.4", `
origin: 200 a
origin-header: Cache-Control: max-age=60, no-cache="Set-Cookie"
origin-header: Set-Cookie: session=alice
origin-header: X-Kept: 1
request: GET /a
expect: 200 a
expect-header: Set-Cookie: session=alice
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=60
request: GET /a
expect: 200 a
expect-header: Set-Cookie:
expect-header: X-Kept: 1
expect-header: Cache-Status: wedge; hit; ttl=60
expect-origin: 1
`},
	{"qualified private stores without the fields", "9111 §5.2.2.7", `
origin: 200 a
origin-header: Cache-Control: max-age=60, private="X-User, X-Other"
origin-header: X-User: alice
origin-header: X-User: admin
origin-header: X-Kept: 1
request: GET /a
expect: 200 a
expect-header: X-User: alice, admin
expect-names: Cache-Control, X-Kept, X-User, X-User, Cache-Status
request: GET /a
expect: 200 a
expect-header: X-User:
expect-header: X-Kept: 1
expect-origin: 1
`},
	{"set_cookie strip stores without Set-Cookie", "9111 §7.3", `
config: {"set_cookie":"strip"}
origin: 200 a
origin-header: Cache-Control: public, max-age=60
origin-header: Set-Cookie: lb=7
request: GET /a
expect: 200 a
expect-header: Set-Cookie: lb=7
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=60
request: GET /a
expect-header: Set-Cookie:
expect-header: Cache-Status: wedge; hit; ttl=60
expect-origin: 1
`},
	{"lifetimes over 400 days are capped", "9111 §1.2.2", `
origin: 200 a
origin-header: Cache-Control: max-age=99999999
request: GET /a
expect: 200 a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=34560000
request: GET /a
expect-header: Cache-Status: wedge; hit; ttl=34560000
expect-origin: 1
`},
	{"invalid Expires is already expired", "9111 §5.3", `
origin: 200 a
origin-header: Expires: Fri, 01 Jan 2100  00:00:00 GMT
request: GET /two-spaces
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; ttl=0; detail=no-lifetime
origin: 200 a
origin-header: Expires: Fri, 01 Jan 2100 0:00:00 GMT
request: GET /one-digit-hour
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; ttl=0; detail=no-lifetime
origin: 200 a
origin-header: Expires: Fri, 01 Jan 2100 00:00:00 UTC
request: GET /utc
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; ttl=0; detail=no-lifetime
`},
	{"a single range of a stored 200", "9110 §14.2", `
origin: 200 0123456789
origin-header: Cache-Control: max-age=60
origin-header: ETag: "r1"
origin-header: Content-Type: text/plain
request: GET /r
expect: 200 0123456789
request: GET /r
request-header: Range: bytes=0-3
expect: 206 0123
expect-header: Content-Range: bytes 0-3/10
expect-header: Content-Type: text/plain
expect-header: ETag: "r1"
expect-header: Cache-Status: wedge; hit; ttl=60
request: GET /r
request-header: Range: bytes=-3
expect: 206 789
expect-header: Content-Range: bytes 7-9/10
request: GET /r
request-header: Range: bytes=5-
expect: 206 56789
expect-header: Content-Range: bytes 5-9/10
request: GET /r
request-header: Range: bytes=8-100
expect: 206 89
expect-header: Content-Range: bytes 8-9/10
request: GET /r
request-header: Range: bytes=10-
expect: 416
expect-body:
expect-header: Content-Range: bytes */10
request: GET /r
request-header: Range: bytes=0-1, 4-5
expect: 200 0123456789
expect-header: Content-Range:
request: GET /r
request-header: Range: lines=0-1
expect: 200 0123456789
request: GET /r
request-header: Range: bytes=0-3
request-header: If-Range: "r1"
expect: 206 0123
request: GET /r
request-header: Range: bytes=0-3
request-header: If-Range: "r0"
expect: 200 0123456789
request: GET /r
request-header: Range: bytes=0-3
request-header: If-Range: W/"r1"
expect: 200 0123456789
request: HEAD /r
request-header: Range: bytes=0-3
expect: 200
expect-header: Content-Range:
request: GET /r
request-header: Range: bytes=0-3
request-header: If-None-Match: "r1"
expect: 304
expect-header: Content-Range:
expect-origin: 1
request: GET /r
expect: 200 0123456789
`},
	{"range on a miss goes to the origin", "9110 §14.2", `
origin: 206 01
origin-header: Content-Range: bytes 0-1/10
origin-header: Cache-Control: max-age=60
request: GET /r
request-header: Range: bytes=0-1
expect: 206 01
expect-origin-header: Range: bytes=0-1
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=206; detail=partial
`},
	{"purge by tag", "tags", `
origin: 200 a
origin-header: Cache-Control: max-age=60
origin-header: Surrogate-Key: news home
origin-header: Cache-Tag: sport
request: GET /a
expect: 200 a
request: GET /a
expect-origin: 1
purge-tag: home
request: GET /a
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=60
expect-origin: 2
purge-tag: sport
request: GET /a
expect-origin: 3
`},
}

func TestEndToEndNative(t *testing.T) {
	for _, c := range e2e {
		t.Run(c.name, func(t *testing.T) {
			t.Logf("checks RFC %s", c.rfc)
			runScenario(t, nativeRunner(t, scenarioConfig(c.script)), c.script)
		})
	}
}

func TestEndToEndWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	for _, c := range e2e {
		if slices.ContainsFunc([]string{"wait:", "purge-tag:", "Date:"}, func(s string) bool { return contains(c.script, s) }) {
			continue // the Wasm runtime's clock cannot be moved
		}
		t.Run(c.name, func(t *testing.T) {
			runScenario(t, wasmRunner(t, scenarioConfig(c.script)), c.script)
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestStoresTags checks the entry's tags in the host store itself.
func TestStoresTags(t *testing.T) {
	hs := sdktest.New(t, &cache{}, nil)
	hs.Origin = func(*host.Request) host.Response {
		r := host.Response{Status: 200}
		r.Header.Add("Cache-Control", "max-age=60")
		r.Header.Add("Surrogate-Key", "a  b")
		r.Header.Add("Cache-Tag", "b, c")
		return r
	}
	hs.Do(host.Request{Method: "GET", Scheme: "https", Host: "Example.COM", Path: "/t"})
	e, ok := hs.Env.Cache.Get([]byte(cacheKey("https", "example.com", "/t", "")))
	if !ok {
		t.Fatal("not stored under the primary key")
	}
	if !slices.Equal(e.Tags, []string{"a", "b", "c"}) {
		t.Fatalf("tags %q", e.Tags)
	}
	if n := hs.Env.Cache.PurgeTag([]byte("c")); n != 1 {
		t.Fatalf("purge by tag removed %d", n)
	}
}

// TestPurgeDuringFetchSticks: a URL purged while a request for its
// primary variant is at the origin stays purged for the other variants:
// the fetched response is stored under a new generation, not the purged
// one, which would make every variant filed under it reachable again.
func TestPurgeDuringFetchSticks(t *testing.T) {
	hs := sdktest.New(t, &cache{}, nil)
	primary := []byte(cacheKey("https", "example.com", "/v", ""))
	fetches := 0
	purge := false
	hs.Origin = func(r *host.Request) host.Response {
		fetches++
		if purge {
			hs.Env.Cache.(interface{ Purge([]byte) int }).Purge(primary) // the purge, while the origin answers
		}
		lang, _ := r.Header.Get("Accept-Language")
		resp := host.Response{Status: 200, Body: []byte(fmt.Sprintf("%s %d", lang, fetches))}
		resp.Header.Add("Cache-Control", "max-age=300")
		resp.Header.Add("Vary", "Accept-Language")
		return resp
	}
	get := func(lang string, hdr ...string) string {
		r := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/v"}
		r.Header.Add("Accept-Language", lang)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return string(hs.Do(r).Resp.Body)
	}
	get("en") // the primary
	get("fr") // a variant under its generation
	if got := get("fr"); got != "fr 2" {
		t.Fatalf("fr again: %q, want the stored variant", got)
	}
	purge = true
	get("en", "Cache-Control", "no-cache") // goes to the origin, purged meanwhile
	purge = false
	if got := get("fr"); got != "fr 4" {
		t.Fatalf("fr after the purge: %q, want a fresh fetch (fr 4), not the purged variant", got)
	}
}

func TestRefusesBadConfig(t *testing.T) {
	for _, cfg := range []string{`[1]`, `{"name":""}`, `{"name":"a b"}`, `{"name":"1x"}`, `{"heuristic_percent":101}`,
		`{"keep_stale":-1}`, `{"keep_stale":"1d"}`, `{"strip_cdn_cache_control":1}`, `{"ttl":60}`, `{"set_cookie":"store"}`, `{"set_cookie":true}`} {
		if _, err := sdktest.Configure(&cache{}, []byte(cfg), nil); err == nil {
			t.Errorf("config %s accepted", cfg)
		}
	}
	if _, err := sdktest.Configure(&cache{}, []byte(`{"name":"edge","heuristic_percent":0,"heuristic_max":60,"keep_stale":0,"strip_cdn_cache_control":true,"set_cookie":"refuse"}`), nil); err != nil {
		t.Fatal(err)
	}
}

var e2eMore = []struct{ name, rfc, script string }{
	{"304 with another etag updates nothing", "9111 §4.3.4", `
origin: 200 v1
origin-header: Cache-Control: max-age=1
origin-header: ETag: "v1"
request: GET /a
expect: 200 v1
wait: 5s
origin: 304
origin-header: ETag: "v9"
origin-header: X-New: 1
request: GET /a
expect: 200 v1
expect-header: X-New:
expect-header: Cache-Status: wedge; fwd=stale; fwd-status=304; detail=validator-mismatch
origin: 200 v2
origin-header: Cache-Control: max-age=1
request: GET /a
expect: 200 v2
expect-header: Cache-Status: wedge; fwd=uri-miss; fwd-status=200; stored; ttl=1
`},
	{"head revalidation freshens the get entry", "9111 §4.3.5", `
origin: 200 body
origin-header: Cache-Control: max-age=1
origin-header: ETag: "e"
request: GET /a
expect: 200 body
wait: 5s
origin: 304
origin-header: Cache-Control: max-age=100
origin-header: ETag: "e"
request: HEAD /a
expect: 200
expect-header: Cache-Status: wedge; fwd=stale; fwd-status=304; stored; ttl=100
request: GET /a
expect: 200 body
expect-header: Cache-Status: wedge; hit; ttl=100
expect-origin: 2
`},
	{"304 brings the upstream cache's status", "9211 §2", `
origin: 200 v1
origin-header: Cache-Control: max-age=1
origin-header: ETag: "v1"
origin-header: Cache-Status: upstream; fwd=uri-miss; stored
request: GET /a
expect-header: Cache-Status: upstream; fwd=uri-miss; stored, wedge; fwd=uri-miss; fwd-status=200; stored; ttl=1
wait: 5s
origin: 304
origin-header: ETag: "v1"
origin-header: Cache-Status: upstream; hit
request: GET /a
expect: 200 v1
expect-header: Cache-Status: upstream; hit, wedge; fwd=stale; fwd-status=304; stored; ttl=1
`},
	{"304 drops the stale age", "9111 §4.3.4", `
origin: 200 a
origin-header: Cache-Control: max-age=100
origin-header: Age: 95
origin-header: ETag: "e"
request: GET /a
expect: 200 a
wait: 10s
origin: 304
origin-header: ETag: "e"
request: GET /a
expect: 200 a
expect-header: Age:
expect-header: Cache-Status: wedge; fwd=stale; fwd-status=304; stored; ttl=100
`},
	{"fresh hit answers a conditional with 304", "9111 §4.3.2", `
origin: 200 body
origin-header: Cache-Control: max-age=60
origin-header: ETag: "e"
origin-header: Content-Type: text/plain
request: GET /a
expect: 200 body
request: GET /a
request-header: If-None-Match: W/"e"
expect: 304
expect-body:
expect-header: ETag: "e"
expect-header: Content-Type:
expect-header: Cache-Status: wedge; hit; ttl=60
request: GET /a
request-header: If-None-Match: "other"
expect: 200 body
expect-origin: 1
`},
	{"a stored 404 is not made a 304", "9110 §13.2.1, §15.4.5", `
origin: 404 gone
origin-header: Cache-Control: max-age=60
origin-header: ETag: "404page"
origin-header: Last-Modified: Sun, 01 Nov 2026 10:00:00 GMT
request: GET /gone
expect: 404 gone
request: GET /gone
request-header: If-None-Match: "404page"
expect: 404 gone
expect-header: Cache-Status: wedge; hit; ttl=60
request: GET /gone
request-header: If-Modified-Since: Sun, 06 Dec 2026 10:00:00 GMT
expect: 404 gone
expect-origin: 1
`},
}

func TestEndToEndMoreNative(t *testing.T) {
	for _, c := range e2eMore {
		t.Run(c.name, func(t *testing.T) {
			t.Logf("checks RFC %s", c.rfc)
			runScenario(t, nativeRunner(t, scenarioConfig(c.script)), c.script)
		})
	}
}

// TestAuthenticatedByValue: the auth plugin strips the Authorization it
// verified, so the cache must take its identity value as §3.5's
// Authorization, or it would serve one user's private page to the next.
func TestAuthenticatedByValue(t *testing.T) {
	hs := sdktest.New(t, &cache{}, nil)
	hs.Origin = func(*host.Request) host.Response {
		r := host.Response{Status: 200, Body: []byte("alice's page")}
		r.Header.Add("Cache-Control", "max-age=60")
		return r
	}
	authed := func(ex host.Exchange) (abi.Action, error) {
		ex.Values().Set([]byte("identity-method"), []byte("jwt"), abi.ValueForward)
		return hs.OnRequest(ex)
	}
	for range 2 {
		res := host.Run(host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/me"}, authed, hs.Origin, hs.OnResponse)
		if cs, _ := res.Resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=authorization") {
			t.Fatalf("Cache-Status %q, want it refused for authorization", cs)
		}
	}
}

// TestStaleWhileRevalidateInBackground: in the stale-while-revalidate
// window the first request gets the stale response at once and the entry
// is refreshed behind it (RFC 5861 §3), natively and as Wasm. host.Run
// runs the background revalidation before it returns, as the edge does once
// the response is written (edge/revalidate_test.go has that side).
func TestStaleWhileRevalidateInBackground(t *testing.T) {
	runners := map[string]func(*testing.T) runner{"native": func(t *testing.T) runner { return nativeRunner(t, "") }}
	if !testing.Short() {
		runners["wasm"] = func(t *testing.T) runner { return wasmRunner(t, "") }
	}
	for name, newRunner := range runners {
		t.Run(name, func(t *testing.T) {
			r := newRunner(t)
			calls := 0
			version := "v1"
			r.setOrig(func(req *host.Request) host.Response {
				calls++
				resp := host.Response{Status: 200, Body: []byte(version)}
				// v1 is stale at once, so the Wasm build needs no clock.
				cc := "max-age=0, stale-while-revalidate=60"
				if version == "v2" {
					cc = "max-age=60"
				}
				resp.Header.Add("Cache-Control", cc)
				return resp
			})
			req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/swr"}
			if res := r.do(req); string(res.Resp.Body) != "v1" || res.Background != nil {
				t.Fatalf("first: %q, background %v", res.Resp.Body, res.Background != nil)
			}
			version = "v2"
			res := r.do(req)
			cs, _ := res.Resp.Header.Get("Cache-Status")
			if !res.Answered || string(res.Resp.Body) != "v1" || !strings.Contains(cs, "hit") || !strings.HasSuffix(cs, "detail=stale-while-revalidate") {
				t.Fatalf("stale request: answered %v, %q, Cache-Status %q", res.Answered, res.Resp.Body, cs)
			}
			if res.Background == nil {
				t.Fatal("no background revalidation")
			}
			bcs, _ := res.Background.Resp.Header.Get("Cache-Status")
			if calls != 2 || string(res.Background.Resp.Body) != "v2" || bcs != "wedge; fwd=stale; fwd-status=200; stored; ttl=60" {
				t.Fatalf("background: %d origin calls, %q, Cache-Status %q", calls, res.Background.Resp.Body, bcs)
			}
			res = r.do(req)
			cs, _ = res.Resp.Header.Get("Cache-Status")
			if string(res.Resp.Body) != "v2" || cs != "wedge; hit; ttl=60" || calls != 2 || res.Background != nil {
				t.Fatalf("after: %q, Cache-Status %q, %d origin calls", res.Resp.Body, cs, calls)
			}
		})
	}
}

// TestStaleWhileRevalidateCollapses: while a revalidation of the entry is
// in flight, stale requests are served without asking for another; once it
// is done, the next one asks again.
func TestStaleWhileRevalidateCollapses(t *testing.T) {
	hs := sdktest.New(t, &cache{}, nil)
	calls := 0
	hs.Origin = func(*host.Request) host.Response {
		calls++
		r := host.Response{Status: 200, Body: []byte("v")}
		r.Header.Add("Cache-Control", "max-age=0, stale-while-revalidate=60")
		return r
	}
	req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/c"}
	hs.Do(req)
	release, ok := hs.Env.Cache.(host.Revalidator).BeginRevalidation([]byte(cacheKey("https", "example.com", "/c", "")))
	if !ok {
		t.Fatal("could not take the key")
	}
	for range 3 {
		res := hs.Do(req)
		if cs, _ := res.Resp.Header.Get("Cache-Status"); !res.Answered || res.Background != nil || !strings.HasSuffix(cs, "detail=stale-while-revalidate") {
			t.Fatalf("with one in flight: answered %v, background %v, %q", res.Answered, res.Background != nil, cs)
		}
	}
	release()
	if res := hs.Do(req); res.Background == nil || calls != 2 {
		t.Fatalf("after it is done: background %v, %d origin calls", res.Background != nil, calls)
	}
}

// TestStaleWhileRevalidateWithoutBackground: on a host whose cache cannot
// revalidate in the background, the request in the window revalidates in
// the foreground.
func TestStaleWhileRevalidateWithoutBackground(t *testing.T) {
	hs := sdktest.New(t, &cache{}, nil)
	hs.Env.Cache = struct{ host.Cache }{hs.Env.Cache} // hides BeginRevalidation
	version := "v1"
	hs.Origin = func(*host.Request) host.Response {
		r := host.Response{Status: 200, Body: []byte(version)}
		r.Header.Add("Cache-Control", "max-age=0, stale-while-revalidate=60")
		return r
	}
	req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/f"}
	hs.Do(req)
	version = "v2"
	res := hs.Do(req)
	if cs, _ := res.Resp.Header.Get("Cache-Status"); res.Answered || string(res.Resp.Body) != "v2" || cs != "wedge; fwd=stale; fwd-status=200; stored; ttl=0" {
		t.Fatalf("answered %v, %q, Cache-Status %q", res.Answered, res.Resp.Body, cs)
	}
}
