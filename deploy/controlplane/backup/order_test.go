package backup

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
)

// holdAt is a natsProxy that runs hook, once, before it passes on the
// first PUB or HPUB a client sends on subject: what the client does next
// waits for it.
func holdAt(t *testing.T, server, subject string, hook func()) string {
	var once sync.Once
	return natsProxy(t, server, func(s string) bool {
		if s == subject {
			once.Do(hook)
		}
		return true
	})
}

// TestBackupRolloutBeforeDesired: a controller's step writes a region's
// desired state, then the rollout record with the revision it wrote
// (rollout.Rollout.Revisions). Every revision a backed-up rollout names is
// in the backup's desired state. The backup read wedge_desired before
// wedge_rollouts, and a step between the two readings left the restored
// rollout saying its wave was applied where the restored desired state
// never had it. The controller's step runs here when the backup asks for
// wedge_rollouts' info.
func TestBackupRolloutBeforeDesired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	srv, s := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	region := manifest.RegionKey("eu-west")
	if _, err := s.Desired.Put(ctx, region, []byte(`{"plugins":{},"why":"wave 1"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rollouts.Put(ctx, "r1", []byte(`{"id":"r1","wave":0,"revisions":{"eu-west":1}}`)); err != nil {
		t.Fatal(err)
	}
	var wave2 uint64
	step := func() {
		rev, err := s.Desired.Put(ctx, region, []byte(`{"plugins":{},"why":"wave 2"}`))
		if err != nil {
			t.Error(err)
			return
		}
		wave2 = rev
		b, _ := json.Marshal(map[string]any{"id": "r1", "wave": 1, "revisions": map[string]uint64{"eu-west": rev}})
		if _, err := s.Rollouts.Put(ctx, "r1", b); err != nil {
			t.Error(err)
		}
	}
	nc, err := nats.Connect(holdAt(t, srv.URL(), "$JS.API.STREAM.INFO.KV_"+manifest.BucketRollouts, step))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	dir := filepath.Join(t.TempDir(), "backup")
	if _, err := Backup(ctx, nc, dir); err != nil {
		t.Fatal(err)
	}
	if wave2 == 0 {
		t.Fatal("the controller's step did not run during the backup")
	}
	lines := func(stream string) []Message {
		f, err := os.Open(filepath.Join(dir, "streams", stream+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out []Message
		if err := readMessages(f, func(m *Message) error { out = append(out, *m); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var rolloutWave2, desiredWave2 bool
	for _, m := range lines("KV_" + manifest.BucketRollouts) {
		rolloutWave2 = rolloutWave2 || m.Subject == "$KV."+manifest.BucketRollouts+".r1" && strings.Contains(string(m.payload()), `"wave":1`)
	}
	for _, m := range lines("KV_" + manifest.BucketDesired) {
		desiredWave2 = desiredWave2 || m.Seq == wave2
	}
	if rolloutWave2 && !desiredWave2 {
		t.Fatalf("the backup's rollout record names desired revision %d (wave 2), which the backup's desired state does not hold", wave2)
	}
}
