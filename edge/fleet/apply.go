// Applying a desired state: merge the region's and the POP's, skip it if the
// node runs it already or it was refused (until the node's config is
// reloaded: Reloaded), else fetch and verify every module it names and swap
// them into the node at once.

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
)

// running is the set of digests the node serves, canaries included.
func (a *Agent) running() map[string]bool {
	out := map[string]bool{}
	for _, r := range a.node.Running() {
		out[r.Digest] = true
		if r.CanaryDigest != "" {
			out[r.CanaryDigest] = true
		}
	}
	return out
}

// reconcileOrRetry reconciles, reports at once, and returns when to try
// again after a transient failure (nil: no need).
func (a *Agent) reconcileOrRetry(ctx context.Context, stores *controlplane.Stores, applied chan<- struct{}) <-chan time.Time {
	again := a.reconcile(ctx, stores)
	select {
	case applied <- struct{}{}:
	default:
	}
	if again {
		return time.After(500 * time.Millisecond)
	}
	return nil
}

// maxTries bounds the attempts at a desired state whose modules could not
// be fetched (a timeout, the link down) before it is refused; the next
// time the agent reconnects it tries again.
const maxTries = 10

// reconcile applies the merged desired state unless the node runs it
// already or it was refused since the node's config was last reloaded. It
// reports true when a fetch failed in a way that may pass: the state is
// then neither applied nor refused yet, and the caller tries again.
func (a *Agent) reconcile(ctx context.Context, stores *controlplane.Stores) (again bool) {
	region := a.desired[manifest.RegionKey(a.o.Region)]
	pop := a.desired[manifest.POPKey(a.o.POP)]
	rev := max(region.rev, pop.rev)
	releases := manifest.Merge(region.d, pop.d)
	b, _ := json.Marshal(releases) // map keys sorted: equal states, equal bytes
	key := string(b)
	switch {
	case key == a.applied && !a.force:
		a.ack(rev, a.stopped)
		return false
	case a.refused[key] != nil:
		// Refused before, at another revision: this one is refused for
		// the same reason, and the report says so, or a rollback that
		// restores what this POP refused before the rollout would wait
		// for an answer that never comes.
		a.mu.Lock()
		answered := a.status.Revision == rev && !a.status.Applied
		a.mu.Unlock()
		if !answered {
			a.nack(rev, a.refused[key])
		}
		return false
	}
	start := time.Now()
	warning, err := a.apply(ctx, releases, stores)
	if err != nil {
		a.tries[key]++
		if errors.Is(err, controlplane.ErrUnavailable) && a.tries[key] < maxTries && ctx.Err() == nil {
			a.o.Logger.Warn("desired state not applied yet; trying again", "revision", rev, "try", a.tries[key], "err", err)
			return true
		}
		if !errors.Is(err, controlplane.ErrUnavailable) {
			a.refused[key] = err
		}
		a.nack(rev, err)
		return false
	}
	delete(a.tries, key)
	a.applied, a.stopped, a.force = key, warning, false
	a.applies.WithLabelValues("ok").Inc()
	a.ack(rev, warning)
	a.o.Logger.Info("desired state applied", "revision", rev, "plugins", len(releases), "took", time.Since(start))
	a.mu.Lock()
	revoked := a.revoked
	a.mu.Unlock()
	desired := map[string]*manifest.Desired{}
	for key, ks := range a.desired {
		if ks.d != nil {
			desired[key] = ks.d
		}
	}
	if err := a.save(state{Revision: rev, Releases: releases, Revoked: revoked, Desired: desired}); err != nil {
		a.o.Logger.Error("last-known-good state not saved", "err", err)
	}
	return false
}

// apply fetches and verifies every module the releases name, then swaps
// them in at once: all or nothing. A revoked version is refused, unless the
// node runs it already: that one is stopped (the slot falls back to the
// config file's version, a canary is dropped) and the warning says so.
func (a *Agent) apply(ctx context.Context, releases map[string]manifest.Release, stores *controlplane.Stores) (warning string, err error) {
	a.compiling.Lock()
	defer a.compiling.Unlock()
	a.mu.Lock()
	revoked := a.revoked
	a.mu.Unlock()
	running := a.running()
	var stopped []string
	stop := func(key string, art *manifest.Artifact) bool {
		r, ok := revoked[art.Digest]
		if ok && running[art.Digest] {
			stopped = append(stopped, fmt.Sprintf("%s: %s@%s revoked (%s)", key, art.Name, art.Version, r.Reason))
		}
		return ok && running[art.Digest]
	}
	rel := make(map[string]*edge.Release, len(releases))
	for key, r := range releases {
		er := &edge.Release{Config: r.Config}
		if r.Artifact.Digest != "" {
			if stop(key, &r.Artifact) {
				er = &edge.Release{}
			} else {
				bin, err := a.module(ctx, &r.Artifact, stores)
				if err != nil {
					return "", fmt.Errorf("fleet: %s: %w", key, err)
				}
				er.Version, er.Binary = r.Artifact.Version, bin
			}
		}
		if c := r.Canary; c != nil && !stop(key+" canary", &c.Artifact) {
			bin, err := a.module(ctx, &c.Artifact, stores)
			if err != nil {
				return "", fmt.Errorf("fleet: %s canary: %w", key, err)
			}
			er.Canary = &edge.Release{Version: c.Artifact.Version, Binary: bin, Config: c.Config}
			er.Share, er.Split = c.Share, c.Split
		}
		rel[key] = er
	}
	if len(stopped) > 0 {
		slices.Sort(stopped)
		warning = "stopped: " + strings.Join(stopped, "; ")
	}
	return warning, a.node.SetReleases(ctx, rel)
}
