// Restoring a backup into a control plane: verified first, then stream by
// stream, what is referred to before what refers to it, status last.

package backup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// Options tune a restore.
type Options struct {
	// Force deletes the backup's streams where the control plane holds
	// them with messages, instead of refusing.
	Force bool
	// Replicas, if not 0, replaces every stream's replica count: a backup
	// of a three-server cluster restored into one server, or the reverse.
	Replicas int
}

// ErrNotEmpty is returned (wrapped) by Restore into a control plane that
// holds messages in a stream of the backup, without Options.Force.
var ErrNotEmpty = errors.New("the control plane is not empty")

// statusStream is restored last (see the package doc).
const statusStream = "KV_" + manifest.BucketStatus

// Restore verifies the backup in dir (Verify: nothing is written if any
// check fails), then recreates each of its streams in the control plane nc
// reaches, with its config, and puts back its messages or objects. It
// refuses a control plane where a stream of the backup holds messages,
// unless o.Force; streams there that are empty (as `wedgectl control`
// leaves them on a new server) are replaced.
func Restore(ctx context.Context, nc *nats.Conn, dir string, o Options) (*Manifest, error) {
	m, err := Verify(dir)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
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
	var present, busy []string
	for _, s := range slices.Backward(order) {
		st, err := js.Stream(ctx, s.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: restore: stream %s: %w", s.Name, err)
		}
		present = append(present, s.Name)
		if n := st.CachedInfo().State.Msgs; n > 0 {
			busy = append(busy, fmt.Sprintf("%s holds %d messages", s.Name, n))
		}
	}
	if len(busy) > 0 && !o.Force {
		return nil, fmt.Errorf("backup: restore: %w (%s): restoring over live state would mix two histories, "+
			"and the POPs would follow whichever was written last; restore into an empty control plane, "+
			"or force it to delete these streams first", ErrNotEmpty, strings.Join(busy, ", "))
	}
	// Status first, so that POPs let go before the rest goes.
	for _, name := range present {
		if err := js.DeleteStream(ctx, name); err != nil {
			return nil, fmt.Errorf("backup: restore: delete stream %s: %w", name, err)
		}
	}
	for _, s := range order {
		cfg := s.Config
		// A placement names the old cluster, which a rebuilt one may not be.
		cfg.Placement = nil
		if o.Replicas > 0 {
			cfg.Replicas = o.Replicas
		}
		switch s.Kind {
		case KindKV:
			// Revisions carry on from the old server's last one.
			cfg.FirstSeq = s.LastSeq + 1
		case KindStream:
			cfg.FirstSeq = s.FirstSeq
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("backup: restore: create stream %s: %w", s.Name, err)
		}
		if s.Kind == KindObjects {
			err = restoreObjects(ctx, js, dir, s)
		} else {
			err = restoreMessages(ctx, js, dir, s)
		}
		if err != nil {
			return nil, fmt.Errorf("backup: restore: stream %s: %w", s.Name, err)
		}
	}
	return m, nil
}

// restoreMessages publishes a stream's messages again, in order.
func restoreMessages(ctx context.Context, js jetstream.JetStream, dir string, s Stream) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(s.File)))
	if err != nil {
		return err
	}
	defer f.Close()
	return readMessages(f, func(m *Message) error {
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
func restoreObjects(ctx context.Context, js jetstream.JetStream, dir string, s Stream) error {
	store, err := js.ObjectStore(ctx, strings.TrimPrefix(s.Name, "OBJ_"))
	if err != nil {
		return err
	}
	index, err := os.Open(filepath.Join(dir, filepath.FromSlash(s.File)))
	if err != nil {
		return err
	}
	defer index.Close()
	return readObjects(index, func(o *Object) error {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(o.File)))
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := store.Put(ctx, o.ObjectMeta, f)
		if err != nil {
			return fmt.Errorf("object %s: %w", o.Name, err)
		}
		if info.Digest != o.Digest {
			return fmt.Errorf("object %s: stored with digest %s, want %s", o.Name, info.Digest, o.Digest)
		}
		return nil
	})
}
