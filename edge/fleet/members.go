// Membership: which POPs of the agent's region are up, from the status
// every POP reports to the wedge_status bucket. The regional cache tier
// hashes keys over this view (edge/internal/rendezvous).

package fleet

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// peerTTL is how many report intervals a POP may stay silent and still be
// a member: one lost or late report is not a POP gone.
const peerTTL = 3

// Peer is a POP of the fleet, as the agent sees it from status reports.
type Peer struct {
	POP, Region string
	// Addr is where the POP says its peers reach it (manifest.Status.Peer).
	Addr string
	// Seen is when this agent last received the POP's report (its own
	// clock, so POPs' clocks need not agree); for a report replayed when
	// the status is watched, when the report was written, the server's
	// clock being taken as this agent's less the lag measured then. The
	// agent itself is always seen now.
	Seen time.Time
	Self bool
}

// members is the agent's view of its region.
type members struct {
	ttl time.Duration
	// notify is held while a view is computed and handed to the
	// callbacks, so they see views one at a time and in order.
	notify sync.Mutex
	mu     sync.Mutex // guards the fields below
	others map[string]Peer
	last   string // the view the callbacks saw last, as viewKey
	subs   []func([]Peer)

	// Tests set these before Run (members_export_test.go): the POP's
	// clock, and how the status is watched. nil is the real one.
	now   func() time.Time
	watch func(context.Context, jetstream.KeyValue) (jetstream.KeyWatcher, error)
}

func (m *members) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

func (m *members) startWatch(ctx context.Context, kv jetstream.KeyValue) (jetstream.KeyWatcher, error) {
	if m.watch != nil {
		return m.watch(ctx, kv)
	}
	return kv.Watch(ctx, manifest.StatusKey("*", "*"))
}

// Peers returns the POPs of the agent's region seen within the last
// 3 report intervals, itself included, sorted by name.
func (a *Agent) Peers() []Peer { return a.peers(a.members.clock()) }

// OnPeers calls f with the current view of the whole fleet (every region's
// POPs, as Peers sees its own region's: a shield region's POPs are asked
// too) now, then with the new one whenever a POP joins or leaves or
// changes its address (a view may come twice). Calls come one at a time,
// from the agent's goroutines: f must not block, call OnPeers, or modify
// the view, which other callbacks share.
func (a *Agent) OnPeers(f func([]Peer)) {
	m := &a.members
	m.notify.Lock()
	defer m.notify.Unlock()
	m.mu.Lock()
	m.subs = append(m.subs, f)
	m.mu.Unlock()
	f(a.fleet(m.clock()))
}

// peers is the view of the agent's region at now.
func (a *Agent) peers(now time.Time) []Peer {
	return slices.DeleteFunc(a.fleet(now), func(p Peer) bool { return p.Region != a.o.Region })
}

