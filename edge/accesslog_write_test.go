//go:build linux

package edge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestAccessLogPartialWrite: a write of a batch that fails part way (a
// full disk, a file size limit: write(2) takes what fits, then fails)
// left the first part of a line in the file, and the next batch, once
// writes succeeded again, was glued to it: every line after a failure
// must still be a JSON object.
//
// The failing write is made in a child process (this test binary run
// again) whose file size limit is lowered for it, so no other test's
// files are affected.
func TestAccessLogPartialWrite(t *testing.T) {
	const env = "WEDGE_TEST_ALOG_PARTIAL"
	line := func(c string) []byte { return []byte(`{"k":"` + strings.Repeat(c, 94) + "\"}\n") } // 101 bytes
	if path := os.Getenv(env); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		var old syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
		l := &accessLog{f: f, dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "d"}), log: slog.New(slog.DiscardHandler)}
		// Room for the first line and half the second.
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 150, Max: old.Max}); err != nil {
			t.Fatal(err)
		}
		l.write(append(line("a"), line("b")...))
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
		if !l.failing {
			t.Fatal("the write did not fail")
		}
		l.write(line("c")) // the disk has room again
		f.Close()
		return
	}
	path := filepath.Join(t.TempDir(), "access.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAccessLogPartialWrite$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for l := range bytes.Lines(b) {
		if !json.Valid(bytes.TrimSuffix(l, []byte("\n"))) {
			t.Errorf("after a failed write, the log holds a line that is no JSON: %.40q...%.30q", l, l[len(l)-30:])
		}
	}
}
