package backup

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
)

// hangGuard bounds a test's control-plane calls: only a hang reaches it.
const hangGuard = 2 * time.Minute

// module is a synthetic Wasm module of size bytes: the header and one
// custom section named seed, filled, so each seed gives other bytes.
func module(seed string, size int) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00\x00")
	payload := size - len(b) - 5 - 1 - len(seed)
	n := uint32(1 + len(seed) + payload)
	for range 4 { // the section size, a 5-byte LEB128
		b = append(b, byte(n&0x7f)|0x80)
		n >>= 7
	}
	b = append(b, byte(n), byte(len(seed)))
	b = append(b, seed...)
	for i := range payload {
		b = append(b, byte(i*31+len(seed)))
	}
	return b
}

// fill gives a control plane something of every kind: modules pushed
// through the registry, desired state with history (a key written,
// deleted, created again, and one purged), a revocation, rollout
// records (some not compact JSON, or not JSON), status, audit entries (one with <, > and & in it, and two with
// the same message ID an hour apart) and a purge.
func fill(t testing.TB, ctx context.Context, s *controlplane.Stores) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(s)
	var arts []*manifest.Artifact
	for i := range 3 {
		a, err := reg.Push(ctx, key, "stamp", fmt.Sprintf("v%d", i+1), module(fmt.Sprint(i), 300<<10), "test")
		if err != nil {
			t.Fatal(err)
		}
		arts = append(arts, a)
	}
	if _, err := reg.Revoke(ctx, key, nil, arts[0].Digest, "test", "test"); err != nil {
		t.Fatal(err)
	}
	for i, a := range arts {
		d, _ := json.Marshal(manifest.Desired{Plugins: map[string]manifest.Release{"stamp": {Artifact: *a}}, Why: fmt.Sprint("step ", i)})
		if _, err := s.Desired.Put(ctx, manifest.RegionKey("eu-west"), d); err != nil {
			t.Fatal(err)
		}
	}
	pop := manifest.POPKey("eu-west-1")
	for _, step := range []func() error{
		func() error { _, err := s.Desired.Create(ctx, pop, []byte(`{"plugins":{}}`)); return err },
		func() error { return s.Desired.Delete(ctx, pop) },
		func() error { _, err := s.Desired.Create(ctx, pop, []byte(`{"plugins":{},"why":"again"}`)); return err },
		func() error {
			_, err := s.Desired.Put(ctx, manifest.RegionKey("gone"), []byte(`{"plugins":{}}`))
			return err
		},
		func() error { // the stream purge the controller may run (the bucket refuses a KV purge: no rollups)
			st, err := s.JS.Stream(ctx, "KV_"+manifest.BucketDesired)
			if err == nil {
				err = st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+manifest.BucketDesired+"."+manifest.RegionKey("gone")))
			}
			return err
		},
		func() error { _, err := s.Rollouts.Put(ctx, "r1", []byte(`{"id":"r1","state":"done"}`)); return err },
		// Values a restore must give back byte for byte, written as JSON
		// or base64 in the file: literal <, > and &, JSON that is not
		// compact, bytes that are not JSON.
		func() error {
			_, err := s.Rollouts.Put(ctx, "r2", []byte("{\"why\":\"a <b> & c \u2028\"}"))
			return err
		},
		func() error { _, err := s.Rollouts.Put(ctx, "r3", []byte("{\n  \"id\": \"r3\"\n}")); return err },
		func() error { _, err := s.Rollouts.Put(ctx, "r4", []byte{0, 0xff, '\n', '"'}); return err },
		func() error {
			_, err := s.Status.Put(ctx, manifest.StatusKey("eu-west", "eu-west-1"), []byte(`{"pop":"eu-west-1","region":"eu-west"}`))
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for i, why := range []string{"first", "a <b> & c", "third"} {
		b, _ := json.Marshal(manifest.Audit{Time: time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC), Who: "test", Action: "rollout.start", Why: why})
		// The first and last share an ID, as two entries an hour apart
		// may: both are kept, and both must come back.
		if _, err := s.JS.Publish(ctx, manifest.SubjectAudit+".rollout.start", b, jetstream.WithMsgID(fmt.Sprint("id-", i%2))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Audit.DeleteMsg(ctx, 2); err == nil {
		t.Fatal("the audit stream let an entry be deleted")
	}
	p, _ := json.Marshal(manifest.Purge{ID: "p1", Tag: "t", Time: time.Now().UTC(), Who: "test"})
	if _, err := s.JS.Publish(ctx, manifest.SubjectPurgeFleet, p); err != nil {
		t.Fatal(err)
	}
}

// snapshot is a control plane's content as a restore must keep it: per
// stream, each message's subject, header (what a restore keeps of it) and
// payload in order (and for a plain stream its sequence), or each object's
// name, digest and bytes.
func snapshot(t testing.TB, ctx context.Context, nc *nats.Conn) map[string][]string {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for name := range js.StreamNames(ctx).Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if kindOf(name) == KindObjects {
			store, err := js.ObjectStore(ctx, strings.TrimPrefix(name, "OBJ_"))
			if err != nil {
				t.Fatal(err)
			}
			infos, _ := store.List(ctx)
			for _, oi := range infos {
				b, err := store.GetBytes(ctx, oi.Name)
				if err != nil {
					t.Fatal(err)
				}
				out[name] = append(out[name], fmt.Sprintf("%s %s %d %x", oi.Name, oi.Digest, len(b), b[:64]))
			}
			slices.Sort(out[name]) // restored in name order
			continue
		}
		if st.CachedInfo().State.Msgs == 0 {
			out[name] = nil
			continue
		}
		_, err = readStream(ctx, nc, st, false, func(m jetstream.Msg, meta *jetstream.MsgMetadata) error {
			line := fmt.Sprintf("%s %v %q", m.Subject(), replayHeader(m.Headers()), m.Data())
			if kindOf(name) == KindStream {
				line = fmt.Sprint(meta.Sequence.Stream, " ", line)
			}
			out[name] = append(out[name], line)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// restored is what snapshot gives of a control plane want restores into:
// the same, but for the status bucket, which comes back empty.
func restored(want map[string][]string) map[string][]string {
	out := maps.Clone(want)
	out[statusStream] = nil
	return out
}

// bare starts a control plane with no streams, and connects to it.
func bare(t testing.TB) (*embedded.Server, *nats.Conn) {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc
}

func backedUp(t testing.TB, ctx context.Context) (dir string, src *controlplane.Stores) {
	t.Helper()
	_, src = controlplanetest.Start(t, embedded.Options{})
	fill(t, ctx, src)
	dir = filepath.Join(t.TempDir(), "backup")
	if _, err := Backup(ctx, src.JS.Conn(), dir); err != nil {
		t.Fatal(err)
	}
	return dir, src
}

// TestBackupRestore backs a control plane up and restores it into an
// empty one: every stream comes back with the same config and content
// (KV history included, a plain stream's sequences too), KV revisions
// start after the old server's last, and the restored control plane works
// as one: Ensure accepts it, a module fetches verified, a key deleted
// before the backup can be created again.
func TestBackupRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, src := backedUp(t, ctx)
	backed := snapshot(t, ctx, src.JS.Conn())
	if len(backed[statusStream]) == 0 {
		t.Fatal("nothing in the status bucket to back up")
	}
	want := restored(backed)

	_, nc := bare(t)
	// --replicas reaches the server: one server cannot keep three copies.
	if _, err := Restore(ctx, nc, dir, Options{Replicas: 3}); err == nil || len(snapshot(t, ctx, nc)) != 0 {
		t.Fatalf("restore with 3 replicas into one server: %v, want refused with nothing created", err)
	} else {
		t.Log(err)
	}
	m, err := Restore(ctx, nc, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, ctx, nc)
	if len(got) != len(want) || len(m.Streams) != len(want) {
		t.Fatalf("restored %d streams (manifest %d), want %d: %v", len(got), len(m.Streams), len(want), got)
	}
	for name, w := range want {
		if strings.Join(got[name], "\n") != strings.Join(w, "\n") {
			t.Errorf("stream %s restored as\n%s\nwant\n%s", name, strings.Join(got[name], "\n"), strings.Join(w, "\n"))
		}
	}
	for _, s := range m.Streams {
		if s.Count == 0 && s.Kind != KindObjects {
			t.Errorf("stream %s: nothing backed up", s.Name)
		}
	}

	js, _ := jetstream.New(nc)
	srcDesired, _ := src.JS.Stream(ctx, "KV_"+manifest.BucketDesired)
	oldLast := srcDesired.CachedInfo().State.LastSeq
	dst, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatalf("Ensure on the restored control plane: %v", err)
	}
	for _, name := range []string{manifest.StreamAudit, "KV_" + manifest.BucketDesired, "OBJ_" + manifest.BucketModules} {
		a, _ := src.JS.Stream(ctx, name)
		b, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		ac, bc := a.CachedInfo().Config, b.CachedInfo().Config
		ac.FirstSeq, bc.FirstSeq, ac.Metadata, bc.Metadata = 0, 0, nil, nil
		if fmt.Sprintf("%+v", ac) != fmt.Sprintf("%+v", bc) {
			t.Errorf("stream %s config restored as\n%+v\nwant\n%+v", name, bc, ac)
		}
	}
	e, err := dst.Desired.Get(ctx, manifest.RegionKey("eu-west"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Revision() <= oldLast {
		t.Errorf("restored revision %d, not after the old server's last %d", e.Revision(), oldLast)
	}
	var d manifest.Desired
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		t.Fatal(err)
	}
	a := d.Plugins["stamp"].Artifact
	if _, err := dst.Module(ctx, a.Digest, manifest.MaxModuleSize); err != nil {
		t.Errorf("module %s@%s of the restored desired state: %v", a.Name, a.Version, err)
	}
	if err := dst.Desired.Delete(ctx, manifest.POPKey("eu-west-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Desired.Create(ctx, manifest.POPKey("eu-west-1"), []byte(`{"plugins":{}}`)); err != nil {
		t.Errorf("create after delete on the restored bucket: %v", err)
	}
	if _, err := Restore(ctx, nc, dir, Options{}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("second restore into the same control plane: %v, want ErrNotEmpty", err)
	}
}

// TestRestoreRefusesCorrupt spoils a backup in each way a disk or a copy
// can, and checks that Restore refuses it with an error that says what is
// wrong, and writes nothing.
// reseal writes the SHA-256 of dir's manifest, edited by a test, to its
// ManifestSum.
func reseal(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if err := os.WriteFile(filepath.Join(dir, ManifestSum), []byte(hex.EncodeToString(sum[:])+"  "+ManifestFile+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRefusesCorrupt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, _ := backedUp(t, ctx)
	m, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	var module, audit string
	for _, f := range m.Files {
		switch {
		case strings.HasPrefix(f.Path, "objects/"+manifest.BucketModules+"/"):
			module = f.Path
		case f.Path == "streams/"+manifest.StreamAudit+".jsonl":
			audit = f.Path
		}
	}
	edit := func(path string, fn func([]byte) []byte) func(string) {
		return func(d string) {
			p := filepath.Join(d, filepath.FromSlash(path))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, fn(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// resealed edits the manifest as fn does and writes its SHA-256 again,
	// as someone who meant to change it would: the checks past the
	// manifest's own digest must hold.
	resealed := func(fn func([]byte) []byte) func(string) {
		return func(d string) {
			edit(ManifestFile, fn)(d)
			reseal(t, d)
		}
	}
	for _, c := range []struct {
		name  string
		spoil func(dir string)
		want  string
	}{
		// A stream's config is in the manifest alone: one byte of it
		// (the audit's max_msgs -1 made 1) kept 1 of 13 audit entries.
		{"manifest byte changed", edit(ManifestFile, func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"max_msgs": -1`, `"max_msgs":  1`, 1))
		}), "not the one " + ManifestSum + " holds"},
		{"no manifest digest", func(d string) { os.Remove(filepath.Join(d, ManifestSum)) }, ManifestSum},
		{"module byte flipped", edit(module, func(b []byte) []byte { b[100] ^= 1; return b }), "sha256"},
		{"module and its digest in the manifest changed", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, module))
			b[100] ^= 1
			os.WriteFile(filepath.Join(d, module), b, 0o644)
			sum := sha256.Sum256(b)
			resealed(func(m []byte) []byte {
				return []byte(strings.Replace(string(m), `"sha256": "`+path.Base(module), `"sha256": "`+hex.EncodeToString(sum[:]), 1))
			})(d)
		}, "digest"},
		{"audit truncated", edit(audit, func(b []byte) []byte { return b[:len(b)/2] }), "bytes, the manifest says"},
		{"module missing", func(d string) { os.Remove(filepath.Join(d, module)) }, "no such file"},
		{"no manifest", func(d string) { os.Remove(filepath.Join(d, ManifestFile)) }, "not a backup, or one that did not finish"},
		{"manifest truncated", resealed(func(b []byte) []byte { return b[:len(b)-20] }), "unexpected end of JSON"},
		{"count changed", resealed(func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"count": 3`, `"count": 4`, 1))
		}), "lines, the manifest counts"},
		{"path outside", resealed(func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"path": "streams/`, `"path": "../streams/`, 1))
		}), "want a relative path inside the backup"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spoilt := filepath.Join(t.TempDir(), "backup")
			if err := os.CopyFS(spoilt, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			c.spoil(spoilt)
			_, nc := bare(t)
			_, err := Restore(ctx, nc, spoilt, Options{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("restore: %v, want an error saying %q", err, c.want)
			}
			t.Log(err)
			js, _ := jetstream.New(nc)
			if names := snapshot(t, ctx, js.Conn()); len(names) != 0 {
				t.Fatalf("a refused restore created %d streams", len(names))
			}
		})
	}
	// Limits that drop messages, the manifest's digest made to match: the
	// restore stops at the first stream that lost some, and says so.
	spoilt := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(spoilt, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	resealed(func(b []byte) []byte {
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for i := range m.Streams {
			if m.Streams[i].Name == manifest.StreamAudit {
				m.Streams[i].Config.MaxMsgs = 1
			}
		}
		out, err := json.MarshalIndent(&m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return out
	})(spoilt)
	_, nc := bare(t)
	if _, err := Restore(ctx, nc, spoilt, Options{}); err == nil || !strings.Contains(err.Error(), "its config's limits dropped some") {
		t.Fatalf("restore with limits that drop messages: %v", err)
	}
}

// TestRestoreNonEmpty: a control plane whose buckets exist but are empty
// (`wedgectl control` created them) takes a restore; one with a value in
// a bucket is refused and left as it was, unless forced.
func TestRestoreNonEmpty(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, src := backedUp(t, ctx)
	want := restored(snapshot(t, ctx, src.JS.Conn()))

	_, empty := controlplanetest.Start(t, embedded.Options{})
	if _, err := Restore(ctx, empty.JS.Conn(), dir, Options{}); err != nil {
		t.Fatalf("restore into empty buckets: %v", err)
	}

	_, busy := controlplanetest.Start(t, embedded.Options{})
	if _, err := busy.Desired.Put(ctx, manifest.RegionKey("eu-west"), []byte(`{"plugins":{},"why":"live"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(ctx, busy.JS.Conn(), dir, Options{})
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "KV_wedge_desired holds 1 messages") {
		t.Fatalf("restore over live state: %v, want ErrNotEmpty naming the desired-state bucket", err)
	}
	live := func(what string) {
		t.Helper()
		if e, err := busy.Desired.Get(ctx, manifest.RegionKey("eu-west")); err != nil || !strings.Contains(string(e.Value()), "live") {
			t.Fatalf("%s changed the live value: %v", what, err)
		}
	}
	live("a refused restore")
	// Forced, but with more replicas than a server alone keeps: refused
	// before the live streams are deleted.
	if _, err := Restore(ctx, busy.JS.Conn(), dir, Options{Force: true, Replicas: 3}); err == nil || !strings.Contains(err.Error(), "server alone") {
		t.Fatalf("forced restore with 3 replicas into one server: %v, want refused", err)
	}
	live("a forced restore refused")
	if _, err := Restore(ctx, busy.JS.Conn(), dir, Options{Force: true}); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	got := snapshot(t, ctx, busy.JS.Conn())
	for name, w := range want {
		if strings.Join(got[name], "\n") != strings.Join(w, "\n") {
			t.Errorf("stream %s after a forced restore differs from the backup's", name)
		}
	}
}

// TestBackupLimitedStream backs up a stream that keeps its last 2000
// messages while it is written to every 200 us, as the purge stream's
// limits drop its oldest entries: the oldest may go between the backup's
// look at the stream and its reading, and each backup must still restore,
// from the first message it read, with its sequences.
func TestBackupLimitedStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	_, nc := bare(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LIMITED", Subjects: []string{"limited"}, MaxMsgs: 2000}); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := js.Publish(ctx, "limited", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	writeCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		// Bounded in count; stopped as soon as the backups are done.
		for n := 0; n < 1_000_000 && writeCtx.Err() == nil; n++ {
			if _, err := js.Publish(writeCtx, "limited", fmt.Appendf(nil, `{"w":%d}`, n)); err != nil && writeCtx.Err() == nil {
				done <- err
				return
			}
			select {
			case <-tick.C:
			case <-writeCtx.Done():
			}
		}
		done <- nil
	}()
	var dirs []string
	for range 5 {
		dir := filepath.Join(t.TempDir(), "backup")
		m, err := Backup(ctx, nc, dir)
		if err != nil {
			t.Fatal(err)
		}
		if s := m.Streams[0]; s.Count == 0 {
			t.Fatalf("backed up no messages, sequences %d-%d", s.FirstSeq, s.LastSeq)
		}
		dirs = append(dirs, dir)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		_, dst := bare(t)
		m, err := Restore(ctx, dst, dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(dst)
		st, err := js.Stream(ctx, "LIMITED")
		if err != nil {
			t.Fatal(err)
		}
		b := m.Streams[0]
		if got := st.CachedInfo().State; got.FirstSeq != b.FirstSeq || got.Msgs != uint64(b.Count) || got.LastSeq != got.FirstSeq+got.Msgs-1 {
			t.Fatalf("restored %d messages, sequences %d-%d; backed up %d from %d", got.Msgs, got.FirstSeq, got.LastSeq, b.Count, b.FirstSeq)
		}
	}
}

// TestBackupRefuses: a backup never goes over another, and an empty
// control plane has nothing to back up.
func TestBackupRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	dir, src := backedUp(t, ctx)
	if _, err := Backup(ctx, src.JS.Conn(), dir); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("backup into a used directory: %v", err)
	}
	_, nc := bare(t)
	if _, err := Backup(ctx, nc, t.TempDir()); err == nil || !strings.Contains(err.Error(), "nothing to back up") {
		t.Errorf("backup of an empty control plane: %v", err)
	}
}

// TestBackupUnderWrites backs up while 20 POPs rewrite their status as
// fast as they can (the status bucket keeps one value a key, so a rewrite
// removes the message the reading may not have reached yet): every key is
// in the backup, once, because each stream is read to its end.
func TestBackupUnderWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	_, s := controlplanetest.Start(t, embedded.Options{})
	const pops = 20
	write := func(i, n int) error {
		_, err := s.Status.Put(ctx, manifest.StatusKey("eu", fmt.Sprint("pop-", i)), fmt.Appendf(nil, `{"n":%d}`, n))
		return err
	}
	for i := range pops {
		if err := write(i, 0); err != nil {
			t.Fatal(err)
		}
	}
	writeCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		// Bounded in count; stopped as soon as the backups are done.
		for n := 1; n <= 1_000_000 && writeCtx.Err() == nil; n++ {
			if err := write(n%pops, n); err != nil && writeCtx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 5 {
		dir := filepath.Join(t.TempDir(), "backup")
		if _, err := Backup(ctx, s.JS.Conn(), dir); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, "streams", "KV_"+manifest.BucketStatus+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]int{}
		err = readMessages(f, func(m *Message) error { keys[m.Subject]++; return nil })
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != pops {
			t.Fatalf("%d of %d status keys in the backup: %v", len(keys), pops, keys)
		}
		for k, n := range keys {
			if n != 1 {
				t.Fatalf("status key %s %d times in the backup", k, n)
			}
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
