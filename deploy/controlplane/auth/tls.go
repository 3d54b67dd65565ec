// TLS for every control-plane link: a CA of the control plane's own and
// one certificate its members use both to serve (clients, leaf nodes,
// routes) and to dial (routes, which must present one: that is how a
// member knows another). A leaf node has a certificate of its own
// (LeafBundle), good for serving only, so that a leaf's machine cannot
// pass for a member.
//
// The CA is good for ten years; the servers' and leaves' certificates for
// 90 days, issued again by RenewServer and RenewLeaf (`wedgectl control
// renew-certs`) with the CA's key, which only the members hold. A running
// server takes renewed files at its next handshake (TLS.current), so a
// renewal restarts nothing and drops no link. Clients hold no
// certificate: they check the server's against ca.pem, which nats.go
// reads at each connection.

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
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

const (
	caKeyFile     = "ca-key.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server-key.pem"
	// caLife is long: a new CA is a new ca.pem on every POP and every
	// machine wedgectl runs on, and nothing rotates it.
	caLife = 10 * 365 * 24 * time.Hour
	// certLife is the servers' and leaves' certificates': `wedgectl
	// control renew-certs` issues them again, and running servers take
	// the new files (TLS), so a lost key is good for weeks, not years.
	certLife = 90 * 24 * time.Hour
	// recheck is how often, at most, a handshake looks for a renewed
	// certificate: a stat of its two files, not a read, and none for the
	// handshakes in between.
	recheck = time.Second
)

// TLS is the loaded CA and a server's certificate (the members' or a
// leaf's). The certificate is taken again from its files when they
// change (RenewServer, RenewLeaf, or a copy of their files from another
// machine), so that a running server presents the renewed one on its
// next handshake, without a restart: links already up stay up, since TLS
// checks a certificate at the handshake only.
type TLS struct {
	CA *x509.CertPool
	// Log is told why renewed files are not taken (slog.Default() if
	// nil): the old certificate is presented until it expires, and
	// nothing else would say so. Set it before the server starts.
	Log *slog.Logger

	ca                *x509.Certificate
	certPath, keyPath string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]os.FileInfo // the files' when cert was read from them
	checked time.Time      // the last look at the files
	failed  string         // why the files were last not taken, as logged
}

// Server is the TLS config a server accepts clients and leaf nodes with.
func (t *TLS) Server() *tls.Config {
	return &tls.Config{GetCertificate: t.serverCert, MinVersion: tls.VersionTLS12}
}

