package deploy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// The Zipf load of BenchmarkTier: zipfRequests requests for keys drawn
// from a Zipf distribution over zipfKeys keys (exponent zipfS, a fixed
// seed), zipfClients at a time.
const (
	zipfRequests = 300_000
	zipfKeys     = 100_000
	zipfS        = 1.1
	zipfClients  = 16
)

// BenchmarkTier measures what the regional cache tier saves the origin
// under a realistic load: a region of 3 POPs with the cache plugin (a real
// control plane for their membership, one counting origin whose responses
// are cacheable for 10 minutes) takes the Zipf load, request i at POP
// i mod 3, with the tier on and off. One op is the whole load from cold
// caches (6-15 s on 2 cores); it reports the origin's requests per op and
// per 1,000 client requests, and the hit ratio of the region as a whole
// (1 - origin requests / client requests). Time and allocations are the
// whole process's: three POPs, the origin and the clients.
//
//	flock /tmp/wedge-bench.lock go test -run '^$' -bench Tier -count 2 ./deploy/
func BenchmarkTier(b *testing.B) {
	keys := zipfLoad()
	for _, c := range []struct{ name, tier string }{{"on", "region"}, {"off", "off"}} {
		b.Run(c.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := startTierFleet(b, ctx, c.tier)
			b.ReportAllocs()
			b.ResetTimer()
			var fetched int64
			for run := range b.N {
				before := f.origin.count()
				zipfRun(b, f.pops, keys, run)
				fetched += f.origin.count() - before
			}
			perRun := float64(fetched) / float64(b.N)
			b.ReportMetric(perRun, "origin-reqs/op")
			b.ReportMetric(1000*perRun/zipfRequests, "origin-reqs/1k")
			b.ReportMetric(1-perRun/zipfRequests, "hit-ratio")
		})
	}
}

// zipfLoad is the keys of the Zipf load, in order.
func zipfLoad() []uint32 {
	z := rand.NewZipf(rand.New(rand.NewPCG(16, 1)), zipfS, 1, zipfKeys-1)
	keys := make([]uint32, zipfRequests)
	for i := range keys {
		keys[i] = uint32(z.Uint64())
	}
	return keys
}

// zipfRun sends the Zipf load to the POPs, keys of its own for each run
// so that every run starts from cold caches.
func zipfRun(b *testing.B, ps []*tierPOP, keys []uint32, run int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range zipfClients {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(keys)); i = next.Add(1) - 1 {
				if _, err := ps[i%int64(len(ps))].get(fmt.Sprintf("/z/%d/%d", run, keys[i])); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}
