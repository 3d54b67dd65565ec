package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
)

// keysGen writes a new Ed25519 signing key pair. The private key signs
// pushes; the public key goes into every edge's trust store.
func keysGen(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys gen", flag.ContinueOnError)
	dir := fs.String("o", ".", "write the key files into `DIR`")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("keys gen: want one key name, got %d arguments", fs.NArg())
	}
	privPath, pubPath, err := registry.GenerateKey(*dir, fs.Arg(0))
	if err != nil {
		return err
	}
	priv, err := registry.LoadPrivateKey(privPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key: %s (keep it secret)\npublic key:  %s (give it to the edges)\nkey id:      %s\n",
		privPath, pubPath, manifest.KeyID(priv.Public().(ed25519.PublicKey)))
	return nil
}

// pluginPush signs a module as name@version and publishes it.
func pluginPush(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plugin push", flag.ContinueOnError)
	name := fs.String("name", "", "plugin `NAME`")
	version := fs.String("version", "", "plugin `VERSION` (immutable once pushed)")
	keyPath := fs.String("key", "", "signing key `KEY.pem` (from keys gen)")
	url := natsFlag(fs)
	whoName := whoFlag(fs)
	trustFiles := trustFlag(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("plugin push: want one FILE.wasm, got %d arguments", fs.NArg())
	}
	if *name == "" || *version == "" || *keyPath == "" {
		return fmt.Errorf("plugin push: --name, --version and --key are required")
	}
	who, err := operator(*whoName)
	if err != nil {
		return fmt.Errorf("plugin push: %w", err)
	}
	key, err := registry.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("plugin push: %w", err)
	}
	trust, err := loadTrust(*trustFiles)
	if err != nil {
		return fmt.Errorf("plugin push: %w", err)
	}
	return withRegistry(ctx, url, func(r *registry.Registry) error {
		a, err := r.Trusting(trust).Push(ctx, key, *name, *version, bin, who)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pushed %s@%s\ndigest: %s\nkey id: %s\n", a.Name, a.Version, a.Digest, a.KeyID)
		return nil
	})
}

// pluginList prints every plugin version in the registry.
func pluginList(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plugin list", flag.ContinueOnError)
	url := natsFlag(fs)
	trustFiles := trustFlag(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("plugin list: unexpected arguments %q", fs.Args())
	}
	trust, err := loadTrust(*trustFiles)
	if err != nil {
		return fmt.Errorf("plugin list: %w", err)
	}
	return withRegistry(ctx, url, func(r *registry.Registry) error {
		list, err := r.List(ctx)
		if err != nil {
			return err
		}
		revoked, err := r.Revoked(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tDIGEST\tKEY ID\tCREATED\tBY\t")
		for _, a := range list {
			digest := a.Digest[:min(12, len(a.Digest))]
			if rv, ok := revoked[a.Digest]; ok {
				// With the POPs' keys, one they refuse is told apart.
				if trust != nil && trust.VerifyRevocation(&rv) != nil {
					digest += " (revocation refused)"
				} else {
					digest += " (revoked)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", a.Name, a.Version, digest, a.KeyID,
				a.Created.UTC().Format(time.RFC3339), a.By)
		}
		return tw.Flush()
	})
}

// pluginRevoke withdraws a module: edges refuse to load it from then on.
func pluginRevoke(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plugin revoke", flag.ContinueOnError)
	reason := fs.String("reason", "", "why, for the audit trail (required)")
	keyPath := fs.String("key", "", "signing key `KEY.pem` (from keys gen; one the edges trust, as for push): edges ignore an unsigned revocation")
	url := natsFlag(fs)
	whoName := whoFlag(fs)
	trustFiles := trustFlag(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("plugin revoke: want one DIGEST, got %d arguments", fs.NArg())
	}
	if *reason == "" || *keyPath == "" {
		return fmt.Errorf("plugin revoke: --reason and --key are required")
	}
	key, err := registry.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	who, err := operator(*whoName)
	if err != nil {
		return fmt.Errorf("plugin revoke: %w", err)
	}
	// Without --trust, the signing key is all this command knows to be
	// trusted: a record by any other key is replaced by one it signs.
	trust, err := loadTrust(*trustFiles)
	if err != nil {
		return fmt.Errorf("plugin revoke: %w", err)
	}
	return withRegistry(ctx, url, func(r *registry.Registry) error {
		already, err := r.Revoke(ctx, key, trust, fs.Arg(0), *reason, who)
		if err != nil {
			return err
		}
		if already {
			fmt.Fprintf(stdout, "already revoked %s by a trusted key; the record is kept\n", fs.Arg(0))
			return nil
		}
		fmt.Fprintf(stdout, "revoked %s: %s\n", fs.Arg(0), *reason)
		return nil
	})
}

// withRegistry connects to the control plane for one command.
func withRegistry(ctx context.Context, url *controlTarget, fn func(*registry.Registry) error) error {
	s, closeConn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer closeConn()
	return fn(registry.New(s))
}
