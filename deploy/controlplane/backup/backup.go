// Package backup copies a Wedge control plane to a directory of plain
// files and puts it back: every JetStream stream of the account (each KV
// bucket, the module object store, the audit and purge streams, and any
// stream added later), with a manifest that holds a SHA-256 and a count
// per file. `wedgectl control backup DIR` and `wedgectl control restore
// DIR` run it; README.md, "Backup and restore", is the operator's guide.
//
// A backup directory:
//
//	backup.json                      the Manifest: streams, their configs, counts, files and digests
//	backup.json.sha256               backup.json's SHA-256, as sha256sum writes it
//	streams/<STREAM>.jsonl           a KV bucket's or stream's messages, one JSON object a line, oldest first
//	objects/<BUCKET>.jsonl           an object store's objects (name, size, digest, metadata, file)
//	objects/<BUCKET>/<NAME>          an object's bytes, as stored
//
// # Why
//
// Plain files, not JetStream's own snapshot format, so that an operator
// can read (and grep, and diff) what a backup holds, and a module is the
// .wasm file it was. The manifest is written last: a directory without one
// is a backup that did not finish.
//
// A backup is consistent in the order the records refer to each other:
// rollouts and status are read first, then desired state (a rollout's
// step writes it just before the record that names it), then the audit,
// purge and revocation streams (and any other), then the signed artifacts,
// then the modules. Each stream is read up to its last sequence when its
// reading began (a KV key rewritten meanwhile at the value that replaced
// it), so a record in the backup was written before the reading of
// anything it names began: every artifact a desired state names, and every
// module an artifact names, is in the backup too. A stream whose limits
// drop its oldest messages (the purge stream keeps 24 hours and 100,000
// entries) goes on dropping them while it is read: it is read from the
// oldest message still there when the reading reaches it, so its backup
// may lack a few that were there when the backup began. Backup checks what
// it wrote as Restore will (Verify) before it writes the manifest, so a
// backup it reports done restores. A stream's reading that stops getting
// messages the stream holds tries new consumers, then fails with how far
// it got (see nextWait): a backup ends, done or with an error.
//
// Restore checks the whole backup (every file's size and SHA-256, every
// line, each module's bytes against its name) before it writes anything,
// and writes only into a control plane whose streams are absent or empty:
// restoring over live state would mix two histories, and the POPs would
// follow whichever was written last. It creates the streams the control
// plane lacks before it deletes or fills anything, each with as many
// replicas as the control plane keeps of its own (controlplane.Replicas),
// whatever the backed-up one kept. A restore that fails part way leaves a
// control plane that a forced restore of the same backup replaces. What
// changes and what does not:
//
//   - KV keys and values, in history order, are identical; their revisions
//     are new. A restored bucket's revisions start after the last one the
//     old server gave out, so nothing that compares revisions (a POP, a
//     rollout's compare-and-set) takes the restored values for older ones;
//     the POPs' agent (edge/fleet) decides by content anyway.
//   - A plain stream (the audit, purges) keeps its sequence numbers, which
//     are its entries' IDs, and its bytes; the timestamps the server keeps
//     are the restore's (each audit entry carries its own time).
//   - Objects keep their names, bytes, digests and metadata.
//   - The status bucket comes back empty, with its config: its values are
//     the POPs' reports, which the controller and the collector judge
//     fresh by the time the server stored them, a restore's for restored
//     ones, so POPs that are gone would count as reporting. Live POPs
//     write theirs again within a second.
//
// The status bucket is created last: a POP attaches to the control plane
// only once every bucket it reads exists (controlplane.OpenEdge), so no POP
// sees a half-restored desired state. POPs attached to a control plane
// that a forced restore replaces may go on watching the streams it
// deleted: restart them, or have them reconnect.
package backup

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// Format names the layout a backup.json describes.
const Format = "wedge-backup/1"

// ManifestFile is the manifest's name in a backup directory.
const ManifestFile = "backup.json"

