// What the node tells the fleet agent about the plugin versions it runs:
// per-version health counters (counted on the request path, read by the
// fleet's gates) and what each chain step runs now. Apart because it is
// read by edge/fleet's status reports, not part of applying a release.

package edge

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// health counts the requests that ran through one module version, for the
// fleet's gates: requests, those answered 5xx or on which the plugin failed,
// and latencies by manifest.LatencyBounds.
type health struct {
	requests, errors atomic.Uint64
	buckets          [len(manifest.LatencyBounds) + 1]atomic.Uint64 // the last is +Inf
}

func (h *health) observe(status int, d time.Duration, failed bool) {
	h.requests.Add(1)
	if failed || status >= 500 {
		h.errors.Add(1)
	}
	i := 0
	for i < len(manifest.LatencyBounds) && d > manifest.LatencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
}

// Health reports the counters of every plugin version the node runs now,
// one entry per plugin, version and digest (summed over the configs it
// runs with), sorted. Counters start when a version is loaded: a version
// the node stops running and loads again starts from zero.
func (n *Node) Health() []manifest.Health {
	g := n.gen.Load()
	type id struct{ plugin, version, digest string }
	sum := map[id]*manifest.Health{}
	for _, l := range g.loaded {
		k := id{l.m.Name(), l.m.Version(), l.m.Digest()}
		mh := sum[k]
		if mh == nil {
			mh = &manifest.Health{Plugin: k.plugin, Version: k.version, Digest: k.digest, Buckets: make([]uint64, len(l.h.buckets))}
			sum[k] = mh
		}
		mh.Requests += l.h.requests.Load()
		mh.Errors += l.h.errors.Load()
		for i := range l.h.buckets {
			mh.Buckets[i] += l.h.buckets[i].Load()
		}
	}
	out := make([]manifest.Health, 0, len(sum))
	for _, mh := range sum {
		out = append(out, *mh)
	}
	slices.SortFunc(out, func(a, b manifest.Health) int {
		return cmp.Or(strings.Compare(a.Plugin, b.Plugin), strings.Compare(a.Version, b.Version), strings.Compare(a.Digest, b.Digest))
	})
	return out
}

// Running reports what each plugin of each route runs now, by release key
// (plugin name, and route/plugin where a route differs from the others).
func (n *Node) Running() map[string]manifest.Running {
	g := n.gen.Load()
	out := map[string]manifest.Running{}
	for _, rt := range g.routes {
		for _, s := range rt.chain {
			r := manifest.Running{Version: s.stable.m.Version(), Digest: s.stable.m.Digest()}
			if s.canary != nil {
				r.Canary, r.CanaryDigest = s.canary.m.Version(), s.canary.m.Digest()
				r.Share = float64(s.share) / 100
			}
			out[s.key] = r
		}
	}
	return out
}
