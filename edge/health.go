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
// fleet's gates and the status page: requests, and of the requests whose
// outcome is this version's (observeChain) those answered 5xx or on which
// a plugin failed, and their latencies by manifest.LatencyBounds.
type health struct {
	requests, errors atomic.Uint64
	buckets          [len(manifest.LatencyBounds) + 1]atomic.Uint64 // the last is +Inf
}

func (h *health) outcome(failed bool, d time.Duration) {
	if failed {
		h.errors.Add(1)
	}
	i := 0
	for i < len(manifest.LatencyBounds) && d > manifest.LatencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
}

// observeChain counts a request in the health of each version that ran it
// (held[i] is what step chain[i] ran; bit i of failed is set where held[i]
// failed) and gives its outcome, an error (a 5xx or a failure) and its
// latency, only to the versions that may have produced it, so that a
// version's figures are its own and not the chain's around it (a canary
// that breaks requests must not show as errors of the stable versions
// beside it):
//   - the canary versions the request ran, whenever there are any: a
//     canary can break what it passes on, so a later plugin's failure or
//     5xx may be its doing, and its gates must see it;
//   - and the versions that failed, else for a 5xx a plugin answered the
//     one that answered;
//   - with neither, every version that ran: a broken origin and a version
//     that breaks what it sends there are not told apart by one request.
func observeChain(chain []*step, held []*loaded, failed uint64, answered bool, status int, d time.Duration) {
	var blame uint64 // bit i: held[i] gets the outcome
	for i, l := range held {
		if s := chain[i]; l == s.canary && l != s.stable {
			blame |= 1 << min(i, 63)
		}
	}
	switch {
	case failed != 0:
		blame |= failed
	case answered && status >= 500 && len(held) > 0:
		blame |= 1 << min(len(held)-1, 63)
	}
	if blame == 0 {
		blame = ^uint64(0)
	}
	bad := failed != 0 || status >= 500
	for i, l := range held {
		l.h.requests.Add(1)
		if blame&(1<<min(i, 63)) != 0 {
			l.h.outcome(bad, d)
		}
	}
}

// Health reports the counters of every plugin version the node runs now,
// one entry per plugin, version, digest and config (summed over the routes
// that run it so), sorted. By config too: a config-only canary runs the
// stable side's module, and its gates must see its own requests alone.
// Counters start when a version is loaded: a version the node stops
// running and loads again starts from zero.
func (n *Node) Health() []manifest.Health {
	g := n.gen.Load()
	type id struct{ plugin, version, digest, config string }
	sum := map[id]*manifest.Health{}
	for _, l := range g.loaded {
		k := id{l.m.Name(), l.m.Version(), l.m.Digest(), l.key.config}
		mh := sum[k]
		if mh == nil {
			mh = &manifest.Health{Plugin: k.plugin, Version: k.version, Digest: k.digest, Config: k.config, Buckets: make([]uint64, len(l.h.buckets))}
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
		return cmp.Or(strings.Compare(a.Plugin, b.Plugin), strings.Compare(a.Version, b.Version),
			strings.Compare(a.Digest, b.Digest), strings.Compare(a.Config, b.Config))
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
			r := manifest.Running{Version: s.stable.m.Version(), Digest: s.stable.m.Digest(), Config: s.stable.key.config}
			if s.canary != nil {
				r.Canary, r.CanaryDigest, r.CanaryConfig = s.canary.m.Version(), s.canary.m.Digest(), s.canary.key.config
				r.Share, r.Split = float64(s.share)/100, s.split.String()
			}
			out[s.key] = r
		}
	}
	return out
}
