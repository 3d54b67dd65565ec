package fleet_test

import (
	"testing"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge/fleet"
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
