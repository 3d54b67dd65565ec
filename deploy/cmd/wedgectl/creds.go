// The control plane's credentials: `control --embedded` and `up` run with
// an auth directory (deploy/controlplane/auth), created on first start;
// `control creds` mints a credential from it, `control leaf-bundle`
// makes what a region's leaf node (`control leaf`) runs with and `control
// renew-certs` issues the servers' or a leaf's certificate again.

package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/auth"
)

// initAuth loads the auth directory dir, creating what is missing (hosts,
// comma-separated, name the servers' certificate besides localhost and
// 127.0.0.1), and says where the credentials are.
func initAuth(dir, hosts string, stdout io.Writer) (*auth.Material, error) {
	var list []string
	if hosts != "" {
		list = splitList(hosts)
	}
	m, err := auth.Init(dir, list)
	if err != nil {
		return nil, err
	}
	if missing := m.TLS.Unnamed(list); len(missing) > 0 {
		fmt.Fprintf(stdout, "warning: the servers' certificate in %s does not name %s: --tls-hosts counts only when the certificate is made "+
			"(wedgectl control renew-certs --auth %[1]s --tls-hosts HOSTS makes it again; copy it to every member)\n", dir, strings.Join(missing, ", "))
	}
	fmt.Fprintf(stdout, "credentials in %s (one per role; a POP's: wedgectl control creds pop NAME --region REGION --auth %[2]s), CA %s\n",
		filepath.Join(dir, "creds"), dir, filepath.Join(dir, auth.CAFile))
	return m, nil
}

// controlCreds is `control creds ROLE [NAME --region REGION]`: a
// credential for role (and the POP NAME of REGION), signed offline by the
// auth directory's account key, which every server of the control plane
// trusts: no server is told.
func controlCreds(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control creds", flag.ContinueOnError)
	dir := fs.String("auth", "", "the control plane's auth `DIR` (by default control --embedded DIR keeps it in DIR/auth)")
	out := fs.String("o", "", "write the credential to `FILE`, readable by its owner only, instead of printing it")
	region := fs.String("region", "", "the POP's `REGION` (its config's region:), the only one it may publish rate-limit usage for")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 || *dir == "" {
		return errors.New("control creds: want ROLE [NAME --region REGION] and --auth DIR")
	}
	role, err := auth.ParseRole(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("control creds: %w", err)
	}
	if (role == auth.POP) != (fs.NArg() == 2) || (role == auth.POP) != (*region != "") {
		return errors.New("control creds: a POP's credential takes the POP's NAME and --region, and only a POP's")
	}
	m, err := auth.Load(*dir)
	if err != nil {
		return fmt.Errorf("control creds: %w", err)
	}
	c, err := m.Creds(role, fs.Arg(1), *region)
	if err != nil {
		return fmt.Errorf("control creds: %w", err)
	}
	if *out == "" {
		_, err = stdout.Write(c)
		return err
	}
	if err := writeSecret(*out, c); err != nil {
		return fmt.Errorf("control creds: %w", err)
	}
	key, _, err := m.CredsUser(c)
	if err != nil {
		return fmt.Errorf("control creds: %w", err)
	}
	fmt.Fprintf(stdout, "%s credential written to %s (user %s: `wedgectl control revoke` withdraws it)\n", role, *out, key)
	return nil
}

// writeSecret replaces the file path with b, readable by its owner only
// whatever the mode of a file it replaces (os.WriteFile would keep it):
// b is written to a new file first, then renamed over path.
func writeSecret(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// controlLeafBundle is `control leaf-bundle DIR`: what a region's leaf
// node needs, and none of the control plane's seeds or keys, to copy to
// the leaf's machine (`control leaf --auth DIR`).
func controlLeafBundle(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control leaf-bundle", flag.ContinueOnError)
	dir := fs.String("auth", "", "the control plane's auth `DIR` (by default control --embedded DIR keeps it in DIR/auth)")
	hosts := fs.String("tls-hosts", "", "`HOSTS` (comma-separated) the leaf's certificate names besides localhost and 127.0.0.1: the names its POPs dial")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *dir == "" {
		return errors.New("control leaf-bundle: want DIR and --auth DIR")
	}
	m, err := auth.Load(*dir)
	if err != nil {
		return fmt.Errorf("control leaf-bundle: %w", err)
	}
	var list []string
	if *hosts != "" {
		list = splitList(*hosts)
	}
	if err := m.LeafBundle(fs.Arg(0), list); err != nil {
		return fmt.Errorf("control leaf-bundle: %w", err)
	}
	fmt.Fprintf(stdout, "leaf bundle in %s: copy it to the leaf's machine (control leaf --auth DIR)\n", fs.Arg(0))
	return nil
}

// controlRenewCerts is `control renew-certs`: the servers' certificate of
// the auth directory, or with --leaf-bundle a leaf's, issued again by the
// CA for 90 days, with a new key. The servers running with the files take
// the new ones at their next handshake: nothing restarts and no link
// drops, so it can run from cron well before the old one expires, as
// root too: the new files keep the owner and mode of the old ones, which
// a server running as its own user must still read.
func controlRenewCerts(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control renew-certs", flag.ContinueOnError)
	dir := fs.String("auth", "", "the control plane's auth `DIR` (by default control --embedded DIR keeps it in DIR/auth)")
	bundle := fs.String("leaf-bundle", "", "renew the certificate of the leaf bundle `DIR` (control leaf-bundle), not the servers'")
	hosts := fs.String("tls-hosts", "", "`HOSTS` (comma-separated) the new certificate names besides localhost and 127.0.0.1 (default: the names of the one it replaces)")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *dir == "" {
		return errors.New("control renew-certs: want --auth DIR and no arguments")
	}
	m, err := auth.Load(*dir)
	if err != nil {
		// The two likely slips, named: the leaf's own bundle (renewed from
		// the control plane) and control --embedded's DIR (its auth is in
		// DIR/auth).
		if _, lerr := auth.LoadLeaf(*dir); lerr == nil {
			return fmt.Errorf("control renew-certs: %s is a leaf bundle: renew it on the control plane with --auth AUTH_DIR --leaf-bundle BUNDLE_DIR, and copy its new leaf.pem and leaf-key.pem here", *dir)
		}
		if _, aerr := auth.Load(filepath.Join(*dir, "auth")); aerr == nil {
			return fmt.Errorf("control renew-certs: %s is not an auth directory, %s is: --auth %[2]s", *dir, filepath.Join(*dir, "auth"))
		}
		return fmt.Errorf("control renew-certs: %w", err)
	}
	var list []string
	if *hosts != "" {
		list = splitList(*hosts)
	}
	var c *x509.Certificate
	files, where := "server.pem and server-key.pem", "every other member's auth directory"
	if *bundle == "" {
		c, err = m.RenewServer(list)
	} else {
		c, err = m.RenewLeaf(*bundle, list)
		files, where = "leaf.pem and leaf-key.pem", "the leaf's bundle on its machine"
	}
	if err != nil {
		return fmt.Errorf("control renew-certs: %w", err)
	}
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	fmt.Fprintf(stdout, "renewed %s in %s: serial %x, for %s, valid until %s\n", files, cmp.Or(*bundle, *dir), c.SerialNumber,
		strings.Join(names, ", "), c.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "copy them to %s: a running server takes them at its next handshake, without a restart\n", where)
	return nil
}
