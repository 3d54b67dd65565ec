package auth_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge/limitsync"
	"github.com/talowa/wedge/wasm/host"
)

// TestPOPSpeaksOnlyForItself: a POP's credential publishes purge
// acknowledgements and rate-limit batches on its own name's subjects
// (which the issuer and the other POPs take as the sender's), region
// batches in its own region only, and the server refuses it on another
// POP's or another region's. The issuer's credential (rollout)
// hears the honest acknowledgement.
func TestPOPSpeaksOnlyForItself(t *testing.T) {
	url, m, _ := secureServer(t)
	ca := filepath.Join(m.Dir, auth.CAFile)
	issuer, _ := dial(t, url, controlplane.Security{Creds: credsFile(t, m, auth.Rollout, ""), CA: ca})
	acks, err := issuer.SubscribeSync(manifest.PurgeAckSubject("0123abcd", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if err := issuer.Flush(); err != nil {
		t.Fatal(err)
	}
	nc, errs := dial(t, url, controlplane.Security{Creds: credsFile(t, m, auth.POP, "pop-a"), CA: ca})
	publish := func(subject string) func(context.Context) error {
		return func(context.Context) error {
			if err := nc.Publish(subject, []byte("{}")); err != nil {
				return err
			}
			return nc.Flush()
		}
	}
	for _, subject := range []string{
		manifest.PurgeAckSubject("0123abcd", "pop-a"),
		limitsync.Subject(host.ScopeGlobal, popRegion, "pop-a"),
		limitsync.Subject(host.ScopeRegion, popRegion, "pop-a"),
	} {
		allowed(t, nc, "publish on "+subject, publish(subject))
	}
	if msg, err := acks.NextMsg(30 * time.Second); err != nil || msg.Subject != manifest.PurgeAckSubject("0123abcd", "pop-a") {
		t.Fatalf("the issuer's acknowledgement: %v, %v", msg, err)
	}
	for _, subject := range []string{
		manifest.PurgeAckSubject("0123abcd", "pop-b"),
		limitsync.Subject(host.ScopeGlobal, popRegion, "pop-b"),
		limitsync.Subject(host.ScopeRegion, popRegion, "pop-b"),
		limitsync.Subject(host.ScopeRegion, "us", "pop-a"), // another region's limits
		"wedge.ratelimit.global",                           // the subjects before names were in them
		"wedge.purge.ack.0123abcd",
	} {
		// The publish itself returns nil (NATS drops it and says so
		// asynchronously): refused waits for the violation.
		refused(t, "publish on "+subject, errs, func(ctx context.Context) error {
			publish(subject)(ctx)
			<-ctx.Done()
			return ctx.Err()
		})
	}
	if msg, err := acks.NextMsg(10 * time.Millisecond); err == nil {
		t.Fatalf("the issuer heard %s", msg.Subject)
	}
}