// fleet is the view of every region at now, sorted by name.
func (a *Agent) fleet(now time.Time) []Peer {
	a.mu.Lock()
	addr := a.status.Peer
	a.mu.Unlock()
	m := &a.members
	m.mu.Lock()
	out := []Peer{{POP: a.o.POP, Region: a.o.Region, Addr: addr, Seen: now, Self: true}}
	for _, p := range m.others {
		if now.Sub(p.Seen) <= m.ttl {
			out = append(out, p)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(x, y Peer) int { return strings.Compare(x.POP, y.POP) })
	return out
}

// SetPeer sets the address the agent reports for its peers to reach it.
func (a *Agent) SetPeer(addr string) {
	a.mu.Lock()
	a.status.Peer = addr
	a.mu.Unlock()
	a.publishPeers(a.members.clock())
}

// seePeer records a status report from the bucket under key: value if
// put, else deleted. The agent's own is not its business; a deleted
// report is a POP that left.
func (a *Agent) seePeer(key string, put bool, value []byte, seen time.Time) {
	_, pop, ok := manifest.ParseStatusKey(key)
	if !ok || pop == a.o.POP {
		return
	}
	m := &a.members
	st, ok := manifest.StatusOf(key, value)
	if !put || !ok {
		// Gone, unreadable, or a report under another POP's or region's
		// key: not a member we could reach.
		m.mu.Lock()
		delete(m.others, pop)
		m.mu.Unlock()
	} else {
		m.mu.Lock()
		m.others[pop] = Peer{POP: pop, Region: st.Region, Addr: st.Peer, Seen: seen}
		m.mu.Unlock()
	}
	a.publishPeers(m.clock())
}

// publishPeers tells the callbacks if the view changed.
func (a *Agent) publishPeers(now time.Time) {
	m := &a.members
	m.notify.Lock()
	defer m.notify.Unlock()
	view := a.fleet(now)
	m.mu.Lock()
	key := viewKey(view)
	changed := key != m.last
	m.last = key
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	if !changed {
		return
	}
	for _, f := range subs {
		f(view)
	}
}

// viewKey is what of a view the callbacks care about: who, and where.
func viewKey(view []Peer) string {
	var b strings.Builder
	for _, p := range view {
		b.WriteString(p.Region + "/" + p.POP + "=" + p.Addr + " ")
	}
	return b.String()
}

// memberNames is the view as the status reports it.
func memberNames(view []Peer) []string {
	names := make([]string, len(view))
	for i, p := range view {
		names[i] = p.POP
	}
	return names
}

// expirePeers looks for silent POPs every report interval until ctx ends,
// whether the control plane is there or not: a POP that stops reporting
// leaves the view within 3 report intervals of its last report, plus one
// for this sweep, and so does every other POP when this one is cut off.
func (a *Agent) expirePeers(ctx context.Context) {
	tick := time.NewTicker(a.o.Report)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.publishPeers(a.members.clock())
		}
	}
}

// watchRetry is the first wait before the status is watched again after
// a watch failed or ended; each failure in a row doubles it, up to one
// report interval.
const watchRetry = 100 * time.Millisecond

// watchPeers feeds the status bucket's reports to the view until ctx ends
// (follow then starts again). A watch that fails or ends while the link is
// up is started again, so that the view does not shrink to this POP.
func (a *Agent) watchPeers(ctx context.Context, kv jetstream.KeyValue) {
	wait := watchRetry
	for {
		synced, err := a.watchPeersOnce(ctx, kv)
		if ctx.Err() != nil {
			return
		}
		if synced {
			wait = watchRetry
		}
		if wait == watchRetry {
			a.o.Logger.Warn("status watch ended; watching again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, max(a.o.Report, watchRetry))
	}
}

// watchPeersOnce watches the status bucket until ctx ends or the watch
// does, and says whether it replayed the current reports first.
func (a *Agent) watchPeersOnce(ctx context.Context, kv jetstream.KeyValue) (synced bool, _ error) {
	m := &a.members
	// A replayed report may be the last of a POP long gone: it counts
	// from when it was written, on the server's clock, which is taken
	// as this POP's minus lag (as of the reply: a report looks fresher
	// by up to the round trip, never older). A live one counts from now.
	lag, known, err := serverLag(ctx, kv, m.clock)
	if err != nil {
		return false, err
	}
	w, err := m.startWatch(ctx, kv)
	if err != nil {
		return false, err
	}
	defer stopSoon(w) // follow waits for this reader: watch.go
	for {
		select {
		case <-ctx.Done():
			return synced, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return synced, errors.New("the watch ended")
			}
			if e == nil {
				synced = true
				continue
			}
			seen := m.clock()
			if !synced && known && e.Created().Add(lag).Before(seen) {
				seen = e.Created().Add(lag)
			}
			a.seePeer(e.Key(), e.Operation() == jetstream.KeyValuePut, e.Value(), seen)
		}
	}
}

// serverLag is how far the server's clock is behind now's, from the time
// the server puts on the bucket's stream info; not known if it puts none
// (replayed reports then count from now, like live ones).
func serverLag(ctx context.Context, kv jetstream.KeyValue, now func() time.Time) (lag time.Duration, known bool, _ error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, false, err
	}
	at := now()
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo().TimeStamp.IsZero() {
		return 0, false, nil
	}
	return at.Sub(bs.StreamInfo().TimeStamp), true, nil
}