// ManifestSum is the SHA-256 of ManifestFile, as sha256sum writes it
// (`sha256sum -c backup.json.sha256` checks it too).
const ManifestSum = ManifestFile + ".sha256"

// Kinds of stream in a backup.
const (
	KindKV      = "kv"      // a KV bucket: messages, restored with new revisions
	KindStream  = "stream"  // a plain stream: messages, restored with their sequences
	KindObjects = "objects" // an object store: objects, restored by name
)

// Manifest describes a backup: what it holds and how to check it.
type Manifest struct {
	Format  string    `json:"format"`
	Taken   time.Time `json:"taken"`
	Streams []Stream  `json:"streams"`
	// Files are every file of the backup but the manifest.
	Files []File `json:"files"`
}

// Stream is one stream of the backup.
type Stream struct {
	Name   string                 `json:"name"`
	Kind   string                 `json:"kind"`
	Config jetstream.StreamConfig `json:"config"`
	// File is the stream's messages, or the object store's index.
	File string `json:"file"`
	// Count is the number of lines of File: messages, or objects.
	Count int `json:"count"`
	// FirstSeq and LastSeq are the stream's first and last sequence when
	// the backup read it.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// File is one file of the backup, by its slash-separated path in the
// directory.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Message is one line of a stream's file. Data is the payload when it is
// compact JSON (as every Wedge record is), so that it reads as written;
// any other payload is in DataB64.
type Message struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Subject string          `json:"subject"`
	Header  nats.Header     `json:"header,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	DataB64 []byte          `json:"data_b64,omitempty"`
}

// payload is the message's data as published.
func (m *Message) payload() []byte {
	if m.Data != nil {
		return m.Data
	}
	return m.DataB64
}

// Object is one line of an object store's index.
type Object struct {
	jetstream.ObjectMeta
	File     string    `json:"file"`
	Size     uint64    `json:"size"`
	Digest   string    `json:"digest"` // the object store's: SHA-256=<base64url>
	Modified time.Time `json:"modified"`
}

// kindOf tells a stream's kind by the names JetStream gives a KV bucket's
// and an object store's streams.
func kindOf(stream string) string {
	switch {
	case strings.HasPrefix(stream, "KV_"):
		return KindKV
	case strings.HasPrefix(stream, "OBJ_"):
		return KindObjects
	}
	return KindStream
}

// readOrder ranks a stream for backup: referrers before what they refer
// to (see the package doc): a rollout's record names the desired state
// its step wrote just before, which names artifacts, which name modules.
// Restore writes in the reverse order.
func readOrder(stream string) int {
	switch stream {
	case "KV_" + manifest.BucketRollouts, "KV_" + manifest.BucketStatus:
		return 0
	case "KV_" + manifest.BucketDesired:
		return 1
	case "KV_" + manifest.BucketArtifacts:
		return 2
	}
	if kindOf(stream) == KindObjects {
		return 3
	}
	return 1
}

// Backup writes every stream of the control plane nc reaches to dir,
// which must be empty or not exist, and returns the manifest it wrote.
func Backup(ctx context.Context, nc *nats.Conn, dir string) (*Manifest, error) {
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var names []string
	lister := js.StreamNames(ctx)
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("backup: list streams: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("backup: the control plane holds no streams: nothing to back up")
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(readOrder(a), readOrder(b)), cmp.Compare(a, b))
	})
	w := &writer{dir: dir}
	m := &Manifest{Format: Format, Taken: time.Now().UTC()}
	for _, name := range names {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("backup: stream %s: %w", name, err)
		}
		var s *Stream
		if kindOf(name) == KindObjects {
			s, err = w.objects(ctx, js, st)
		} else {
			s, err = w.messages(ctx, nc, st)
		}
		if err != nil {
			return nil, fmt.Errorf("backup: stream %s: %w", name, err)
		}
		m.Streams = append(m.Streams, *s)
	}
	m.Files = w.files
	var b bytes.Buffer
	enc := jsonLines(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	// Checked as a restore will check it, so that a backup reported done
	// restores: a stream's limits may have removed a message between
	// two the reading passed on, a gap a plain stream cannot be restored
	// with.
	if _, err := check(dir, b.Bytes()); err != nil {
		return nil, fmt.Errorf("backup: what was read does not make a backup that restores, so %s has no %s: %w", dir, ManifestFile, err)
	}
	// Its digest beside it: the manifest holds the others' and the
	// streams' configs, which nothing else checks.
	sum := sha256.Sum256(b.Bytes())
	if err := os.WriteFile(filepath.Join(dir, ManifestSum), []byte(hex.EncodeToString(sum[:])+"  "+ManifestFile+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	// Written under another name and renamed: a backup.json is whole.
	tmp := filepath.Join(dir, ManifestFile+".tmp")
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestFile)); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// emptyDir creates dir, or checks that it has nothing in it: a backup is
// never written over another.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("backup: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("backup: %s is not empty: a backup goes into a new directory", dir)
	}
	return nil
}

// writer writes the files of a backup and records their digests.
type writer struct {
	dir   string
	files []File
}

// file is one file being written: its bytes go through the hash.
type file struct {
	File
	f   *os.File
	buf *bufio.Writer
	sum hash.Hash
}

func (w *writer) create(path string) (*file, error) {
	full := filepath.Join(w.dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	fl := &file{File: File{Path: path}, f: f, sum: sha256.New()}
	fl.buf = bufio.NewWriterSize(io.MultiWriter(f, fl.sum), 64<<10)
	return fl, nil
}

func (fl *file) Write(p []byte) (int, error) {
	fl.Size += int64(len(p))
	return fl.buf.Write(p)
}

// reset empties the file, to be written again from its start.
func (fl *file) reset() error {
	fl.buf.Reset(io.MultiWriter(fl.f, fl.sum))
	fl.sum.Reset()
	fl.Size = 0
	if err := fl.f.Truncate(0); err != nil {
		return err
	}
	_, err := fl.f.Seek(0, io.SeekStart)
	return err
}

// close finishes the file and records it.
func (w *writer) close(fl *file) error {
	err := errors.Join(fl.buf.Flush(), fl.f.Sync(), fl.f.Close())
	if err != nil {
		return err
	}
	fl.SHA256 = hex.EncodeToString(fl.sum.Sum(nil))
	w.files = append(w.files, fl.File)
	return nil
}

// jsonLines encodes JSON values one after the other, leaving <, > and &
// as they are, so that a subject's ">" reads as written.
func jsonLines(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// messages writes a KV bucket's or a stream's messages, oldest first, as
// the stream stood when its reading began (readStream), from the oldest
// still there when the reading reached it.
func (w *writer) messages(ctx context.Context, nc *nats.Conn, st jetstream.Stream) (*Stream, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	name := info.Config.Name
	s := &Stream{Name: name, Kind: kindOf(name), Config: info.Config, File: "streams/" + name + ".jsonl"}
	fl, err := w.create(s.File)
	if err != nil {
		return nil, err
	}
	defer fl.f.Close()
	enc := jsonLines(fl)
	s.LastSeq, err = readStream(ctx, nc, st, s.Kind == KindKV, func(m jetstream.Msg, meta *jetstream.MsgMetadata) error {
		seq := meta.Sequence.Stream
		// A plain stream is restored with its sequences, so without gaps.
		// A gap after what was read, with what was read gone from the
		// stream, means that the stream's limits overtook the reading:
		// the backup of the stream begins again from here.
		if s.Kind == KindStream && s.Count > 0 && seq != s.FirstSeq+uint64(s.Count) {
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			if info.State.FirstSeq > s.FirstSeq+uint64(s.Count)-1 {
				if err := fl.reset(); err != nil {
					return err
				}
				s.Count = 0
			}
		}
		if s.Count == 0 {
			s.FirstSeq = seq
		}
		s.Count++
		line := Message{Seq: seq, Time: meta.Timestamp.UTC(), Subject: m.Subject(), Header: m.Headers()}
		if data := m.Data(); compactJSON(data) {
			line.Data = data
		} else {
			line.DataB64 = data
		}
		return enc.Encode(&line)
	})
	if err != nil {
		return nil, err
	}
	if s.Count == 0 {
		s.FirstSeq = s.LastSeq + 1
	}
	return s, w.close(fl)
}

// Bounds of a stream's reading. A consumer can be created and yet
// deliver nothing: on a cluster, the pull request of an R1 consumer whose
// leader a stream follower has just become can be lost (seen on a freshly
// restored cluster under load), and nats.go's ordered consumer waits for
// it as long as its heartbeats say it lives. So a reading that waits
// nextWait for a message the stream has opens a new consumer from where it
// got, and gives up after maxStalls such waits in a row; and a consumer
// that cannot be made again fails after resetAttempts tries, where
// nats.go's default is to try for ever.
var (
	nextWait      = 5 * time.Second
	maxStalls     = 6
	resetAttempts = 3
)

// readStream calls fn for each message of st as it stood when the call
// began, oldest first, but for those its limits (an age, a count) remove
// before the reading reaches them, and returns the last sequence of the
// stream (the highest it saw). It reads with an ordered consumer, which
// skips the gaps of a KV stream (a key rewritten leaves one) instead of
// asking for every sequence.
//
// The stream as it stood: up to its last sequence then. For a KV bucket
// (kv), whose history limit removes a key's message when the key is
// written again, a key that was live then but whose message went before
// the reading reached it is read at the value that replaced it, its first
// one after: the stream goes on being written while it is read, and a
// backup must not lose a key for it.
//
// A reading that stalls (see nextWait) ends with an error that says how
// far it got, never a hang.
func readStream(ctx context.Context, nc *nats.Conn, st jetstream.Stream, kv bool, fn func(jetstream.Msg, *jetstream.MsgMetadata) error) (last uint64, err error) {
	var opts []jetstream.StreamInfoOpt
	if kv {
		opts = append(opts, jetstream.WithSubjectFilter(">"))
	}
	info, err := st.Info(ctx, opts...)
	if err != nil {
		return 0, err
	}
	name := info.Config.Name
	cutoff := info.State.LastSeq
	if info.State.Msgs == 0 {
		return cutoff, nil
	}
	// A live key's messages at the cutoff not read yet. A key is read at
	// its live value once all of them are: one read at an older one only
	// (history kept) may have lost its live one to a write since.
	missing := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		missing[subj] = n
	}
	var seen uint64
	it, err := readFrom(ctx, st, seen)
	if err != nil {
		return 0, err
	}
	defer func() { it.Stop() }()
	for stalls := 0; ; {
		next, cancel := context.WithTimeout(ctx, nextWait)
		m, err := it.Next(jetstream.NextContext(next))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			more, err := hasAfter(ctx, nc, name, seen)
			if !more || err != nil {
				return max(cutoff, seen), err
			}
			if stalls++; stalls == maxStalls {
				return 0, fmt.Errorf("read: stalled: no message for %v after sequence %d, though the stream has more (up to %d to read)",
					time.Duration(maxStalls)*nextWait, seen, cutoff)
			}
			it.Stop()
			if it, err = readFrom(ctx, st, seen); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read after sequence %d of up to %d: %w", seen, cutoff, err)
		}
		stalls = 0
		meta, err := m.Metadata()
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		seen = meta.Sequence.Stream
		left, live := missing[m.Subject()]
		if seen <= cutoff || live {
			if err := fn(m, meta); err != nil {
				return 0, err
			}
		}
		if left > 1 && seen <= cutoff {
			missing[m.Subject()] = left - 1
		} else {
			delete(missing, m.Subject())
		}
		if seen >= cutoff && len(missing) == 0 {
			return max(cutoff, seen), nil
		}
		if meta.NumPending == 0 {
			if more, err := hasAfter(ctx, nc, name, seen); !more || err != nil {
				return max(cutoff, seen), err
			}
		}
	}
}

// readFrom reads st with a new ordered consumer from the first message
// after sequence seen.
func readFrom(ctx context.Context, st jetstream.Stream, seen uint64) (jetstream.MessagesContext, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, MaxResetAttempts: resetAttempts}
	if seen > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = seen + 1
	}
	c, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c.Messages()
}

// hasAfter asks the stream's leader whether it holds a message after
// sequence seen. Neither the consumer's pending count (an estimate) nor
// the stream's last sequence (whose message may have been deleted or have
// expired) tells; and a direct get, which any replica answers, may come
// from one that lags.
func hasAfter(ctx context.Context, nc *nats.Conn, stream string, seen uint64) (bool, error) {
	req, err := json.Marshal(map[string]any{"seq": seen + 1, "next_by_subj": ">"})
	if err != nil {
		return false, err
	}
	// Bounded as jetstream bounds its own requests when ctx is not: a
	// stream without a leader does not answer.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return false, fmt.Errorf("look for a message after sequence %d: %w", seen, err)
	}
	var r struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return false, fmt.Errorf("look for a message after sequence %d: %w", seen, err)
	}
	switch {
	case r.Error == nil:
		return true, nil
	case r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return false, nil
	}
	return false, fmt.Errorf("look for a message after sequence %d: %w", seen, r.Error)
}

// compactJSON reports whether b is JSON that encoding/json writes back
// byte for byte as a json.RawMessage (it compacts what it writes).
func compactJSON(b []byte) bool {
	if len(b) == 0 || !json.Valid(b) {
		return false
	}
	var c bytes.Buffer
	return json.Compact(&c, b) == nil && bytes.Equal(c.Bytes(), b)
}

// objects writes an object store's objects, each to a file of its own,
// and their index.
func (w *writer) objects(ctx context.Context, js jetstream.JetStream, st jetstream.Stream) (*Stream, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	name := info.Config.Name
	bucket := strings.TrimPrefix(name, "OBJ_")
	s := &Stream{Name: name, Kind: KindObjects, Config: info.Config, File: "objects/" + bucket + ".jsonl",
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}
	store, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, err
	}
	infos, err := store.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, err
	}
	slices.SortFunc(infos, func(a, b *jetstream.ObjectInfo) int { return cmp.Compare(a.Name, b.Name) })
	index, err := w.create(s.File)
	if err != nil {
		return nil, err
	}
	defer index.f.Close()
	enc := jsonLines(index)
	for _, oi := range infos {
		o := Object{ObjectMeta: oi.ObjectMeta, File: "objects/" + bucket + "/" + objectFile(oi.Name),
			Size: oi.Size, Digest: oi.Digest, Modified: oi.ModTime.UTC()}
		if err := w.object(ctx, store, &o); err != nil {
			return nil, fmt.Errorf("object %s: %w", oi.Name, err)
		}
		if err := enc.Encode(&o); err != nil {
			return nil, err
		}
		s.Count++
	}
	return s, w.close(index)
}

// object copies one object's bytes to its file; the object store's reader
// checks them against the object's digest as it ends.
func (w *writer) object(ctx context.Context, store jetstream.ObjectStore, o *Object) error {
	r, err := store.Get(ctx, o.Name)
	if err != nil {
		return err
	}
	defer r.Close()
	fl, err := w.create(o.File)
	if err != nil {
		return err
	}
	defer fl.f.Close()
	if _, err := io.Copy(fl, r); err != nil {
		return err
	}
	return w.close(fl)
}

// safeName is an object name that can be a file name as it is (a
// module's, a sha256 in hex, always is).
var safeName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// objectFile is the file name of an object: its name, or for a name that
// cannot be one, the sha256 of the name.
func objectFile(name string) string {
	if safeName.MatchString(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "name-sha256-" + hex.EncodeToString(sum[:])
}
