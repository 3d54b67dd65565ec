package pop_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/origin/origintest"
)

// TestMainFailsClean starts the command with an admin address another
// process holds: it fails naming the admin listener, and leaves nothing
// bound, the HTTPS listener it had opened before included (a port the
// operator's next try needs).
func TestMainFailsClean(t *testing.T) {
	dir := t.TempDir()
	// A certificate for the HTTPS listener: httptest's, written out.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	cert := ts.TLS.Certificates[0]
	ts.Close()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{"cert.pem": {Type: "CERTIFICATE", Bytes: cert.Certificate[0]},
		"key.pem": {Type: "PRIVATE KEY", Bytes: key}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	held, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	free := func() string {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	httpAddr, tlsAddr := free(), free()
	cfgFile := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`listen: %s
tls: {listen: %s, certs: [{cert: cert.pem, key: key.pem}]}
admin: {listen: %s}
routes:
  - {origin: app}
origins:
  app: {addr: 127.0.0.1:1, key: %q}
`, httpAddr, tlsAddr, held.Addr(), origintest.Key.Text())), 0o644); err != nil {
		t.Fatal(err)
	}
	err = pop.Main(context.Background(), []string{"-config", cfgFile}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "admin listen") {
		t.Fatalf("Main with the admin address taken: %v, want an admin listen error", err)
	}
	for _, addr := range []string{httpAddr, tlsAddr} {
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			t.Fatalf("%s still bound after Main failed: %v", addr, err)
		}
		ln.Close()
	}
}