// Route is the TLS config of cluster routes, both ways: each side
// presents the server certificate and requires the other's, from the CA.
func (t *TLS) Route() *tls.Config {
	return &tls.Config{GetCertificate: t.serverCert, GetClientCertificate: t.clientCert, RootCAs: t.CA, ClientCAs: t.CA,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// Client is the TLS config of a leaf node's link to the cluster.
func (t *TLS) Client() *tls.Config {
	return &tls.Config{RootCAs: t.CA, MinVersion: tls.VersionTLS12}
}

func (t *TLS) serverCert(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.current(), nil }

func (t *TLS) clientCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return t.current(), nil
}

// File is the path of t's certificate.
func (t *TLS) File() string { return t.certPath }

// Leaf is the certificate t presents now.
func (t *TLS) Leaf() *x509.Certificate { return t.current().Leaf }

// Check says why the certificate t presents now is one no client takes:
// expired, or not valid yet. A server that starts with it could serve no
// one.
func (t *TLS) Check() error { return validAt(t.certPath, t.Leaf(), time.Now()) }

// validAt says why cert, read from path, is not valid at now.
func validAt(path string, cert *x509.Certificate, now time.Time) error {
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("auth: %s expired at %s: renew it (wedgectl control renew-certs)", path, cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("auth: %s is not valid before %s: is this machine's clock right?", path, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// current is the certificate to present, taken again from its files if
// they changed since it was read, looked at once per recheck at most.
func (t *TLS) current() *tls.Certificate {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := time.Now(); now.Sub(t.checked) >= recheck {
		t.checked = now
		t.refresh(now)
	}
	return t.cert
}

// refresh takes the certificate of t's files if they changed since it was
// read and hold a pair t could serve now. Any other pair is left for a
// later look and the certificate t has is kept: one caught half copied
// (a new key beside the old certificate: they do not pair), one of
// another CA, one expired or not valid yet, one not good for what the
// certificate it would replace was (a leaf's in a member's directory,
// which cannot dial a route); so are files t cannot read (renewed by
// root for a server of its own user, with a mode or owner that shuts it
// out). Each reason is logged once, when it first differs from the last.
func (t *TLS) refresh(now time.Time) {
	st, err := stamps(t.certPath, t.keyPath)
	if err == nil && os.SameFile(st[0], t.stamp[0]) && os.SameFile(st[1], t.stamp[1]) &&
		sameStamp(st[0], t.stamp[0]) && sameStamp(st[1], t.stamp[1]) {
		return
	}
	var cert *tls.Certificate
	if err == nil {
		cert, err = loadPairTLS(t.certPath, t.keyPath, t.ca)
	}
	if err == nil {
		err = validAt(t.certPath, cert.Leaf, now)
	}
	if err == nil && !coversUsage(cert.Leaf, t.cert.Leaf) {
		err = fmt.Errorf("auth: %s is not good for every usage of the certificate it would replace (a leaf's in a member's directory?)", t.certPath)
	}
	if err != nil {
		t.notTaken(err)
		return
	}
	if t.failed != "" {
		t.log().Info("auth: took the renewed certificate", "file", t.certPath, "serial", cert.Leaf.SerialNumber.Text(16))
	}
	t.cert, t.stamp, t.failed = cert, st, ""
}

// notTaken logs why t's files were not taken, unless that was the last
// reason logged: a file that stays unreadable is looked at again every
// second there is a handshake, and said once.
func (t *TLS) notTaken(err error) {
	if msg := err.Error(); msg != t.failed {
		t.failed = msg
		t.log().Warn("auth: certificate files changed but not taken: still presenting the old certificate",
			"file", t.certPath, "serial", t.cert.Leaf.SerialNumber.Text(16), "expires", t.cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "err", err)
	}
}

// log is where t logs: Log, or the process's default.
func (t *TLS) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default()
}

// coversUsage reports whether cert is good for every extended key usage
// old was: a member's certificate also dials routes (client auth), and a
// pair that could only serve (a leaf bundle's) would have its routes
// refused by every other member.
func coversUsage(cert, old *x509.Certificate) bool {
	for _, u := range old.ExtKeyUsage {
		if !slices.Contains(cert.ExtKeyUsage, u) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return false
		}
	}
	return true
}

// sameStamp reports whether a and b are one file's state: a file written
// in place changes its time or size.
func sameStamp(a, b os.FileInfo) bool { return a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size() }

// stamps are the files' states, to tell a change by.
func stamps(paths ...string) ([2]os.FileInfo, error) {
	var st [2]os.FileInfo
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return st, err
		}
		st[i] = fi
	}
	return st, nil
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
// certificate is made with the names asked for then, and renewed with
// them unless told others (RenewServer).
func (t *TLS) Unnamed(hosts []string) []string {
	var out []string
	leaf := t.Leaf()
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
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
	t := &TLS{CA: x509.NewCertPool(), ca: caCert, certPath: filepath.Join(dir, certName), keyPath: filepath.Join(dir, keyName)}
	t.CA.AddCert(caCert)
	st, err := stamps(t.certPath, t.keyPath)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if t.cert, err = loadPairTLS(t.certPath, t.keyPath, caCert); err != nil {
		return nil, err
	}
	t.stamp, t.checked = st, time.Now()
	return t, nil
}

// loadPairTLS loads the certificate certPath and its key keyPath, which
// caCert must have issued.
func loadPairTLS(certPath, keyPath string, caCert *x509.Certificate) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := cert.Leaf.CheckSignatureFrom(caCert); err != nil {
		return nil, fmt.Errorf("auth: %s: not issued by %s: %w", certPath, CAFile, err)
	}
	return &cert, nil
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
// self-signed, for caLife, when parent is nil, otherwise one for hosts
// signed by parent, good for usage, for certLife.
func newCert(dir, certName, keyName string, hosts []string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey,
	usage ...x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	life := certLife
	if parent == nil {
		life = caLife
	}
	c, err := issue(hosts, parent, parentKey, time.Now(), life, usage...)
	if err != nil {
		return nil, nil, err
	}
	if err := writeNew(filepath.Join(dir, keyName), c.keyPEM); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, certName), c.certPEM, 0o644); err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	return c.cert, c.key, nil
}

