package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
)

// TestPurgeCommand runs wedgectl purge against a control plane on
// 127.0.0.1 with two POPs reporting, of which only one acknowledges
// purges: a purge in its region succeeds and names it, a fleet-wide one
// fails naming the other. The real POPs' side is deploy's
// TestPurgeEverywhere.
func TestPurgeCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	t.Setenv("WEDGE_WHO", "ops-test") // the --who default
	srv, st := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	for _, s := range []manifest.Status{{POP: "eu-1", Region: "eu"}, {POP: "us-1", Region: "us"}} {
		b, _ := json.Marshal(s)
		if _, err := st.Status.Put(ctx, manifest.StatusKey(s.Region, s.POP), b); err != nil {
			t.Fatal(err)
		}
	}
	// eu-1 acknowledges what reaches its region or the fleet; us-1 never
	// answers.
	nc := st.JS.Conn()
	records := make(chan *manifest.Purge, 4)
	for _, subj := range []string{manifest.SubjectPurgeFleet, manifest.PurgeRegionSubject("eu")} {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			p, err := manifest.ParsePurge(m.Data)
			if err != nil {
				t.Errorf("the CLI published a bad purge record: %v", err)
				return
			}
			records <- p
			ack, _ := json.Marshal(manifest.PurgeAck{ID: p.ID, POP: "eu-1", Region: "eu", Purged: 3})
			nc.Publish(manifest.PurgeAckSubject(p.ID, "eu-1"), ack)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"purge", "--tag", "product-42", "--region", "eu", "--timeout", hangGuard.String(), "--nats", srv.URL()}, &out); err != nil {
		t.Fatalf("purge in eu: %v\n%s", err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "(tag product-42, region eu): 1 of 1 POPs confirmed in ") || !strings.Contains(s, "eu-1  eu") || !strings.Contains(s, "purged 3") {
		t.Errorf("purge in eu printed %q", s)
	}

	// us-1 cannot confirm: the timeout is how long the command waits for
	// it, not a bound on eu-1.
	out.Reset()
	err := run(ctx, []string{"purge", "--url", "https://shop.example/p/42?x=1", "--timeout", "500ms", "--nats", srv.URL()}, &out)
	if err == nil || !strings.Contains(err.Error(), "not confirmed within 500ms by us-1") {
		t.Errorf("fleet-wide purge: %v, want us-1 not confirmed\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "(url https://shop.example/p/42?x=1, every region): ") {
		t.Errorf("fleet-wide purge printed %q", out.String())
	}
	got := []*manifest.Purge{<-records, <-records}
	if got[0].Tag != "product-42" || got[0].Region != "eu" || got[0].Who != "ops-test" ||
		got[1].URL != "https://shop.example/p/42?x=1" || got[1].Region != "" || time.Since(got[1].Time) > hangGuard {
		t.Errorf("purge records %+v", got)
	}
	// The records are in the stream, for POPs that were away.
	if info, err := st.Purges.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Errorf("purge stream: %+v, %v; want 2 records", info, err)
	}
}

// TestPurgeFlags refuses what is not one purge before connecting
// (nothing listens on the --nats address).
func TestPurgeFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--tag", "a", "--url", "https://x.example/"},
		{"--url", "/relative"},
		{"--url", "ftp://x.example/f"},
		{"--tag", "a", "--region", "EU West"},
		{"--tag", "a", "extra"},
	} {
		err := run(context.Background(), append([]string{"purge", "--nats", "nats://127.0.0.1:1"}, args...), &bytes.Buffer{})
		if err == nil || strings.Contains(err.Error(), "connect") {
			t.Errorf("purge %q: %v, want it refused before connecting", args, err)
		}
	}
}
