package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
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

// The controller's key is rotated (README, "Rotating the controller's
// key"): the POPs drop the old key and trust the new one. A record the
// old key signed with an issue time far ahead (a key that leaked, or a
// controller whose clock jumped) must not outlive the rotation: once the
// POP no longer trusts the key that signed it, the new key's records,
// issued now, must apply. The POP kept the old record's issue time as its
// replay floor (on disk, across the restart that drops the key), refused
// every record of the new key as stale, and ran the old key's state from
// disk for good.
func TestRotationDropsOldKeysFloor(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	region := manifest.RegionKey("eu-test")
	newKey := f.control
	_, oldKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.control = oldKey // the POP trusts the old key
	dir := t.TempDir()
	f.startConnectedPOPWith(fleet.Options{Dir: dir})
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	b, err := manifest.SignDesired(oldKey, region, time.Now().AddDate(50, 0, 0),
		&manifest.Desired{Plugins: map[string]manifest.Release{"stamp": {Artifact: v2}}})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := f.stores.Desired.Put(context.Background(), region, b)
	if err != nil {
		t.Fatal(err)
	}
	f.status("the old key's record applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	f.stop()

	// Rotated: the POP trusts the new key only; the controller writes
	// with it.
	f.control = newKey
	rev = f.putSigned(region, manifest.Desired{}) // the config file's v1
	f.startConnectedPOPWith(fleet.Options{Dir: dir})
	st := f.status("the new key's record answered", func(s manifest.Status) bool { return s.Revision >= rev || len(s.Refused) > 0 })
	if got := st.Running["stamp"].Version; got != "v1" {
		t.Fatalf("after rotating the controller's key the POP runs %q from the old key's record, refusing the new key's: %+v", got, st.Refused)
	}
}
