// Package leaktest finds goroutines a test left behind, in the manner of
// go.uber.org/goleak but narrowed to the functions the test names: the
// runtime, fasthttp and other libraries keep goroutines of their own for
// the life of the process, which a check of every goroutine would report.
package leaktest

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Stacks returns the stacks of the goroutines other than the caller's that
// have a frame of a function whose name contains one of fns. A goroutine
// that such a function only started names it in its "created by" line,
// which does not count: it may be on its way out, and it is its own
// function that says what it does.
func Stacks(fns ...string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	// The caller's goroutine comes first in the dump.
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 || !runs(g, fns) {
			continue
		}
		out = append(out, string(g))
	}
	return out
}

func runs(g []byte, fns []string) bool {
	for line := range bytes.Lines(g) {
		if bytes.HasPrefix(line, []byte("created by ")) {
			continue
		}
		for _, fn := range fns {
			if bytes.Contains(line, []byte(fn)) {
				return true
			}
		}
	}
	return false
}

// Check fails t unless, within limit, no goroutine other than the
// caller's runs any of fns (see Stacks). Goroutines that a closed server
// or connection ends may take a moment to return, hence the wait; a leak
// never does. limit is a bound for a hang, not a measure.
func Check(t testing.TB, limit time.Duration, fns ...string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		left := Stacks(fns...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left running %v after %s:\n\n%s", len(left), fns, limit, strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
