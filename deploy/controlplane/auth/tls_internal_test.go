package auth

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCertLife: the servers' and leaves' certificates are good for
// certLife (renewed, not trusted for years), the CA for caLife.
func TestCertLife(t *testing.T) {
	m, err := Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := m.LeafBundle(bundle, nil); err != nil {
		t.Fatal(err)
	}
	leaf, err := LoadLeaf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	const day = 24 * time.Hour
	for _, c := range []struct {
		name     string
		cert     *x509.Certificate
		min, max time.Duration
	}{
		{"the CA", m.caCert, 3650 * day, 3651 * day},
		{"the servers' certificate", m.TLS.Leaf(), 90 * day, 91 * day},
		{"a leaf's certificate", leaf.TLS.Leaf(), 90 * day, 91 * day},
	} {
		if life := c.cert.NotAfter.Sub(c.cert.NotBefore); life < c.min || life > c.max {
			t.Errorf("%s is good for %v, want %v to %v", c.name, life, c.min, c.max)
		}
	}
}

// TestRenewNames: a renewal keeps the names of the certificate it replaces
// unless given others, and a leaf's is renewed only by its own control
// plane, never from a leaf bundle.
func TestRenewNames(t *testing.T) {
	m, err := Init(t.TempDir(), []string{"cp-1.example", "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	names := func(c *x509.Certificate) []string {
		out := slices.Clone(c.DNSNames)
		for _, ip := range c.IPAddresses {
			out = append(out, ip.String())
		}
		slices.Sort(out)
		return out
	}
	old := m.TLS.Leaf()
	c, err := m.RenewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(c), names(old); !slices.Equal(got, want) {
		t.Errorf("renewed for %q, want the old names %q", got, want)
	}
	if c.NotAfter.Sub(c.NotBefore) > 91*24*time.Hour {
		t.Errorf("renewed until %v", c.NotAfter)
	}
	if c, err = m.RenewServer([]string{"cp-2.example"}); err != nil {
		t.Fatal(err)
	}
	if got, want := names(c), []string{"127.0.0.1", "cp-2.example", "localhost"}; !slices.Equal(got, want) {
		t.Errorf("renewed for %q, want %q", got, want)
	}
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := m.LeafBundle(bundle, []string{"leaf-eu"}); err != nil {
		t.Fatal(err)
	}
	lm, err := LoadLeaf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lm.RenewServer(nil); err == nil {
		t.Error("a leaf bundle renewed a certificate")
	}
	other, err := Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.RenewLeaf(bundle, nil); err == nil {
		t.Error("another control plane renewed the leaf's certificate")
	}
	if c, err = m.RenewLeaf(bundle, nil); err != nil {
		t.Fatal(err)
	}
	if got := names(c); !slices.Equal(got, []string{"127.0.0.1", "leaf-eu", "localhost"}) {
		t.Errorf("the leaf's renewed for %q", got)
	}
}

// look makes t's next handshake look at its files, as it does once per
// recheck.
func look(t *TLS) *x509.Certificate {
	t.mu.Lock()
	t.checked = time.Time{}
	t.mu.Unlock()
	return t.Leaf()
}

// TestRefresh: a server's TLS takes a renewed certificate from its files,
// for serving and for dialing a route, and keeps the one it has when the
// files hold a pair it could not serve.
func TestRefresh(t *testing.T) {
	m, err := Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tl := m.TLS
	old := tl.Leaf().SerialNumber
	write := func(certPEM, keyPEM []byte) {
		t.Helper()
		if err := replaceFile(tl.keyPath, keyPEM); err != nil {
			t.Fatal(err)
		}
		if err := replaceFile(tl.certPath, certPEM); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for name, issuedAt := range map[string]time.Time{"expired": now.Add(-100 * 24 * time.Hour), "not yet valid": now.Add(2 * time.Hour)} {
		c, err := issue([]string{"localhost"}, m.caCert, m.caKey, issuedAt, certLife, x509.ExtKeyUsageServerAuth)
		if err != nil {
			t.Fatal(err)
		}
		write(c.certPEM, c.keyPEM)
		if got := look(tl).SerialNumber; got.Cmp(old) != 0 {
			t.Errorf("%s: took serial %v", name, got)
		}
	}
	c, err := issue([]string{"localhost"}, other.caCert, other.caKey, now, certLife, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	write(c.certPEM, c.keyPEM)
	if got := look(tl).SerialNumber; got.Cmp(old) != 0 {
		t.Errorf("another CA's: took serial %v", got)
	}
	good, err := issue([]string{"localhost"}, m.caCert, m.caKey, now, certLife, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	write(good.certPEM, c.keyPEM) // half copied: the certificate, not its key yet
	if got := look(tl).SerialNumber; got.Cmp(old) != 0 {
		t.Errorf("a certificate beside another's key: took serial %v", got)
	}
	write(good.certPEM, good.keyPEM)
	look(tl)
	srv, err := tl.Server().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	route, err := tl.Route().GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*tls.Certificate{"serving": srv, "dialing a route": route} {
		if got.Leaf.SerialNumber.Cmp(good.cert.SerialNumber) != 0 {
			t.Errorf("%s: serial %v, want the renewed %v", name, got.Leaf.SerialNumber, good.cert.SerialNumber)
		}
	}
}

// TestRefreshLogsWhyNotTaken: files a server's TLS cannot take are
// logged, once for as long as the reason stays the same, and taking
// renewed ones after that is logged too. A server silently kept
// presenting its old certificate when a renewal left files it could not
// read.
func TestRefreshLogsWhyNotTaken(t *testing.T) {
	m, err := Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	tl := m.TLS
	tl.Log = slog.New(slog.NewTextHandler(&logs, nil))
	old := tl.Leaf().SerialNumber
	lines := func() []string { return strings.Split(strings.TrimSpace(logs.String()), "\n") }

	// A file that is no certificate stands for one the server cannot
	// read, which a test run as root (as CI runs) could not make.
	if err := replaceFile(tl.certPath, []byte("not a certificate\n")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := look(tl).SerialNumber; got.Cmp(old) != 0 {
			t.Fatalf("took serial %v from a file that is no certificate", got)
		}
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "still presenting the old certificate") ||
		!strings.Contains(got[0], "serial="+old.Text(16)) || !strings.Contains(got[0], "file="+tl.certPath) {
		t.Fatalf("three looks at a bad certificate file logged %q, want one warning naming the file and the serial presented", got)
	}

	c, err := issue([]string{"localhost"}, m.caCert, m.caKey, time.Now(), certLife, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	if err := replaceFile(tl.certPath, c.certPEM); err != nil { // the old key still
		t.Fatal(err)
	}
	look(tl)
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "private key does not match public key") {
		t.Fatalf("a certificate beside another's key logged %q, want a second warning saying so", got)
	}
	if err := replaceFile(tl.keyPath, c.keyPEM); err != nil {
		t.Fatal(err)
	}
	if got := look(tl).SerialNumber; got.Cmp(c.cert.SerialNumber) != 0 {
		t.Fatalf("serial %v, want the renewed %v", got, c.cert.SerialNumber)
	}
	if got := lines(); len(got) != 3 || !strings.Contains(got[2], "level=INFO") || !strings.Contains(got[2], "serial="+c.cert.SerialNumber.Text(16)) {
		t.Fatalf("taking the renewed pair logged %q, want it said after the warnings", got)
	}
	look(tl)
	if got := lines(); len(got) != 3 {
		t.Errorf("a look at files already taken logged %q", got[3:])
	}
}
