package fleet_test

import (
	"strings"
	"testing"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestRefusedStateAgainNACKsItsRevision: a desired state the POP refused
// once, written again at a later revision (a rollback restoring what the
// POP refused before the rollout), is NACKed at that revision with the
// same reason. The POP said nothing of it: its report kept the revision
// before, so a rollback waited out its ApplyTimeout for an answer and
// could not tell the refusal from a POP that is behind (ops review).
func TestRefusedStateAgainNACKsItsRevision(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	f.startConnectedPOP()
	good := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	// No route of the POP has that plugin.
	refused := manifest.Desired{Plugins: map[string]manifest.Release{"nope": {}}}
	rev := f.putSigned(manifest.RegionKey("eu-test"), refused)
	first := f.status("the NACK", func(s manifest.Status) bool { return s.Revision >= rev && !s.Applied })
	if !strings.Contains(first.Error, "no route has that plugin") {
		t.Fatalf("NACK error %q", first.Error)
	}
	rev = f.setDesired(manifest.Release{Artifact: good})
	f.status("v2 applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	rev = f.putSigned(manifest.RegionKey("eu-test"), refused)
	st := f.status("an answer to the refused state written again", func(s manifest.Status) bool { return s.Revision >= rev })
	if st.Applied || st.Error != first.Error || st.Running["stamp"].Version != "v2" {
		t.Fatalf("applied=%v error %q running %+v: want a NACK saying %q, v2 still served", st.Applied, st.Error, st.Running["stamp"], first.Error)
	}
	if nack, ok := f.applies("nack"), f.applies("ok"); nack != 2 || ok != 1 {
		t.Errorf("wedge_fleet_applies_total: nack %v ok %v, want 2 and 1", nack, ok)
	}
}
