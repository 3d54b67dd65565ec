package jsonscan_test

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"testing"
)

// TestSDKUnderWasm runs the README's command that tests the SDK's parsers
// as Wasm, as it is written there: a command the README offers works.
func TestSDKUnderWasm(t *testing.T) {
	if runtime.GOOS == "wasip1" {
		t.Skip("this is the run under Wasm")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile("`(GOOS=wasip1 GOARCH=wasm go test [^`]+)`").FindSubmatch(readme)
	if line == nil {
		t.Fatal("README.md has no `GOOS=wasip1 GOARCH=wasm go test ...` command")
	}
	cmd := exec.Command("sh", "-c", string(line[1])+" -count=1")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line[1], err, out)
	}
	if n := bytes.Count(out, []byte("ok  \t")); n != 2 {
		t.Fatalf("%s: %d packages passed, want 2\n%s", line[1], n, out)
	}
}
