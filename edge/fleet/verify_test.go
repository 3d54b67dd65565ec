package fleet_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// An agent needs the controller's keys, or Unsigned said outright; with
// Unsigned a desired state nobody signed applies (a control plane that
// does not sign yet), which without it is refused.
func TestUnsignedDesired(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	cfg, err := edge.ParseConfig([]byte(f.yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	if _, err := fleet.New(n, fleet.Options{URL: "nats://127.0.0.1:1", Region: "eu-test", POP: "pop1", Trust: f.trust}); err == nil ||
		!strings.Contains(err.Error(), "no control keys") {
		t.Fatalf("an agent with no control keys: %v", err)
	}

	f.startConnectedPOPWith(fleet.Options{Unsigned: true})
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	b, _ := json.Marshal(manifest.Desired{Plugins: map[string]manifest.Release{"stamp": {Artifact: v2}}})
	rev, err := f.stores.Desired.Put(context.Background(), manifest.RegionKey("eu-test"), b)
	if err != nil {
		t.Fatal(err)
	}
	f.status("the unsigned state applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	f.waitStamp("v2")
	// A delete is followed too: nothing is desired, the config file's
	// version serves again.
	if err := f.stores.Desired.Delete(context.Background(), manifest.RegionKey("eu-test")); err != nil {
		t.Fatal(err)
	}
	f.waitStamp("v1")
}

// A refused record is reported apart from what the POP runs: Revision
// and Applied stay those of the record it accepted (else a bucket write
// would NACK every rollout), and the refusal's text is bounded, so a
// record with a huge unverified key ID cannot make the report too big
// to write (the POP would look gone).
func TestRefusedReportedApart(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	f.startConnectedPOP()
	ctx := context.Background()
	rev := f.setDesired(manifest.Release{Artifact: f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))})
	f.status("v2 applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	// '<' is 6 bytes in a report's JSON: quoted whole, this key ID made
	// it larger than a message may be.
	huge := []byte(`{"plugins":{},"sig":"AAAA","key_id":"` + strings.Repeat("<", 200<<10) + `"}`)
	bad, err := f.stores.Desired.Put(ctx, manifest.RegionKey("eu-test"), huge)
	if err != nil {
		t.Fatal(err)
	}
	st := f.status("the refusal reported", func(s manifest.Status) bool { return len(s.Refused) == 1 && s.Refused[0].Revision == bad })
	if r := st.Refused[0]; r.Key != manifest.RegionKey("eu-test") || r.Reason != "unknown_key" || len(r.Error) > manifest.MaxStatusError ||
		st.Revision != rev || !st.Applied || st.Error != "" {
		t.Fatalf("after a refused record: revision %d (want %d) applied %v error %q refused %+v", st.Revision, rev, st.Applied, st.Error, st.Refused)
	}
	f.waitStamp("v2")
	// A good record ends the refusal.
	rev = f.setDesired(manifest.Release{})
	f.status("the empty state applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied && len(s.Refused) == 0 })
}

// A POP with no replay floor of its own (no disk state) takes it from the
// key's history: an old signed record written again as the latest is
// refused as stale, not applied as the first record it sees.
func TestColdPOPRefusesReplay(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	region := manifest.RegionKey("eu-test")
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	old, err := manifest.SignDesired(f.control, region, time.Now().Add(-time.Hour),
		&manifest.Desired{Plugins: map[string]manifest.Release{"stamp": {Artifact: v2}}})
	if err != nil {
		t.Fatal(err)
	}
	f.putSigned(region, manifest.Desired{})
	replay, err := f.stores.Desired.Put(context.Background(), region, old)
	if err != nil {
		t.Fatal(err)
	}
	f.startConnectedPOP()
	st := f.status("the replay refused", func(s manifest.Status) bool { return len(s.Refused) == 1 })
	if r := st.Refused[0]; r.Revision != replay || r.Reason != "stale" {
		t.Fatalf("refused %+v, want revision %d as stale", r, replay)
	}
	if got := f.stamp(""); got != "v1" {
		t.Fatalf("a POP with no state ran %q, want the config file's v1", got)
	}
}
