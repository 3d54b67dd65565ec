package edge_test

import (
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// h2specVersion is the conformance suite's release the test installs.
const h2specVersion = "github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"

// h2specKnown are the h2spec cases the node fails, with why: each fails
// the same against a bare net/http server (Go 1.26), whose HTTP/2 the
// node runs; none lets a request through to the core.
var h2specKnown = map[string]string{
	"http2/6.5.3 Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE": "Go's framer takes a SETTINGS frame " +
		"that repeats a parameter for a PROTOCOL_ERROR and closes the connection; RFC 9113 allows the repeat",
	"http2/8.1.2.2 Sends a HEADERS frame that contains the connection-specific header field": "net/http " +
		"answers such a request 400 itself, before any handler, where RFC 9113 asks for a PROTOCOL_ERROR stream error",
	`http2/8.1.2.2 Sends a HEADERS frame that contains the TE header field with any value other than "trailers"`: "the same 400",
}

// h2spec is the h2spec binary, built once into the user's cache directory
// (go install with the module proxy); the test is skipped where it cannot
// be built.
func h2spec(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "wedge-h2spec-v2.2.1")
	bin := filepath.Join(dir, "h2spec")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", h2specVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	cmd.Dir = t.TempDir() // outside this module: its go.mod stays as it is
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build h2spec: %v\n%s", err, out)
	}
	return bin
}

// junit is what the test reads of h2spec's JUnit report.
type junit struct {
	Suites []struct {
		Cases []struct {
			Package string    `xml:"package,attr"`
			Name    string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestH2Spec runs the h2spec conformance suite (HTTP/2 and HPACK, strict
// cases included) against the node's TLS listener, through its plugin
// chain and origin path, and fails on any case that fails other than those
// h2specKnown lists.
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	bin := h2spec(t)
	s := startTLSStack(t, "", "")
	host, port, _ := net.SplitHostPort(s.addr)
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	out, err := exec.Command(bin, "-t", "-k", "-S", "-h", host, "-p", port, "-P", "/up", "-o", "3", "-j", report).CombinedOutput()
	b, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("h2spec wrote no report (%v): %v\n%s", err, rerr, out)
	}
	var r junit
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	passed, skipped := 0, 0
	var failed, known []string
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			id := c.Package + " " + c.Name
			switch {
			case c.Failure == nil && c.Error == nil && c.Skipped == nil:
				passed++
			case c.Skipped != nil:
				skipped++
			case h2specKnown[id] != "":
				known = append(known, id)
			default:
				failed = append(failed, id)
			}
		}
	}
	t.Logf("h2spec: %d passed, %d skipped, %d known failures, %d failed", passed, skipped, len(known), len(failed))
	if len(failed) > 0 || passed == 0 {
		t.Fatalf("h2spec failures:\n%s\n\n%s", strings.Join(failed, "\n"), out)
	}
}
