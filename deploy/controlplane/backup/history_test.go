package backup

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestBackupKVHistoryLiveValue: a bucket that keeps history
// (wedge_desired keeps 64, wedge_rollouts 16) and a key rewritten while
// the backup reads it, after the reading took the key's oldest message and
// before it reached the live one, which the history limit removes. The
// key is backed up at the value that replaced it. The reading once took
// the key as read at its oldest message, and the backup rolled it back.
func TestBackupKVHistoryLiveValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	_, nc := bare(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "hist", History: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte(`"v1"`)); err != nil {
		t.Fatal(err)
	}
	// More than an ordered consumer fetches ahead, between the key's two
	// values, so that the later one is not read before the rewrites.
	for i := range 3000 {
		if _, err := kv.Put(ctx, fmt.Sprint("f", i), []byte(`0`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(ctx, "k", []byte(`"v2"`)); err != nil { // live when the backup begins
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_hist")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	rewritten := false
	_, err = readStream(ctx, nc, st, true, func(m jetstream.Msg, meta *jetstream.MsgMetadata) error {
		if m.Subject() != "$KV.hist.k" {
			return nil
		}
		got = append(got, string(m.Data()))
		if !rewritten {
			// The key written twice while the reading is at its first
			// message, as a controller or a POP may.
			rewritten = true
			for _, v := range []string{`"v3"`, `"v4"`} {
				if _, err := kv.Put(ctx, "k", []byte(v)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if last := got[len(got)-1]; last == `"v1"` {
		t.Fatalf("the backup holds key k as %v: its last value is v1, older than v2, the value it had when the backup began", got)
	}
}
