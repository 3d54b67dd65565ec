package backup

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
)

// Figures of README.md, "Backup and restore": a fleet's control plane with
// 50 plugin versions (synthetic modules of 2 MiB, the size of a Go plugin,
// pushed through the registry, each set as a region's desired state) and
// 10,000 audit entries, backed up and restored into an empty control plane,
// over TCP on 127.0.0.1 as wedgectl does. Run with
//
//	flock /tmp/wedge-bench.lock go test -run XXX -bench BackupRestore -benchtime 1x ./deploy/controlplane/backup/
const (
	figureVersions = 50
	figureAudit    = 10_000
	figureModule   = 2 << 20
)

func BenchmarkBackupRestore(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	srcSrv, src := controlplanetest.Start(b, embedded.Options{Dir: b.TempDir(), Listen: "127.0.0.1:0"})
	srcNC, err := nats.Connect(srcSrv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer srcNC.Close()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := registry.New(src)
	for i := range figureVersions {
		a, err := reg.Push(ctx, key, fmt.Sprintf("plugin-%d", i%5), fmt.Sprintf("v%d", i), module(fmt.Sprint(i), figureModule), "bench")
		if err != nil {
			b.Fatal(err)
		}
		d, _ := json.Marshal(manifest.Desired{Plugins: map[string]manifest.Release{a.Name: {Artifact: *a}}})
		if _, err := src.Desired.Put(ctx, manifest.RegionKey(fmt.Sprintf("region-%d", i%10)), d); err != nil {
			b.Fatal(err)
		}
	}
	for i := range figureAudit - figureVersions { // each push wrote one
		e, _ := json.Marshal(manifest.Audit{Time: time.Now().UTC(), Who: "bench", Action: "wave.apply",
			Rollout: fmt.Sprint("r", i/10), Plugin: "plugin-1", Version: "v1", Region: "eu-west", Why: "figures"})
		if _, err := src.JS.PublishAsync(manifest.SubjectAudit+".wave.apply", e, jetstream.WithMsgID(fmt.Sprint("a", i))); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-src.JS.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("audit entries not acknowledged")
	}
	var backupTook, restoreTook time.Duration
	b.ResetTimer()
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "backup")
		start := time.Now()
		m, err := Backup(ctx, srcNC, dir)
		if err != nil {
			b.Fatal(err)
		}
		backupTook += time.Since(start)
		srv, err := embedded.Start(embedded.Options{Dir: b.TempDir(), Listen: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		nc, err := nats.Connect(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := Restore(ctx, nc, dir, Options{}); err != nil {
			b.Fatal(err)
		}
		restoreTook += time.Since(start)
		nc.Close()
		srv.Shutdown()
		for _, s := range m.Streams {
			switch s.Name {
			case manifest.StreamAudit:
				if s.Count != figureAudit {
					b.Fatalf("%d audit entries backed up, want %d", s.Count, figureAudit)
				}
			case "OBJ_" + manifest.BucketModules:
				if s.Count != figureVersions {
					b.Fatalf("%d modules backed up, want %d", s.Count, figureVersions)
				}
			}
		}
	}
	b.ReportMetric(backupTook.Seconds()/float64(b.N), "backup-s/op")
	b.ReportMetric(restoreTook.Seconds()/float64(b.N), "restore-s/op")
	b.ReportAllocs()
}
