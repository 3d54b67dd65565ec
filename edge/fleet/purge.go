// Purges everywhere, the POP's side: follow the purge stream, apply each
// record for the POP's region or the whole fleet to the node's cache,
// acknowledge it to whoever issued it, and keep the stream sequence of the
// last record read on disk. The issuing side is deploy/controlplane's
// purge.go.
//
// The POP reads the other regions' records too, so that its position is
// one in the whole stream: a record gone from the stream after it is one
// the POP did not read. (Following its own subjects only, it could not tell
// its own records gone from other regions' ones that aged out, and emptied
// its cache for those.) It applies them as well, without confirming them:
// it may hold another region's objects as the shield of that region's
// routes (edge/tier.go), and a purge that returned must not leave one
// there for the region to fetch again.
//
// The position is also what the cache tier's owners compare with an
// asker's before answering (Node.SetPurged): a node has applied every
// purge up to it.
//
// A POP that was cut off reads on from the sequence after the last record
// it read, so it applies every purge issued while it was away. What it
// cannot do that way, it makes up for by emptying its cache (a "gap", in
// the log and in wedge_fleet_purges_total{result="gap"}): when records it
// had not read are no longer in the stream (away for longer than
// manifest.PurgeRetention, or more than manifest.PurgeMaxMsgs purges
// since), or the stream is not the one it followed (a control plane
// rebuilt from scratch). A POP that never read a record reads from a
// minute before its agent started (the margin is for the clocks of the POP
// and the control plane; applying a purge twice does no harm).

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/deploy/manifest"
)

// purger is the agent's place in the purge stream. Only the one
// followPurges running at a time uses it (follow waits for it).
type purger struct {
	seq     uint64    // stream sequence of the last record read (after a gap: the one before those kept); 0: none
	stream  time.Time // creation time of the stream seq is of
	since   time.Time // where reading starts while seq is 0
	applied *prometheus.CounterVec

	// Tests set this before Run (purge_export_test.go): how the records
	// are read from the consumer. nil is its Messages.
	messages func(jetstream.Consumer) (jetstream.MessagesContext, error)
}

// open starts reading the records of cons.
func (p *purger) open(cons jetstream.Consumer) (jetstream.MessagesContext, error) {
	if p.messages != nil {
		return p.messages(cons)
	}
	return cons.Messages()
}

// purgeState is what purge.json in Options.Dir keeps.
type purgeState struct {
	Stream time.Time `json:"stream"`
	Seq    uint64    `json:"seq"`
}

func newPurger(a *Agent) *purger {
	p := &purger{since: time.Now().Add(-time.Minute),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wedge_fleet_purges_total",
			Help: "Purges from the control plane applied (ok), another region's applied unconfirmed (other), refused as malformed (bad), and caches emptied for purges missed (gap)."},
			[]string{"result"})}
	if a.o.Dir == "" {
		return p
	}
	b, err := os.ReadFile(filepath.Join(a.o.Dir, "purge.json"))
	var st purgeState
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	switch {
	case err == nil:
		p.seq, p.stream = st.Seq, st.Stream
		a.node.SetPurged(p.seq)
	case !errors.Is(err, os.ErrNotExist):
		// The cache is in memory, so a restarted POP has nothing older
		// than its start to purge: reading from there is enough.
		a.o.Logger.Warn("purge position unreadable; following purges from now", "err", err)
	}
	return p
}

