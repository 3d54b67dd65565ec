package backup

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
)

// natsProxy is a proxy on 127.0.0.1 to a NATS server that passes on what
// clients send but the PUB and HPUB (with their payloads) whose subject
// pass refuses; pass runs before each is passed on, so what the client
// sends next waits for it.
func natsProxy(t *testing.T, server string, pass func(subject string) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", strings.TrimPrefix(server, "nats://"))
			if err != nil {
				client.Close()
				continue
			}
			t.Cleanup(func() { client.Close(); upstream.Close() })
			go io.Copy(client, upstream)
			go filterPubs(upstream, client, pass)
		}
	}()
	return "nats://" + ln.Addr().String()
}

// filterPubs copies the client protocol from r to w but for the PUB and
// HPUB, and their payloads, whose subject pass refuses.
func filterPubs(w io.Writer, r io.Reader, pass func(subject string) bool) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		f := strings.Fields(string(line))
		var payload []byte
		if len(f) >= 3 && (f[0] == "PUB" || f[0] == "HPUB") {
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return
			}
			payload = make([]byte, n+2) // and its \r\n
			if _, err := io.ReadFull(br, payload); err != nil {
				return
			}
			if !pass(f[1]) {
				continue
			}
		}
		if _, err := w.Write(append(line, payload...)); err != nil {
			return
		}
	}
}

// pullDropper is a natsProxy that passes everything but the pull requests
// a client publishes: a consumer it reads through is created and answers,
// and yet delivers nothing, as a cluster's consumer did whose pull request
// was lost.
func pullDropper(t *testing.T, server string) string {
	return natsProxy(t, server, func(subject string) bool {
		return !strings.HasPrefix(subject, "$JS.API.CONSUMER.MSG.NEXT.")
	})
}

// TestBackupStallEnds: a stream whose consumer delivers nothing though
// the stream has messages ends the backup with an error that names the
// stream and says how far its reading got, after the reading tried new
// consumers, instead of waiting for ever.
func TestBackupStallEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	wait, stalls := nextWait, maxStalls
	nextWait, maxStalls = 50*time.Millisecond, 3
	t.Cleanup(func() { nextWait, maxStalls = wait, stalls })

	srv, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(pullDropper(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "STALLS", Subjects: []string{"stalls"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "stalls", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Backup(ctx, nc, filepath.Join(t.TempDir(), "backup"))
	if err == nil || ctx.Err() != nil {
		t.Fatalf("backup through a consumer that delivers nothing: %v (context: %v), want it stalled", err, ctx.Err())
	}
	for _, want := range []string{"stream STALLS", "stalled", "after sequence 0", "up to 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestBackupDeletedLast backs up a stream whose last message was deleted:
// its last sequence names a message the reading never gets, and the
// reading ends anyway.
func TestBackupDeletedLast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	_, nc := bare(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DELETED", Subjects: []string{"deleted"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "deleted", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	m, err := Backup(ctx, nc, filepath.Join(t.TempDir(), "backup"))
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Streams[0]; s.Count != 2 || s.FirstSeq != 1 {
		t.Fatalf("backed up %d messages from %d, want 2 from 1", s.Count, s.FirstSeq)
	}
}
