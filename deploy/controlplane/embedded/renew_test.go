package embedded_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/internal/testutil"
)

// popSecurity is a POP's credential, minted by m, and the CA file ca.
func popSecurity(t *testing.T, m *auth.Material, ca string) controlplane.Security {
	t.Helper()
	creds, err := m.Creds(auth.POP, "eu-west-1", "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pop.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return controlplane.Security{Creds: path, CA: ca}
}

// peerSerial is the serial number of the certificate the server nc is
// connected to presented, nil while nc is not connected.
func peerSerial(nc *nats.Conn) *big.Int {
	st, err := nc.TLSConnectionState()
	if err != nil || len(st.PeerCertificates) == 0 {
		return nil
	}
	return st.PeerCertificates[0].SerialNumber
}

// renewsWithoutRestart checks, against the running server at url whose
// certificate is old, that renew's certificate is what a new connection
// gets from it, with no restart, and that a link up while it was renewed
// is not dropped for it and gets the new certificate when it reconnects.
func renewsWithoutRestart(t *testing.T, url string, sec controlplane.Security, old *big.Int, renew func() (*x509.Certificate, error)) {
	t.Helper()
	var drops atomic.Int32
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(url, append(sec.Options(), nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { drops.Add(1) }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := peerSerial(nc); got == nil || got.Cmp(old) != 0 {
		t.Fatalf("the server presented serial %v, want its certificate's, %v", got, old)
	}
	renewed, err := renew()
	if err != nil {
		t.Fatal(err)
	}
	if renewed.SerialNumber.Cmp(old) == 0 {
		t.Fatal("the renewed certificate has the old one's serial")
	}
	testutil.Eventually(t, hangGuard, "a new connection gets the renewed certificate", func() bool {
		c, err := nats.Connect(url, append(sec.Options(), nats.Timeout(5*time.Second))...)
		if err != nil {
			t.Fatalf("a new connection after the renewal: %v", err)
		}
		defer c.Close()
		return peerSerial(c).Cmp(renewed.SerialNumber) == 0
	})
	if err := nc.Flush(); err != nil {
		t.Fatalf("the link up during the renewal: %v", err)
	}
	if n := drops.Load(); n != 0 {
		t.Fatalf("the link up during the renewal was dropped %d times", n)
	}
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	// Read once reconnected: nats.go reads the connection's state for
	// TLSConnectionState without its lock, racing a reconnect under way.
	select {
	case <-reconnected:
	case <-time.After(hangGuard):
		t.Fatal("the link did not reconnect")
	}
	if got := peerSerial(nc); got == nil || got.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("the link, reconnected, got serial %v, want the renewed %v", got, renewed.SerialNumber)
	}
}

// TestRenewWithoutRestart: a member's certificate, renewed in its auth
// directory, is presented from the next handshake on by the server that
// was running with the old one.
func TestRenewWithoutRestart(t *testing.T) {
	m := controlplanetest.Auth(t)
	srv, _ := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0", Auth: m})
	renewsWithoutRestart(t, srv.URL(), popSecurity(t, m, filepath.Join(m.Dir, auth.CAFile)), m.TLS.Leaf().SerialNumber,
		func() (*x509.Certificate, error) { return m.RenewServer(nil) })
}

// TestRenewLeafWithoutRestart: a leaf node's certificate, renewed in its
// bundle, is presented to its POPs from the next handshake on. The leaf
// needs no hub for it: it checks its clients' credentials itself.
func TestRenewLeafWithoutRestart(t *testing.T) {
	m := controlplanetest.Auth(t)
	bundle := filepath.Join(t.TempDir(), "leaf")
	if err := m.LeafBundle(bundle, nil); err != nil {
		t.Fatal(err)
	}
	lm, err := auth.LoadLeaf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", Name: "leaf-eu", Hub: []string{testutil.RefusedAddr(t)}, Auth: lm})
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Shutdown()
	renewsWithoutRestart(t, leaf.URL(), popSecurity(t, m, filepath.Join(bundle, auth.CAFile)), lm.TLS.Leaf().SerialNumber,
		func() (*x509.Certificate, error) { return m.RenewLeaf(bundle, nil) })
}

// TestStartRefusesCertOutOfDate: a server whose certificate has expired,
// or is not valid yet, does not start, and says why; every client would
// refuse it otherwise.
func TestStartRefusesCertOutOfDate(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name                string
		notBefore, notAfter time.Time
		want                string
	}{
		{"expired", now.Add(-100 * 24 * time.Hour), now.Add(-10 * 24 * time.Hour), "server.pem expired at"},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(90 * 24 * time.Hour), "server.pem is not valid before"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := controlplanetest.Auth(t)
			writeServerCert(t, m.Dir, c.notBefore, c.notAfter)
			m, err := auth.Load(m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", Auth: m})
			if err == nil {
				srv.Shutdown()
				t.Fatal("a server started with its certificate out of date")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want %q", err, c.want)
			}
		})
	}
}

// writeServerCert replaces the servers' certificate in the auth directory
// dir with one its CA issues, valid from notBefore to notAfter.
func writeServerCert(t *testing.T, dir string, notBefore, notAfter time.Time) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			t.Fatalf("%s: no PEM block", name)
		}
		return block.Bytes
	}
	ca, err := x509.ParseCertificate(read("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParseECPrivateKey(read("ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "wedge control plane"},
		NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"server.pem":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"server-key.pem": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
