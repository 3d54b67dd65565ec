package edge_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/talowa/wedge/edge"
)

// writeCert writes a self-signed certificate for name (a DNS name or an
// IP address) into dir and returns
// the file names and the certificate.
func writeCert(t *testing.T, dir, name string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ = x509.ParseCertificate(der)
	return certFile, keyFile, cert
}

// TestNodeTLS serves two SNI names with their own certificates, and picks
// up a replaced certificate on reload without a restart.
func TestNodeTLS(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, a1 := writeCert(t, dir, "a.example", 1)
	bCert, bKey, b := writeCert(t, dir, "b.example", 2)
	tlsCfg := fmt.Sprintf("tls:\n  certs:\n    - {cert: %s, key: %s}\n    - {cert: %s, key: %s}\n", aCert, aKey, bCert, bKey)
	originAddr := startOrigin(t, "tls-origin")
	parse := func() *edge.Config {
		cfg, err := edge.ParseConfig([]byte(config(originAddr, hello(t), tlsCfg)), dir)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	n := startNode(t, config(originAddr, hello(t), tlsCfg))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.ServeTLS(ln)

	// handshake connects with SNI name, trusting only want, and sends one
	// request through the node over the connection.
	handshake := func(name string, want *x509.Certificate) {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AddCert(want)
		conn, err := tls.Dial("tcp4", ln.Addr().String(), &tls.Config{ServerName: name, RootCAs: pool})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer conn.Close()
		if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(want) {
			t.Fatalf("%s: served the certificate with serial %v, want %v", name, got.SerialNumber, want.SerialNumber)
		}
		fmt.Fprintf(conn, "GET /hello?name=tls HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name)
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, _ := conn.Read(buf)
		if got := string(buf[:m]); len(got) < 15 || got[:15] != "HTTP/1.1 200 OK" {
			t.Fatalf("%s: %q", name, got)
		}
	}
	handshake("a.example", a1)
	handshake("b.example", b)

	// A new certificate for a.example, then a reload: new handshakes get
	// it, with the node never restarted.
	_, _, a2 := writeCert(t, dir, "a.example", 3)
	if err := n.Reload(context.Background(), parse()); err != nil {
		t.Fatal(err)
	}
	handshake("a.example", a2)
	handshake("b.example", b)
}

// TestTLSWithoutSNI: a client that sends no SNI (it dialed an IP address)
// gets the certificate for the address it reached, over TCP and over
// QUIC alike, not the first one configured.
func TestTLSWithoutSNI(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, _ := writeCert(t, dir, "a.example", 1)
	ipCert, ipKey, ip := writeCert(t, dir, "127.0.0.1", 2)
	tlsCfg := fmt.Sprintf("tls:\n  certs:\n    - {cert: %s, key: %s}\n    - {cert: %s, key: %s}\n  http3: {enabled: true}\n",
		aCert, aKey, ipCert, ipKey)
	n := startNode(t, config(startOrigin(t, "tls-origin"), hello(t), tlsCfg))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.ServeTLS(ln)
	pool := x509.NewCertPool()
	pool.AddCert(ip)
	cfg := &tls.Config{RootCAs: pool} // ServerName from the address: no SNI for an IP

	conn, err := tls.Dial("tcp4", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("tcp: %v", err)
	}
	conn.Close()

	qcfg := cfg.Clone()
	qcfg.NextProtos = []string{http3.NextProtoH3}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang guard
	defer cancel()
	qc, err := quic.DialAddr(ctx, ln.Addr().String(), qcfg, nil)
	if err != nil {
		t.Fatalf("quic: %v", err)
	}
	defer qc.CloseWithError(0, "")
	if got := qc.ConnectionState().TLS.PeerCertificates[0]; !got.Equal(ip) {
		t.Fatalf("quic: served the certificate with serial %v, want %v", got.SerialNumber, ip.SerialNumber)
	}
}
