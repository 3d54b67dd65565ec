package main

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentWasm sends one client's requests from several goroutines
// through a pool of Wasm instances: the host's takes are atomic, so
// exactly the burst is allowed, however the peeks and takes of concurrent
// requests interleave.
func TestConcurrentWasm(t *testing.T) {
	p, _ := loadWasm(t, `{"policies":[
		{"name":"perip","key":"ip","limit":10,"period":"1h"},
		{"name":"site","key":"path:/","limit":1000,"period":"1h"}]}`)
	const workers, each = 4, 25
	var allowed, refused atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				res := do(p, exchange{method: "GET", target: "/a", ip: "203.0.113.7"})
				switch {
				case res.RequestErr != nil || res.ResponseErr != nil:
					t.Error(res.RequestErr, res.ResponseErr)
				case res.Resp.Status == 200:
					allowed.Add(1)
				case res.Resp.Status == 429:
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 10 || refused.Load() != workers*each-10 {
		t.Fatalf("allowed %d, refused %d; want 10 and %d", allowed.Load(), refused.Load(), workers*each-10)
	}
}

// BenchmarkOnRequest measures one allowed request through three policies,
// natively against the real host logic (so it includes the host's work).
func BenchmarkOnRequest(b *testing.B) {
	h := native(b, `{"policies":[
		{"name":"perip","key":"ip","limit":2000000000,"period":"1s"},
		{"name":"peruser","key":"value:sub","limit":2000000000,"period":"1s"},
		{"name":"search","key":"path:/search","limit":2000000000,"period":"1s"}]}`)
	ex := exchange{method: "GET", target: "/search", ip: "203.0.113.7", values: [][2]string{{"sub", "alice"}}}
	b.ReportAllocs()
	for b.Loop() {
		if res := do(h, ex); res.Resp.Status != 200 {
			b.Fatal(res.Resp.Status)
		}
	}
}

// FuzzConfig: whatever the bytes, configuration either succeeds with at
// least one well-formed policy or fails with an error; it never panics.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"policies":[{"name":"perip","key":"ip","limit":100,"period":"1m","burst":20}]}`))
	f.Add([]byte(`{"headers":false,"policies":[{"name":"u","key":"value:sub","limit":1,"period":"1s","missing":"skip","shadow":true}]}`))
	f.Add([]byte(`{"policies":[{"name":"s","key":"path:/search","limit":5,"period":"1s"}]}`))
	f.Add([]byte(`{"policies":[{"name":"h","key":"header:X-Api-Key","limit":5,"period":"400h"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig(data)
		if err != nil {
			return
		}
		for _, p := range cfg.policies {
			if !validName(p.name) || p.limit.Count < 1 || p.limit.Burst < 1 || p.window < 1 {
				t.Fatalf("accepted a bad policy %+v from %q", p, data)
			}
		}
	})
}
