package main

import (
	"testing"
	"time"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/host"
)

// TestStoresTargetedFields: what the cache stores keeps the targeted
// fields (Wedge-Cache-Control, and CDN-Cache-Control when it strips that
// too), whether it stored a miss, freshened its entry on a background
// revalidation's 304 or served it stale on an error, so that the regional
// cache tier hands them to an asking cache (edge/tier_http.go); no client
// sees them, on a miss, a hit, a freshening or a stale answer alike.
func TestStoresTargetedFields(t *testing.T) {
	hs := sdktest.New(t, &cache{}, []byte(`{"strip_cdn_cache_control":true}`))
	now := t0
	hs.Env.Now = func() time.Time { return now }
	status := 200
	hs.Origin = func(*host.Request) host.Response {
		r := host.Response{Status: status}
		if status < 500 {
			r.Header.Add("Cache-Control", "no-store")
			r.Header.Add("Wedge-Cache-Control", "max-age=10, stale-while-revalidate=20, stale-if-error=600")
			r.Header.Add("CDN-Cache-Control", "max-age=5")
			r.Header.Add("ETag", `"e"`)
		}
		if status == 200 {
			r.Body = []byte("body")
		}
		return r
	}
	req := host.Request{Method: "GET", Scheme: "https", Host: "example.com", Path: "/t"}
	key := []byte(cacheKey("https", "example.com", "/t", ""))
	stored := func(what string) {
		t.Helper()
		e, ok := hs.Env.Cache.Get(key)
		if !ok {
			t.Fatalf("%s: not stored", what)
		}
		r := host.Response{Header: host.Header{Fields: e.Response.Header}}
		for _, name := range []string{"Wedge-Cache-Control", "CDN-Cache-Control"} {
			if _, ok := r.Header.Get(name); !ok {
				t.Errorf("%s: the entry has no %s: %v", what, name, e.Response.Header)
			}
		}
	}
	served := func(what string, res *host.Result, wantCS string) {
		t.Helper()
		if cs, _ := res.Resp.Header.Get("Cache-Status"); cs != wantCS || string(res.Resp.Body) != "body" {
			t.Errorf("%s: %d %q, Cache-Status %q, want %q", what, res.Resp.Status, res.Resp.Body, cs, wantCS)
		}
		for _, name := range []string{"Wedge-Cache-Control", "CDN-Cache-Control"} {
			if v, ok := res.Resp.Header.Get(name); ok {
				t.Errorf("%s: the client got %s: %s", what, name, v)
			}
		}
	}

	served("miss", hs.Do(req), "wedge; fwd=uri-miss; fwd-status=200; stored; ttl=10")
	stored("miss")
	served("hit", hs.Do(req), "wedge; hit; ttl=10")

	now = now.Add(15 * time.Second)
	status = 304
	res := hs.Do(req)
	served("stale-while-revalidate hit", res, "wedge; hit; ttl=-5; detail=stale-while-revalidate")
	if res.Background == nil {
		t.Fatal("no background revalidation")
	}
	served("background revalidation", res.Background, "wedge; fwd=stale; fwd-status=304; stored; ttl=10")
	stored("freshened")

	now = now.Add(60 * time.Second)
	status = 503
	served("stale-if-error", hs.Do(req), "wedge; fwd=stale; fwd-status=503; ttl=-50; detail=stale-if-error")
	stored("after stale-if-error")
}
