package fleet_test

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/internal/testutil"
)

// TestStopClosesLinkFirst: an agent that dialled the control plane closes
// its link as soon as it is stopped, before its watches stop. Stopping a
// watch on an open link asks the control plane to delete the watch's
// consumer, and on a link that is down (the control plane stopped, or a
// partition not yet noticed) that request waits out nats.go's 5 s timeout,
// per watch: a POP took 15 s to stop. So a stop sends no such request.
func TestStopClosesLinkFirst(t *testing.T) {
	f := newFixture(t, embedded.Options{Listen: "127.0.0.1:0"})
	nc, err := f.cp.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deletes, err := nc.SubscribeSync("$JS.API.CONSUMER.DELETE.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	f.startPOP(fleet.Options{URL: f.cp.URL()})
	f.status("a report", func(manifest.Status) bool { return true })
	// Reading a key's history at the start (the replay floor of an agent
	// without disk state) deletes its consumer, on a link that is up: only
	// what the stop sends counts.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := deletes.NextMsg(0); err != nil {
			break
		}
	}
	f.stopAgent()
	// A request that reached the server before the agent's Run returned
	// reached this subscription before the flush's answer.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := deletes.Pending(); n != 0 {
		m, _ := deletes.NextMsg(0)
		t.Fatalf("the stopping agent sent %d consumer deletions (the first: %s) on a link it should have closed", n, m.Subject)
	}
}

// lostStop is the purge stream's iterator as nats.go v1.55.0 can leave it:
// a Stop from another goroutine while Next runs does not reach that Next.
// (A Stop that lands while Next recreates the ordered consumer, as it does
// after a reconnect, stops the consumer being replaced; Next then waits on
// the new one, heartbeats and all, until the link closes.) A Stop with no
// Next running reaches it.
type lostStop struct {
	jetstream.MessagesContext
	mu     sync.Mutex
	nexts  int  // Next calls running
	called bool // Next was called
	lost   bool // a Stop came while a Next ran
}

func (l *lostStop) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	l.mu.Lock()
	l.nexts++
	l.called = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.nexts--
		l.mu.Unlock()
	}()
	return l.MessagesContext.Next(opts...)
}

func (l *lostStop) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nexts > 0 {
		l.lost = true
		return
	}
	l.MessagesContext.Stop()
}

// TestStopWhileReadingPurges stops an agent, on a link that stays up,
// while it waits for purge records, with a purge iterator whose Stop does
// not reach a running Next: the agent stops all the same, and never
// stopped the iterator under a running Next. Follow waits for its purge
// reader whenever it ends, at a stop or when the link comes back: in CI a
// POP whose reader missed its Stop so followed no desired state for the 3
// minutes after the control plane returned, until the test closed its
// link.
func TestStopWhileReadingPurges(t *testing.T) {
	cp, _ := controlplanetest.Start(t, embedded.Options{})
	var mu sync.Mutex
	var iters []*lostStop
	m := startMember(t, cp, "eu-test", "pop1", func(a *fleet.Agent) {
		a.SetPurgeMessages(func(c jetstream.Consumer) (jetstream.MessagesContext, error) {
			msgs, err := c.Messages()
			if err != nil {
				return nil, err
			}
			it := &lostStop{MessagesContext: msgs}
			mu.Lock()
			iters = append(iters, it)
			mu.Unlock()
			return it, nil
		})
	})
	// Run after a failed wait, before the member's own cleanup waits for
	// the agent: a Stop with no Next running reaches it.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, it := range iters {
			it.MessagesContext.Stop()
		}
	})
	testutil.Eventually(t, hangGuard, "the agent reading purges", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, it := range iters {
			it.mu.Lock()
			called := it.called
			it.mu.Unlock()
			if called {
				return true
			}
		}
		return false
	})
	stopped := make(chan struct{})
	go func() { m.stop(); close(stopped) }()
	testutil.Eventually(t, hangGuard, "the agent stopped", func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	})
	mu.Lock()
	defer mu.Unlock()
	for i, it := range iters {
		if it.lost {
			t.Errorf("purge iterator %d was stopped while its Next ran", i)
		}
	}
}
