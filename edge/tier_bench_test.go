package edge_test

import (
	"testing"
	"time"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// BenchmarkTierAsk: one ask answered from the owner's cache, over a real
// socket: the allocations per ask (the asking client's included) are the
// tier listener's cost of a hit.
func BenchmarkTierAsk(b *testing.B) {
	owner := startRegion(b, &countingOrigin{}, "", "pop-b")[0]
	codec := origintest.NewCodec(b, wire.Config{Keys: []wire.Key{tierKey}})
	cl, err := originclient.New(originclient.Config{Addr: owner.tier.Addr().String(), Codec: codec, MaxRetries: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	req := &wire.Request{Method: []byte("GET"), Scheme: []byte("http"), Host: []byte(tierHost), Path: []byte("/bench")}
	req.AddValue([]byte("wedge-tier-route"), []byte("/"))
	req.AddValue([]byte("wedge-tier-step"), []byte("0:cache"))
	req.AddValue([]byte("wedge-tier-hop"), []byte("region"))
	req.AddValue([]byte("wedge-tier-purge"), []byte("0"))
	var resp wire.Response
	b.ReportAllocs()
	for b.Loop() {
		if err := cl.Do(time.Now().Add(10*time.Second), req, &resp); err != nil || resp.Status != 200 {
			b.Fatalf("ask: %v %d %q", err, resp.Status, resp.Error)
		}
	}
}
