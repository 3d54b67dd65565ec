// Restoring a backup into a control plane: verified first, every stream
// created before any is filled, then filled stream by stream, what is
// referred to before what refers to it; status last, without its values.

package backup

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
)

// Options tune a restore.
type Options struct {
	// Force deletes the backup's streams where the control plane holds
	// them with messages, instead of refusing.
	Force bool
	// Replicas is every stream's replica count; 0 is as the control plane
	// keeps its own (controlplane.Replicas: 3 on a cluster, 1 on a server
	// alone), whatever the backed-up control plane was.
	Replicas int
}

// ErrNotEmpty is returned (wrapped) by Restore into a control plane that
// holds messages in a stream of the backup, without Options.Force.
var ErrNotEmpty = errors.New("the control plane is not empty")

// statusStream is created last, and without its values (see the package
// doc).
const statusStream = "KV_" + manifest.BucketStatus

// Restore verifies the backup in dir (Verify: nothing is written if any
// check fails), then recreates each of its streams in the control plane nc
// reaches, with its config, and puts back its messages or objects. It
// refuses a control plane where a stream of the backup holds messages,
// unless o.Force; streams there that are empty (as `wedgectl control`
// leaves them on a new server) are replaced. A restore that fails part way
// leaves a control plane that a forced restore of the same backup replaces.
func Restore(ctx context.Context, nc *nats.Conn, dir string, o Options) (*Manifest, error) {
	m, err := Verify(dir)
	if err != nil {
		return nil, err
	}
	replicas := cmp.Or(o.Replicas, controlplane.Replicas(nc))
	// Refused here and not by the server, which would refuse it only
	// after the streams to replace are deleted.
	if replicas < 1 {
		return nil, fmt.Errorf("backup: restore: %d replicas: want 1 or more", replicas)
	}
	if replicas > 1 && nc.ConnectedClusterName() == "" {
		return nil, fmt.Errorf("backup: restore: %d replicas on a server alone, which keeps one copy", replicas)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	files := map[string]File{}
	for _, f := range m.Files {
		files[f.Path] = f
	}
	order := slices.Clone(m.Streams)
	rank := func(s Stream) int {
		if s.Name == statusStream {
			return -1
		}
		return readOrder(s.Name)
	}
	slices.SortStableFunc(order, func(a, b Stream) int { return cmp.Compare(rank(b), rank(a)) })
	// Found in full before anything is deleted: a refusal changes nothing.
	var present []Stream
	var busy []string
	for _, s := range slices.Backward(order) {
		st, err := js.Stream(ctx, s.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: restore: stream %s: %w", s.Name, err)
		}
		present = append(present, s)
		if n := st.CachedInfo().State.Msgs; n > 0 {
			busy = append(busy, fmt.Sprintf("%s holds %d messages", s.Name, n))
		}
	}
	if len(busy) > 0 && !o.Force {
		return nil, fmt.Errorf("backup: restore: %w (%s): restoring over live state would mix two histories, "+
			"and the POPs would follow whichever was written last; restore into an empty control plane, "+
			"or force it to delete these streams first (--force)", ErrNotEmpty, strings.Join(busy, ", "))
	}
	create := func(s Stream) error {
		cfg := s.Config
		// A placement names the old cluster, which a rebuilt one may not be.
		cfg.Placement = nil
		cfg.Replicas = replicas
		switch s.Kind {
		case KindKV:
			// Revisions carry on from the old server's last one.
			cfg.FirstSeq = s.LastSeq + 1
		case KindStream:
			cfg.FirstSeq = s.FirstSeq
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create stream %s: %w", s.Name, err)
		}
		return nil
	}
	// Every stream the control plane lacks is created before anything is
	// deleted or filled, so that one it refuses changes nothing; status
	// is not, so that no POP attaches before the rest is filled.
	for _, s := range order {
		if s.Name != statusStream && !slices.ContainsFunc(present, func(p Stream) bool { return p.Name == s.Name }) {
			if err := create(s); err != nil {
				return nil, fmt.Errorf("backup: restore: %w", err)
			}
		}
	}
	// A stream to replace is deleted before it is created again: the
	// server must first show it places that many replicas (more than the
	// cluster has servers, or with one of three down, it does not).
	if len(present) > 0 {
		if err := placeable(ctx, js, replicas); err != nil {
			return nil, fmt.Errorf("backup: restore: %w", err)
		}
	}
	// From here on a failure leaves a part of the backup restored.
	failed := func(err error) error {
		return fmt.Errorf("backup: restore: %w; the control plane is part restored: restore again with --force", err)
	}
	// Status first, so that POPs let go before the rest goes; then one
	// at a time, each created again at once: the server removes an
	// account's directory of streams once it has none, racing a create
	// that comes right after ("could not create storage directory").
	for _, s := range present {
		if err := js.DeleteStream(ctx, s.Name); err != nil {
			return nil, failed(fmt.Errorf("delete stream %s: %w", s.Name, err))
		}
		if s.Name != statusStream {
			if err := create(s); err != nil {
				return nil, failed(err)
			}
		}
	}
	for _, s := range order {
		switch {
		case s.Name == statusStream:
			// Its config only: its values are the POPs' reports, which
			// the controller and the collector judge fresh by the time
			// the server stored them, a restore's for a restored one.
			// Live POPs write theirs again within a second.
			err = create(s)
		case s.Kind == KindObjects:
			err = restoreObjects(ctx, js, dir, files, s)
		default:
			err = restoreMessages(ctx, js, dir, files[s.File], s)
		}
		if err != nil {
			return nil, failed(fmt.Errorf("stream %s: %w", s.Name, err))
		}
	}
	return m, nil
}

// placeable creates and deletes a stream of replicas replicas, which the
// server refuses if it cannot place them.
func placeable(ctx context.Context, js jetstream.JetStream, replicas int) error {
	const name = "WEDGE_RESTORE_CHECK"
	if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"wedge.restore.check"},
		Replicas: replicas, MaxMsgs: 1}); err != nil {
		return fmt.Errorf("%d replicas: %w (nothing was deleted)", replicas, err)
	}
	if err := js.DeleteStream(ctx, name); err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	return nil
}

