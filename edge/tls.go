package edge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// certs picks a certificate by SNI name: exact names first, then a
// wildcard one label up, then the first certificate configured.
type certs struct {
	byName map[string]*tls.Certificate
	first  *tls.Certificate
}

func loadCerts(pairs []CertPair) (*certs, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	c := &certs{byName: map[string]*tls.Certificate{}}
	for _, p := range pairs {
		cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("edge: tls: %w", err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("edge: tls: %s: %w", p.Cert, err)
		}
		cert.Leaf = leaf
		names := leaf.DNSNames
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("edge: tls: %s names no DNS name or IP address", p.Cert)
		}
		for _, n := range names {
			c.byName[strings.ToLower(n)] = &cert
		}
		if c.first == nil {
			c.first = &cert
		}
	}
	return c, nil
}

func (c *certs) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name == "" {
		// No SNI (an IP literal, or an old client): the local address may
		// still name a certificate. It is a *net.TCPAddr over TCP and a
		// *net.UDPAddr over QUIC; both print as host:port.
		if ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String()); err == nil {
			name = ap.Addr().Unmap().WithZone("").String()
		}
	}
	if cert := c.byName[name]; cert != nil {
		return cert, nil
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if cert := c.byName["*."+parent]; cert != nil {
			return cert, nil
		}
	}
	if c.first == nil {
		return nil, errors.New("edge: no certificate")
	}
	return c.first, nil
}

// tlsConfig is the HTTPS listener's config: it asks the current generation
// for the certificate on every handshake, so a reload that brings new
// certificates takes effect without a restart.
func (n *Node) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := n.gen.Load().certs
			if c == nil {
				return nil, errors.New("edge: tls is not configured")
			}
			return c.get(hello)
		},
	}
}

// ServeTLS answers HTTPS on ln until Shutdown, with the certificates of the
// current config: HTTP/1.1 and, unless tls.http2 disables it, HTTP/2 (ALPN
// h2); with tls.http3 enabled, HTTP/3 on the same port over UDP too.
func (n *Node) ServeTLS(ln net.Listener) error {
	if !n.lns.Add(ln) {
		return nil // after Shutdown
	}
	if n.cfg.TLS.HTTP3.Enabled {
		if err := n.serveH3(ln.Addr()); err != nil {
			return err
		}
	}
	return n.serveTLS(ln)
}
