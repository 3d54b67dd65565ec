// `control revoke`: withdrawing one credential (deploy/controlplane/auth's
// revoke.go).

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/manifest"
)

// controlRevoke is `control revoke KEY|FILE`: the credential of user key
// KEY, or the one in the credentials file FILE, is withdrawn in the auth
// directory (every server started from it refuses it) and pushed to the
// running servers --nats names (a cluster's members all hear it through
// one; each leaf node needs its own URL), which close its connections and
// refuse new ones. The audit stream records it, written with the auth
// directory's controller credential.
func controlRevoke(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control revoke", flag.ContinueOnError)
	dir := fs.String("auth", "", "the control plane's auth `DIR` (by default control --embedded DIR keeps it in DIR/auth)")
	reason := fs.String("reason", "", "why, for the audit stream (required)")
	def := os.Getenv("WEDGE_NATS")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	urls := fs.String("nats", def, "the running servers' `URLs`, comma-separated: one member of a cluster, and each leaf node (default $WEDGE_NATS or nats://127.0.0.1:4222)")
	whoName := whoFlag(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *dir == "" || *reason == "" {
		return errors.New("control revoke: want KEY (a user's public key, U...) or a credentials FILE, --auth DIR and --reason TEXT")
	}
	who, err := operator(*whoName)
	if err != nil {
		return fmt.Errorf("control revoke: %w", err)
	}
	m, err := auth.Load(*dir)
	if err != nil {
		return fmt.Errorf("control revoke: %w", err)
	}
	key, name := fs.Arg(0), ""
	if !nkeys.IsValidPublicUserKey(key) {
		b, err := os.ReadFile(key)
		if err != nil {
			return fmt.Errorf("control revoke: %w", err)
		}
		if key, name, err = m.CredsUser(b); err != nil {
			return fmt.Errorf("control revoke: %s: %w", fs.Arg(0), err)
		}
	}
	if err := m.Revoke(key, name, time.Now()); err != nil {
		return fmt.Errorf("control revoke: %w", err)
	}
	fmt.Fprintf(stdout, "revoked %s %s in %s: every server started from it refuses it\n", key, name, *dir)
	for _, u := range splitList(*urls) {
		servers, err := m.PushAccount(ctx, u)
		if err != nil {
			return fmt.Errorf("control revoke: recorded, but the running servers were not told (run it again, or restart them): %w", err)
		}
		fmt.Fprintf(stdout, "withdrawn now on %s (through %s)\n", strings.Join(servers, ", "), u)
	}
	if err := auditRevoke(ctx, *urls, *dir, manifest.Audit{Time: time.Now().UTC(), Who: who, Action: "creds.revoke",
		Why: fmt.Sprintf("%s %s: %s", name, key, *reason)}); err != nil {
		return fmt.Errorf("control revoke: withdrawn, but not audited: %w", err)
	}
	return nil
}

// auditRevoke appends e to the audit stream as the auth directory's
// controller.
func auditRevoke(ctx context.Context, url, dir string, e manifest.Audit) error {
	sec := controlplane.Security{Creds: auth.CredsFile(dir, auth.Controller), CA: filepath.Join(dir, auth.CAFile)}
	nc, err := nats.Connect(url, append(sec.Options(), nats.Name("wedgectl"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.JS.Publish(ctx, manifest.SubjectAudit+".control", b)
	return err
}
