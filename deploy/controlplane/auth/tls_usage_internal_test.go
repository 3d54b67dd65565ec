package auth

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// routeHandshake runs a route's TLS handshake over 127.0.0.1, both ends
// with tl's route config, as two members of one auth directory dial each
// other; it returns what either end said.
func routeHandshake(t *testing.T, tl *TLS) error {
	t.Helper()
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", tl.Route())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		srvErr <- c.(*tls.Conn).Handshake()
	}()
	cfg := tl.Route()
	cfg.ServerName = "localhost"
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp4", ln.Addr().String(), cfg)
	if err == nil {
		// TLS 1.3: the server's verdict on the client's certificate
		// comes with the first read.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte{0})
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if serr := <-srvErr; serr != nil {
		return serr
	}
	return nil
}

// TestRefreshKeepsRouteUsage: a member's certificate signs it into
// routes as a client too (ExtKeyUsageClientAuth). A pair from its CA that
// can only serve (a leaf bundle's, copied into a member's directory by
// mistake) is one the member could not dial a route with: the other
// members refuse it, and the cluster loses the member at its next
// reconnect. It is left, as a pair of another CA is, and the certificate
// the member has is kept.
func TestRefreshKeepsRouteUsage(t *testing.T) {
	m, err := Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tl := m.TLS
	if err := routeHandshake(t, tl); err != nil {
		t.Fatalf("route before the renewal: %v", err)
	}
	old := tl.Leaf().SerialNumber
	leafOnly, err := issue(hostNames(nil), m.caCert, m.caKey, time.Now(), certLife, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	if err := replaceFile(tl.keyPath, leafOnly.keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := replaceFile(tl.certPath, leafOnly.certPEM); err != nil {
		t.Fatal(err)
	}
	if got := look(tl).SerialNumber; got.Cmp(old) != 0 {
		t.Errorf("took serial %v, a certificate without client auth, for routes", got)
	}
	if err := routeHandshake(t, tl); err != nil {
		t.Errorf("route after the files were replaced by a serving-only pair: %v", err)
	}
}
