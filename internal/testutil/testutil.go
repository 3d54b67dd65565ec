// Package testutil holds the small helpers that tests across the module
// share: waiting for a condition with a deadline, and capturing a log that
// goroutines write while the test reads it. It is internal because only
// this module's tests use it; the fixtures a plugin author or an operator
// may want (an origin, an edge node, a control plane) live beside their
// packages, in the manner of net/http/httptest.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Eventually calls cond until it returns true, failing t with what if it
// has not within limit. limit bounds a hang: it is not a measure of how
// fast the code under test is, so give it room for a busy machine.
//
// It polls with a growing interval, from a millisecond (a condition that
// holds soon costs the test little) to 20 ms (a long wait does not spin a
// core the code under test needs).
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(wait)
	}
}

// SyncBuffer is a bytes.Buffer that goroutines may write to (a logger, a
// command's output) while the test reads what it holds so far. The zero
// value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
