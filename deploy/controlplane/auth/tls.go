// TLS for every control-plane link: a CA of the control plane's own and
// one certificate its members use both to serve (clients, leaf nodes,
// routes) and to dial (routes, which must present one: that is how a
// member knows another). A leaf node has a certificate of its own
// (LeafBundle), good for serving only, so that a leaf's machine cannot
// pass for a member.

package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

const (
	caKeyFile     = "ca-key.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server-key.pem"
	// certLife is long: nothing renews the certificates yet.
	certLife = 10 * 365 * 24 * time.Hour
)

// TLS is the loaded CA and server certificate.
type TLS struct {
	CA   *x509.CertPool
	Cert tls.Certificate
}

// Server is the TLS config a server accepts clients and leaf nodes with.
func (t *TLS) Server() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{t.Cert}, MinVersion: tls.VersionTLS12}
}

// Route is the TLS config of cluster routes, both ways: each side
// presents the server certificate and requires the other's, from the CA.
func (t *TLS) Route() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{t.Cert}, RootCAs: t.CA, ClientCAs: t.CA,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// Client is the TLS config of a leaf node's link to the cluster.
func (t *TLS) Client() *tls.Config {
	return &tls.Config{RootCAs: t.CA, MinVersion: tls.VersionTLS12}
}

// initTLS creates the CA and the servers' certificate in dir, each
// unless it is there. hosts are added to localhost and 127.0.0.1 as the
// servers' certificate's names.
func initTLS(dir string, hosts []string) error {
	caCert, caKey, err := loadPair(dir, CAFile, caKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		caCert, caKey, err = newCert(dir, CAFile, caKeyFile, nil, nil, nil)
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, serverFile)); errors.Is(err, os.ErrNotExist) {
		// Routes dial with it too: a client certificate as well.
		_, _, err = newCert(dir, serverFile, serverKeyFile, hostNames(hosts), caCert, caKey,
			x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
		return err
	}
	return nil
}

// hostNames are a server certificate's names: localhost, 127.0.0.1 and
// hosts.
func hostNames(hosts []string) []string {
	return append([]string{"localhost", "127.0.0.1"}, hosts...)
}

// Unnamed returns those of hosts that t's certificate does not name: the
// certificate is made once, with the names asked for then.
func (t *TLS) Unnamed(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if t.Cert.Leaf.VerifyHostname(h) != nil {
			out = append(out, h)
		}
	}
	return out
}

// loadTLS loads the certificate dir/certName, with its key, issued by
// caCert.
func loadTLS(dir string, caCert *x509.Certificate, certName, keyName string) (*TLS, error) {
	if _, err := readFile(dir, certName); err != nil {
		return nil, err
	}
	if _, err := readFile(dir, keyName); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certName), filepath.Join(dir, keyName))
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := cert.Leaf.CheckSignatureFrom(caCert); err != nil {
		return nil, fmt.Errorf("auth: %s: not issued by %s: %w", certName, CAFile, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &TLS{CA: pool, Cert: cert}, nil
}

// loadCert reads the PEM certificate dir/name.
func loadCert(dir, name string) (*x509.Certificate, error) {
	b, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("auth: %s: no PEM block", filepath.Join(dir, name))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", filepath.Join(dir, name), err)
	}
	return cert, nil
}

// loadPair reads the PEM certificate dir/certName and its PEM ECDSA key
// dir/keyName.
func loadPair(dir, certName, keyName string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := loadCert(dir, certName)
	if err != nil {
		return nil, nil, err
	}
	kb, err := readFile(dir, keyName)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(kb)
	if block == nil {
		return nil, nil, fmt.Errorf("auth: %s: no PEM block", filepath.Join(dir, keyName))
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %s: %w", filepath.Join(dir, keyName), err)
	}
	return cert, key, nil
}

// newCert writes a new ECDSA P-256 key and its certificate to dir: a CA's,
// self-signed, when parent is nil, otherwise one for hosts signed by
// parent, good for usage.
func newCert(dir, certName, keyName string, hosts []string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey,
	usage ...x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLife)}
	if parent == nil {
		tmpl.Subject = pkix.Name{Organization: []string{"wedge"}, CommonName: "wedge control plane CA"}
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.Subject = pkix.Name{Organization: []string{"wedge"}, CommonName: "wedge control plane"}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = usage
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	if err := writeNew(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	return cert, key, nil
}
