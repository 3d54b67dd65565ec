// Status reports: what the agent says of itself (Status), how an apply or a
// refusal changes that (ack, nack), and the loop that writes it to the
// control plane's status bucket.

package fleet

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// Status is what the agent reports now.
func (a *Agent) Status() manifest.Status {
	a.mu.Lock()
	s := a.status
	a.mu.Unlock()
	s.Time = time.Now().UTC()
	s.Running = a.node.Running()
	s.Health = a.node.Health()
	s.Members = memberNames(a.Peers())
	return s
}

// ack reports the node in step with revision rev; warning says what of it
// the node could not run (a revoked version it stopped). Refused records
// (verify.go) are reported apart, in Status.Refused: the node runs what it
// accepted, and that is what Revision and Applied are about.
func (a *Agent) ack(rev uint64, warning string) {
	a.revision.Set(float64(rev))
	a.mu.Lock()
	a.status.Revision, a.status.Applied, a.status.Source = rev, true, "control"
	a.status.Error = manifest.Clip(warning, manifest.MaxStatusError)
	a.mu.Unlock()
}

func (a *Agent) nack(rev uint64, err error) {
	a.o.Logger.Warn("desired state refused; serving the previous one", "revision", rev, "err", err)
	a.applies.WithLabelValues("nack").Inc()
	a.mu.Lock()
	a.status.Revision, a.status.Applied, a.status.Error = rev, false, manifest.Clip(err.Error(), manifest.MaxStatusError)
	a.mu.Unlock()
}

// reportEvery writes the POP's status every Report interval and at once
// after each apply. A failed write is worth a warning: the control plane
// is away, or refuses the report, and either way this POP looks gone to
// it (out of its region's tier, failing rollouts); the next one tries
// again.
func (a *Agent) reportEvery(ctx context.Context, kv jetstream.KeyValue, applied <-chan struct{}) {
	tick := time.NewTicker(a.o.Report)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-applied:
		}
		b, err := json.Marshal(a.Status())
		if err != nil {
			continue
		}
		if _, err := kv.Put(ctx, manifest.StatusKey(a.o.Region, a.o.POP), b); err != nil && ctx.Err() == nil {
			a.o.Logger.Warn("status not reported", "err", err)
		}
	}
}
