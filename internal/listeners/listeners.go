// Package listeners closes the gap fasthttp leaves between Serve and
// Shutdown, for the edge node and the origin service alike: fasthttp's
// Shutdown closes only the listeners whose Serve has registered them
// already, so a Serve that starts just before Shutdown would serve forever.
// A server adds each listener here before serving it, and closes the set
// when it shuts down.
package listeners

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
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

// Retry is ln with the errors that running out of a resource brings
// (file descriptors above all: EMFILE, ENFILE; ENOBUFS, ENOMEM) waited
// out, as net/http's Serve does: fasthttp's Serve takes every error but a
// timeout for the listener's end, so a flood of idle connections past the
// process's descriptor limit stopped the server for good. Accept sleeps
// from 5 ms, doubling to a second, while the error lasts, and logs it at
// most once a second. ECONNABORTED (a client gone before it was
// accepted) is retried at once. One goroutine accepts at a time, as a
// server's accept loop does.
func Retry(ln net.Listener, log *slog.Logger) net.Listener {
	return &retry{Listener: ln, log: log}
}

type retry struct {
	net.Listener
	log    *slog.Logger
	logged time.Time
}

func (r *retry) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := r.Listener.Accept()
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, syscall.ECONNABORTED):
			continue
		case !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) &&
			!errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.ENOMEM):
			return c, err
		}
		wait = min(max(2*wait, 5*time.Millisecond), time.Second)
		if now := time.Now(); now.Sub(r.logged) >= time.Second {
			r.logged = now
			r.log.Warn("accept failed: retrying; connections wait in the kernel's queue meanwhile",
				"listener", r.Addr().String(), "err", err, "retry_in", wait)
		}
		time.Sleep(wait)
	}
}

// The side servers' bounds: an admin, metrics or status listener, which
// load balancers and Prometheus poll, and which a client holding idle
// connections could otherwise fill with the process's file descriptors,
// taking the data plane's listeners down with them.
var (
	sideIdle  = 2 * time.Minute // a keep-alive connection's silence
	sideConns = 256             // connections served at once; more wait to be accepted
)

// SideServer is an http.Server for h on a side listener: the request
// header within 10 s and the request within 30 s (a profile's answer may
// take longer: no write timeout), and a connection idle for 2 minutes
// closed. Go's server without IdleTimeout or ReadTimeout keeps an idle
// keep-alive connection for good.
func SideServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: sideIdle}
}

// SideListener is ln serving at most 256 connections at once; the next
// waits in the kernel's queue until one ends.
func SideListener(ln net.Listener) net.Listener { return netutil.LimitListener(ln, sideConns) }