// restoreMessages publishes a stream's messages again, in order.
func restoreMessages(ctx context.Context, js jetstream.JetStream, dir string, file File, s Stream) error {
	b, err := readFile(dir, file)
	if err != nil {
		return err
	}
	err = readMessages(bytes.NewReader(b), func(m *Message) error {
		msg := &nats.Msg{Subject: m.Subject, Header: replayHeader(m.Header), Data: m.payload()}
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.Seq, err)
		}
		if s.Kind == KindStream && ack.Sequence != m.Seq {
			return fmt.Errorf("message %d stored as %d", m.Seq, ack.Sequence)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Every message kept: a config whose limits (max_msgs, history,
	// max_age, ...) drop some would lose them quietly, the audit's
	// included.
	st, err := js.Stream(ctx, s.Name)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != uint64(s.Count) {
		return fmt.Errorf("holds %d messages after the restore, of the backup's %d: its config's limits dropped some", info.State.Msgs, s.Count)
	}
	return nil
}

// replayHeader is a message's header without what JetStream acts on when
// it is published, which held when it was first published and not now:
// the expected sequences (a KV create or update) refer to the old
// numbering, and a message ID is unique only within the stream's
// duplicate window, so a restore that publishes two old entries with the
// same ID in one window would drop the second. An entry's ID in the
// stream is its sequence, which a plain stream keeps.
func replayHeader(h nats.Header) nats.Header {
	if h == nil {
		return nil
	}
	out := nats.Header{}
	for k, v := range h {
		if k != jetstream.MsgIDHeader && !strings.HasPrefix(k, "Nats-Expected-") {
			out[k] = v
		}
	}
	return out
}

// restoreObjects puts an object store's objects back and checks that the
// store computed the digest each had.
func restoreObjects(ctx context.Context, js jetstream.JetStream, dir string, files map[string]File, s Stream) error {
	store, err := js.ObjectStore(ctx, strings.TrimPrefix(s.Name, "OBJ_"))
	if err != nil {
		return err
	}
	index, err := readFile(dir, files[s.File])
	if err != nil {
		return err
	}
	return readObjects(bytes.NewReader(index), func(o *Object) error {
		b, err := readFile(dir, files[o.File])
		if err != nil {
			return err
		}
		info, err := store.Put(ctx, o.ObjectMeta, bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("object %s: %w", o.Name, err)
		}
		if info.Digest != o.Digest {
			return fmt.Errorf("object %s: stored with digest %s, want %s", o.Name, info.Digest, o.Digest)
		}
		return nil
	})
}
