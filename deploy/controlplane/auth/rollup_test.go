package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/manifest"
)

// A POP may write its own status key only. A write to that key with the
// JetStream header Nats-Rollup: all must not delete the others (the
// buckets allowed rollups, and it purged the whole bucket, every other
// POP's report with it); nor may the revoke role's write of one
// revocation delete the others.
func TestRollupRefused(t *testing.T) {
	url, m, cs := secureServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other := manifest.StatusKey(popRegion, "pop-b")
	if _, err := cs.Status.Put(ctx, other, []byte(`{"pop":"pop-b","region":"eu"}`)); err != nil {
		t.Fatal(err)
	}
	nc, _ := dial(t, url, controlplane.Security{Creds: credsFile(t, m, auth.POP, "pop-a"), CA: filepath.Join(m.Dir, auth.CAFile)})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("$KV." + manifest.BucketStatus + "." + manifest.StatusKey(popRegion, "pop-a"))
	msg.Data = []byte(`{"pop":"pop-a","region":"eu"}`)
	msg.Header.Set("Nats-Rollup", "all")
	_, perr := js.PublishMsg(ctx, msg)
	if _, err := cs.Status.Get(ctx, other); errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("pop-a's write of its own status (Nats-Rollup: all; publish error %v) deleted pop-b's status", perr)
	} else if err != nil {
		t.Fatal(err)
	}

	// The revoke role: its write of one revocation empties the bucket.
	digest := manifest.Digest([]byte("revoked"))
	if _, err := cs.Revoked.Put(ctx, digest, []byte(`{"reason":"a signed revocation"}`)); err != nil {
		t.Fatal(err)
	}
	rnc, _ := dial(t, url, controlplane.Security{Creds: credsFile(t, m, auth.Revoke, ""), CA: filepath.Join(m.Dir, auth.CAFile)})
	rjs, _ := jetstream.New(rnc)
	msg = nats.NewMsg("$KV." + manifest.BucketRevoked + "." + manifest.Digest([]byte("other")))
	msg.Data = []byte(`{}`)
	msg.Header.Set("Nats-Rollup", "all")
	_, perr = rjs.PublishMsg(ctx, msg)
	if _, err := cs.Revoked.Get(ctx, digest); errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the revoke role's write of one revocation (Nats-Rollup: all; publish error %v) deleted another", perr)
	} else if err != nil {
		t.Fatal(err)
	}
}