// issued is a new certificate and its key, parsed and as PEM.
type issued struct {
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte
}

// issue makes a new ECDSA P-256 key and its certificate, valid from an
// hour before now (clocks differ) until life after it: a CA's,
// self-signed, when parent is nil, otherwise one for hosts signed by
// parent, good for usage.
func issue(hosts []string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, now time.Time, life time.Duration,
	usage ...x509.ExtKeyUsage) (*issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(life)}
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
		return nil, fmt.Errorf("auth: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &issued{cert: cert, key: key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}, nil
}

// RenewServer issues the servers' certificate of m's auth directory
// again, with a new key, for certLife from now: for the names of the one
// it replaces or, given hosts, for them (and localhost, 127.0.0.1). Its
// files are replaced whole; running servers of this directory present
// the new certificate from their next handshake on (TLS), and a copy of
// the two files to every other member's directory does the same there.
func (m *Material) RenewServer(hosts []string) (*x509.Certificate, error) {
	if m.caKey == nil {
		return nil, fmt.Errorf("auth: %s is a leaf bundle: renew its certificate from the control plane's auth directory", m.Dir)
	}
	return renew(m.Dir, serverFile, serverKeyFile, hosts, m.caCert, m.caKey, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// RenewLeaf issues the certificate of the leaf bundle dir (LeafBundle)
// again, as RenewServer does the servers': the leaf node running with
// the bundle, or with a copy of its two new files, presents it from its
// next handshake on.
func (m *Material) RenewLeaf(dir string, hosts []string) (*x509.Certificate, error) {
	if m.caKey == nil {
		return nil, fmt.Errorf("auth: %s is a leaf bundle: renew a leaf's certificate from the control plane's auth directory", m.Dir)
	}
	ca, err := loadCert(dir, CAFile)
	if err != nil {
		return nil, err
	}
	if !ca.Equal(m.caCert) {
		return nil, fmt.Errorf("auth: %s is another control plane's leaf bundle: its %s is not the CA of %s", dir, CAFile, m.Dir)
	}
	return renew(dir, leafFile, leafKeyFile, hosts, m.caCert, m.caKey, x509.ExtKeyUsageServerAuth)
}

// renew replaces the certificate dir/certName and its key dir/keyName
// with new ones from ca, for hosts or, with none, for the names of the
// certificate replaced.
func renew(dir, certName, keyName string, hosts []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey,
	usage ...x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(hosts) == 0 {
		old, err := loadCert(dir, certName)
		if err != nil {
			return nil, err
		}
		hosts = old.DNSNames
		for _, ip := range old.IPAddresses {
			hosts = append(hosts, ip.String())
		}
	} else {
		hosts = hostNames(hosts)
	}
	c, err := issue(hosts, ca, caKey, time.Now(), certLife, usage...)
	if err != nil {
		return nil, err
	}
	// The key first: a server looking between the two renames finds the
	// new key beside the old certificate, which do not pair, and keeps
	// what it serves until its next look.
	if err := replaceFile(filepath.Join(dir, keyName), c.keyPEM); err != nil {
		return nil, err
	}
	if err := replaceFile(filepath.Join(dir, certName), c.certPEM); err != nil {
		return nil, err
	}
	return c.cert, nil
}
