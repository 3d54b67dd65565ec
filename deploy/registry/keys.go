package registry

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/talowa/wedge/deploy/manifest"
)

// Key files are standard PEM (PKCS#8 private, PKIX public), so openssl and
// other tools can read and make them.
const (
	pemPrivate = "PRIVATE KEY"
	pemPublic  = "PUBLIC KEY"
)

// GenerateKey writes a new Ed25519 key pair to DIR/NAME.key (private,
// mode 0600) and DIR/NAME.pub. It never overwrites an existing key: a lost
// signing key cannot be recovered.
func GenerateKey(dir, name string) (privPath, pubPath string, err error) {
	if err := manifest.CheckName("key", name); err != nil {
		return "", "", fmt.Errorf("registry: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("registry: generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", fmt.Errorf("registry: generate key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", "", fmt.Errorf("registry: generate key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("registry: generate key: %w", err)
	}
	privPath, pubPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("registry: generate key: %s exists; not overwriting a key", p)
		}
	}
	if err := writeNew(privPath, 0o600, &pem.Block{Type: pemPrivate, Bytes: privDER}); err != nil {
		return "", "", err
	}
	if err := writeNew(pubPath, 0o644, &pem.Block{Type: pemPublic, Bytes: pubDER}); err != nil {
		os.Remove(privPath)
		return "", "", err
	}
	return privPath, pubPath, nil
}

// writeNew creates path (failing if it exists) with mode perm and the PEM
// block in it.
func writeNew(path string, perm os.FileMode, b *pem.Block) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("registry: write key: %w", err)
	}
	if err := pem.Encode(f, b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("registry: write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("registry: write key %s: %w", path, err)
	}
	return nil
}

// LoadPrivateKey reads a PKCS#8 PEM Ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	if b.Type != pemPrivate {
		return nil, fmt.Errorf("registry: %s: PEM block is %q, want %q (PKCS#8)", path, b.Type, pemPrivate)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("registry: %s: %T is not an Ed25519 key", path, k)
	}
	return priv, nil
}

func readPEM(path string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("registry: %s: no PEM block", path)
	}
	return b, nil
}