// followPurges applies purges until ctx ends, opening the stream again
// after an error. A control plane that predates purges has no stream: that
// is said once, and asked again less and less often (up to every 30 s).
func (a *Agent) followPurges(ctx context.Context, nc *nats.Conn) {
	const retry, maxRetry = 250 * time.Millisecond, 30 * time.Second
	wait, missing := retry, false
	for ctx.Err() == nil {
		err := a.consumePurges(ctx, nc)
		if ctx.Err() != nil {
			return
		}
		switch {
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			a.o.Logger.Warn("purges not followed; trying again", "err", err)
			wait, missing = retry, false
		case !missing:
			a.o.Logger.Warn("the control plane has no purge stream (it predates purges); purges are not followed until it has one", "err", err)
			missing = true
		default:
			wait = min(2*wait, maxRetry)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (a *Agent) consumePurges(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, manifest.StreamPurge)
	if err != nil {
		return fmt.Errorf("fleet: purge stream: %w", err)
	}
	info := st.CachedInfo()
	p := a.purge
	// Every record: see the top of the file. When nats.go recreates the
	// consumer inside Next (after a reconnect, a missed heartbeat, the
	// consumer gone), one try, not its default of trying forever: ctx
	// does not reach that loop, so Next would not end with it. A failed
	// try ends Next with its error, and followPurges opens the stream
	// again from the position; the try itself is bounded by nats.go's own
	// 10 s request timeout.
	cfg := jetstream.OrderedConsumerConfig{MaxResetAttempts: 1}
	first, last := info.State.FirstSeq, info.State.LastSeq
	same := info.Created.Equal(p.stream)
	p.stream = info.Created
	var gap string
	switch {
	case p.seq == 0 && first > 1 && info.State.FirstTime.After(p.since):
		gap = "purges issued since the POP started are no longer kept"
	case p.seq == 0:
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &p.since
		// Its cache held nothing when the agent started, so the purges
		// before then are applied: the tier's owners need not wait for
		// them. The records from since on come again, each moving the
		// position back to itself (lower is only more careful) and on.
		a.node.SetPurged(last)
	case !same || p.seq > last:
		gap = "the purge stream is not the one this POP followed"
	case first > p.seq+1:
		gap = "purges issued while the POP was away are no longer kept"
	default:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, p.seq+1
	}
	if gap != "" {
		a.o.Logger.Warn("purges missed; emptying the cache", "why", gap, "entries", a.node.PurgeAll(),
			"read", p.seq, "kept_from", first)
		p.applied.WithLabelValues("gap").Inc()
		// The records kept are applied again, so that each is
		// acknowledged; the position moves to just before them, so that
		// the next start does not empty the cache again for this gap.
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		p.seq = max(first, 1) - 1
		a.node.SetPurged(p.seq)
		a.savePurgePosition()
	}
	cons, err := js.OrderedConsumer(ctx, manifest.StreamPurge, cfg)
	if err != nil {
		return fmt.Errorf("fleet: purge stream: %w", err)
	}
	msgs, err := p.open(cons)
	if err != nil {
		return fmt.Errorf("fleet: purge stream: %w", err)
	}
	// Next ends with ctx, and the iterator is stopped only once Next has
	// returned, never from another goroutine as ctx ends: a Stop that
	// lands while Next recreates the consumer (on a reconnect) stops the
	// consumer being replaced, and Next then waits on the new one until
	// the link closes. A POP followed no desired state for minutes after
	// the control plane came back, its follow waiting for this.
	defer msgs.Stop()
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("fleet: purge stream: %w", err)
		}
		a.applyPurge(nc, m)
	}
}

// applyPurge applies one record, if it is for this POP, and acknowledges
// it, then records its sequence: a crash in between applies it again,
// which does no harm.
func (a *Agent) applyPurge(nc *nats.Conn, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return // not a stream message: an ordered consumer delivers none
	}
	// Another region's record only moves the position, which is saved
	// once the stream is read to its end rather than for each such record.
	mine := m.Subject() == manifest.SubjectPurgeFleet || m.Subject() == manifest.PurgeRegionSubject(a.o.Region)
	if mine {
		a.purgeAndAck(nc, meta.Sequence.Stream, m.Data())
	} else if _, _, err := a.purgeOne(m.Data()); err == nil {
		a.purge.applied.WithLabelValues("other").Inc()
	}
	a.purge.seq = meta.Sequence.Stream
	a.node.SetPurged(a.purge.seq)
	if mine || meta.NumPending == 0 {
		a.savePurgePosition()
	}
}

// savePurgePosition keeps the position in the purge stream in Options.Dir.
func (a *Agent) savePurgePosition() {
	if a.o.Dir == "" {
		return
	}
	b, _ := json.Marshal(purgeState{Stream: a.purge.stream, Seq: a.purge.seq})
	if err := writeFile(filepath.Join(a.o.Dir, "purge.json"), b); err != nil {
		a.o.Logger.Warn("purge position not saved", "err", err)
	}
}

// purgeAndAck applies record seq and acknowledges it.
func (a *Agent) purgeAndAck(nc *nats.Conn, seq uint64, b []byte) {
	n, pr, err := a.purgeOne(b)
	if err != nil {
		a.o.Logger.Error("purge refused", "seq", seq, "err", err)
		a.purge.applied.WithLabelValues("bad").Inc()
		return
	}
	a.o.Logger.Info("purge applied", "id", pr.ID, "tag", pr.Tag, "url", pr.URL, "purged", n, "by", pr.Who)
	a.purge.applied.WithLabelValues("ok").Inc()
	ack, _ := json.Marshal(manifest.PurgeAck{ID: pr.ID, POP: a.o.POP, Region: a.o.Region, Purged: n})
	if err := nc.Publish(manifest.PurgeAckSubject(pr.ID, a.o.POP), ack); err != nil {
		a.o.Logger.Debug("purge not acknowledged", "id", pr.ID, "err", err)
	}
}

// purgeOne applies a record to the node's cache: what the admin API's
// POST /purge does with a tag or a URL.
func (a *Agent) purgeOne(b []byte) (int, *manifest.Purge, error) {
	pr, err := manifest.ParsePurge(b)
	if err != nil {
		return 0, nil, err
	}
	if pr.Tag != "" {
		return a.node.PurgeTag(pr.Tag), pr, nil
	}
	n, err := a.node.PurgeURL(pr.URL)
	return n, pr, err
}
