package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// A POP that was down while the controller wrote a canary (B) and then
// rolled it back (C) comes back with its disk state, whose floor is the
// record before both (A). B, a superseded record, written again over C
// by a bucket writer without the controller's key, must be refused as a
// replay, as a POP with no disk state refuses it (its floor is the
// newest record of the key's history: TestColdPOPRefusesReplay). With
// the disk floor alone, the POP ran the rolled-back version.
func TestWarmPOPRefusesSupersededRecord(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	region := manifest.RegionKey("eu-test")
	dir := t.TempDir()
	f.startConnectedPOPWith(fleet.Options{Dir: dir})
	v1 := f.publish(f.key, "v1b", wasmtest.Build(t, guests+"v1"))
	rev := f.setDesired(manifest.Release{Artifact: v1}) // A: v1b, saved on disk
	f.status("A applied", func(s manifest.Status) bool {
		return s.Revision >= rev && s.Applied && s.Running["stamp"].Version == "v1b"
	})
	f.stop()

	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	b, err := manifest.SignDesired(f.control, region, time.Now(), &manifest.Desired{
		Plugins: map[string]manifest.Release{"stamp": {Artifact: v2}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.stores.Desired.Put(ctx, region, b); err != nil { // B: v2, bad
		t.Fatal(err)
	}
	f.setDesired(manifest.Release{Artifact: v1})        // C: rolled back to v1b
	replay, err := f.stores.Desired.Put(ctx, region, b) // B again, over C
	if err != nil {
		t.Fatal(err)
	}

	f.startConnectedPOPWith(fleet.Options{Dir: dir})
	st := f.status("the POP answered the latest revision", func(s manifest.Status) bool {
		return s.Revision >= replay || len(s.Refused) > 0
	})
	if got := st.Running["stamp"].Version; got == "v2" || len(st.Refused) == 0 {
		t.Fatalf("a POP back with its disk state took the superseded record B written again over C: runs %q, refused %+v (want v1b, B refused as stale)", got, st.Refused)
	}
}
