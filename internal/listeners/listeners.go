// Package listeners closes the gap fasthttp leaves between Serve and
// Shutdown, for the edge node and the origin service alike: fasthttp's
// Shutdown closes only the listeners whose Serve has registered them
// already, so a Serve that starts just before Shutdown would serve forever.
// A server adds each listener here before serving it, and closes the set
// when it shuts down.
package listeners

import (
	"net"
	"sync"
)

// Set is the listeners a server serves. Its lock is a leaf: no other lock
// is taken while it is held. The zero Set is empty and open.
type Set struct {
	mu     sync.Mutex
	closed bool
	lns    []net.Listener
}

// Add registers ln to be closed by Close and reports true; after Close it
// closes ln itself and reports false, and the caller must not serve ln.
func (s *Set) Add(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return false
	}
	s.lns = append(s.lns, ln)
	return true
}

// Close closes every listener added, and makes every later Add refuse.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
}

// Closed reports whether Close has run.
func (s *Set) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
