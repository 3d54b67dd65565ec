package auth_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
)

// TestLeafCredentialNotAClient: the leaf credential, whose permissions
// are the whole account's, is refused to a client; it links leaf nodes
// only (TestLeafNode in embedded).
func TestLeafCredentialNotAClient(t *testing.T) {
	url, m, _ := secureServer(t)
	sec := controlplane.Security{Creds: auth.CredsFile(m.Dir, auth.Leaf), CA: filepath.Join(m.Dir, auth.CAFile)}
	nc, err := nats.Connect(url, append(sec.Options(), nats.Timeout(5*time.Second))...)
	if err == nil {
		nc.Close()
		t.Fatal("the leaf credential connected as a client")
	}
}

// TestInboxAndConsumers: a credential reads replies on its own inbox only
// (another's replies would tell it their consumers' names, which it may
// delete), and creates consumers on Wedge's streams only.
func TestInboxAndConsumers(t *testing.T) {
	url, m, cs := secureServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bounds a hang
	defer cancel()
	if _, err := cs.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	sec := controlplane.Security{Creds: credsFile(t, m, auth.POP, "pop-a"), CA: filepath.Join(m.Dir, auth.CAFile)}
	nc, errs := dial(t, url, sec)
	s, err := controlplane.OpenEdge(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	allowed(t, nc, "a request, answered on its own inbox", func(ctx context.Context) error {
		_, err := s.Desired.Get(ctx, manifest.RegionKey("eu"))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			err = nil
		}
		return err
	})
	refused(t, "subscribe to every inbox", errs, func(ctx context.Context) error {
		sub, err := nc.SubscribeSync("_INBOX.>")
		if err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		// The refusal is asynchronous: nothing arrives on the
		// subscription, and the violation is in errs.
		_, err = sub.NextMsgWithContext(ctx)
		return err
	})
	refused(t, "a consumer on another stream", errs, func(ctx context.Context) error {
		_, err := s.JS.OrderedConsumer(ctx, "OTHER", jetstream.OrderedConsumerConfig{})
		return err
	})
}

// TestCredsRequireTLS: a client with a credential insists on TLS, even
// given a nats:// URL and no CA: over plain TCP whoever sits in between
// could relay the server's nonce and connect in its name.
func TestCredsRequireTLS(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0"}) // plain TCP, no auth
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	m, err := auth.Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sec := controlplane.Security{Creds: auth.CredsFile(m.Dir, auth.Push)}
	nc, err := nats.Connect(strings.Replace(srv.URL(), "tls://", "nats://", 1), append(sec.Options(), nats.Timeout(5*time.Second))...)
	if err == nil {
		nc.Close()
		t.Fatal("a credential was sent over plain TCP")
	}
	if !errors.Is(err, nats.ErrSecureConnWanted) {
		t.Fatalf("refused for %v, want %v", err, nats.ErrSecureConnWanted)
	}
}

// TestLoadOnlyReads: Load, what `control creds` and `control leaf-bundle`
// run, creates nothing: a directory missing a file is refused with its
// name, and stays as it was.
func TestLoadOnlyReads(t *testing.T) {
	if _, err := auth.Load(t.TempDir()); err == nil {
		t.Fatal("loaded an empty directory")
	}
	for _, missing := range []string{"operator.nk", "account.nk", "ca-key.pem", "server.pem"} {
		t.Run(missing, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := auth.Init(dir, nil); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, missing)); err != nil {
				t.Fatal(err)
			}
			before := files(t, dir)
			_, err := auth.Load(dir)
			if err == nil || !strings.Contains(err.Error(), missing) {
				t.Fatalf("Load without %s: %v, want an error naming it", missing, err)
			}
			if after := files(t, dir); !slices.Equal(before, after) {
				t.Fatalf("Load changed the directory: %v, then %v", before, after)
			}
		})
	}
}

// TestLeafBundle: a leaf bundle holds what a leaf node needs and none of
// the control plane's seeds and keys; it loads without them, mints
// nothing, and its certificate serves but cannot dial a route.
func TestLeafBundle(t *testing.T) {
	m, err := auth.Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "leaf")
	if err := m.LeafBundle(dir, []string{"leaf-eu.example"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"account.jwt", "ca.pem", "creds/leaf.creds", "leaf-key.pem", "leaf.pem", "operator.jwt", "system.jwt"}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("the bundle holds %v, want %v", got, want)
	}
	if err := m.LeafBundle(dir, nil); err == nil {
		t.Fatal("a second bundle overwrote the first")
	}
	leaf, err := auth.LoadLeaf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Account != m.Account || leaf.System != m.System || leaf.Operator.Subject != m.Operator.Subject {
		t.Fatal("the bundle's operator and accounts are not the control plane's")
	}
	if _, err := leaf.Creds(auth.POP, "pop-a", popRegion); err == nil {
		t.Fatal("a leaf bundle minted a credential")
	}
	if err := leaf.LeafBundle(t.TempDir(), nil); err == nil {
		t.Fatal("a leaf bundle made another")
	}
	cert := leaf.TLS.Leaf()
	for usage, ok := range map[x509.ExtKeyUsage]bool{x509.ExtKeyUsageServerAuth: true, x509.ExtKeyUsageClientAuth: false} {
		_, err := cert.Verify(x509.VerifyOptions{DNSName: "leaf-eu.example", Roots: m.TLS.CA, KeyUsages: []x509.ExtKeyUsage{usage}})
		if (err == nil) != ok {
			t.Errorf("the leaf's certificate for %v: %v", usage, err)
		}
	}
	if _, err := auth.LoadLeaf(m.Dir); err == nil {
		t.Error("LoadLeaf took a control plane's directory")
	}
	if err := os.Remove(auth.CredsFile(dir, auth.Leaf)); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadLeaf(dir); err == nil || !strings.Contains(err.Error(), "leaf.creds") {
		t.Fatalf("LoadLeaf without the credential: %v", err)
	}
}

// files lists the files under dir, by path relative to it, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
