package connwatch

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"syscall"
	"time"
)

// After is how long both ends let an exchange wait before they watch its
// client's connection (NewHangup): most are answered sooner, at no cost;
// long polls, the exchanges whose clients give up, wait seconds.
const After = 50 * time.Millisecond

// StatusClientClosed is the status an exchange whose client hung up is
// logged and counted with: nginx's 499, since the client hears nothing.
const StatusClientClosed = 499

// state is what a peek found on a socket.
type state uint8

const (
	silent  state = iota // nothing to read yet
	pending              // bytes to read
	closed               // EOF, or the socket broke (a reset)
)

// Hangup notices a client hanging up while its request waits on something
// else (an origin, an upstream), which nothing reads the client's
// connection for meanwhile. An HTTP/1.1 server only learns of it when it
// writes the answer, so a long poll whose client gave up stays open
// upstream, takes the message the client's next poll was for, and holds
// a pooled connection until it ends.
//
// Start arms it for one request and Stop disarms it. A request answered
// within the delay given to NewHangup costs a timer's reset and stop and
// allocates nothing; past it, a goroutine waits on the netpoller for the
// socket to turn readable and peeks at it: EOF or a reset means the
// client hung up, and gone is called. Bytes mean the client sent more
// (a pipelined request): not a hang-up, and the watch ends there. A client
// that half-closes its side once its requests are sent is taken for one
// that hung up, as nginx takes it. It sees the socket under a TLS layer,
// where a TLS client that hangs up sends a close_notify alert before it
// closes: bytes. Where the socket can tell the peer's close behind unread
// bytes (Linux: POLLRDHUP, as nginx checks it), bytes that are one TLS
// record as long as an encrypted alert are waited past, and the close
// after them is a hang-up; any other bytes end the watch.
//
// A request that shares its connection with others (an HTTP/2 or HTTP/3
// stream) has no socket of its own to watch: its connection is a Stream,
// and the watch waits on the stream's context instead, which the server
// ends when the client resets the stream or the connection goes.
//
// A Hangup serves one request at a time; gone runs on the watching
// goroutine, before Stop returns, and must not call Stop.
type Hangup struct {
	after time.Duration
	gone  func()
	timer *time.Timer
	done  chan struct{}      // the watch ended
	wake  chan struct{}      // Stop ends a wait on a stream's context
	buf   [maxAlert + 1]byte // a peek: one byte, or what can be an alert

	mu       sync.Mutex
	conn     net.Conn        // watched, from Start to Stop
	ctx      context.Context // conn's, when it is a Stream
	watching bool            // waiting on conn's socket or ctx
	stopping bool
}

// Stream is a client connection that is one request's stream of a
// connection carrying others (HTTP/2, HTTP/3), whose socket says nothing
// of this request. Context is the stream's: the server ends it when the
// client resets the stream or the connection closes. It is called at
// Start, so it must not allocate; its Done is called only once the
// request has waited.
type Stream interface {
	net.Conn
	Context() context.Context
}

// NewHangup returns a Hangup that watches a connection once its request
// has waited after, and calls gone if the client hangs up.
func NewHangup(after time.Duration, gone func()) *Hangup {
	h := &Hangup{after: after, gone: gone, done: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	h.timer = time.AfterFunc(time.Hour, h.watch)
	h.timer.Stop()
	return h
}

// Start watches c, the server's side of the client's connection, from
// after on. Nothing may read c until Stop. A nil c, or one that is no
// Stream and whose socket cannot be peeked at, is not watched.
func (h *Hangup) Start(c net.Conn) {
	if c == nil {
		return
	}
	var ctx context.Context
	if s, ok := c.(Stream); ok {
		ctx = s.Context()
	} else if sc, _ := socket(c); !canPeek || sc == nil {
		return
	}
	h.mu.Lock()
	h.conn, h.ctx, h.stopping = c, ctx, false
	h.mu.Unlock()
	h.timer.Reset(h.after)
}

// Stop ends the watch, waiting for a watching goroutine to give the
// connection back (with no read deadline: the server sets its own before
// its next read).
func (h *Hangup) Stop() {
	if h.conn == nil {
		return
	}
	if !h.timer.Stop() {
		h.mu.Lock()
		h.stopping = true
		switch {
		case h.watching && h.ctx != nil:
			h.wake <- struct{}{}
		case h.watching:
			// Wakes the goroutine from its wait on the socket.
			_ = h.conn.SetReadDeadline(aLongTimeAgo)
		}
		h.mu.Unlock()
		<-h.done
		if h.ctx == nil {
			_ = h.conn.SetReadDeadline(time.Time{})
		}
		// A wake the watch ended too soon to take would end the next
		// one at once.
		select {
		case <-h.wake:
		default:
		}
	}
	h.mu.Lock()
	h.conn, h.ctx = nil, nil
	h.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

func (h *Hangup) watch() {
	h.mu.Lock()
	c, ctx := h.conn, h.ctx
	h.watching = !h.stopping
	if h.watching && ctx == nil {
		// The server's read deadline (its read timeout, armed when it read
		// the request) would end the wait in silence, and a client that
		// gave up a long poll after it would never be seen. Cleared under
		// mu, so a Stop's wake-up deadline comes after it; Stop leaves none.
		// A stream's deadline is its own and bounds no wait on ctx.
		_ = c.SetReadDeadline(time.Time{})
	}
	h.mu.Unlock()
	var gone bool
	switch {
	case !h.watching:
	case ctx != nil:
		select {
		case <-ctx.Done():
			gone = true
		case <-h.wake:
		}
	default:
		gone = hungUp(c, h.buf[:])
	}
	h.mu.Lock()
	h.watching = false
	gone = gone && !h.stopping
	h.mu.Unlock()
	if gone {
		h.gone()
	}
	h.done <- struct{}{}
}

// hungUp waits until c's socket is readable, or c's read deadline, and
// reports whether it was readable because the peer closed or reset it.
func hungUp(c net.Conn, buf []byte) bool {
	sc, overTLS := socket(c)
	if sc == nil {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	st := silent
	err = raw.Read(func(fd uintptr) bool {
		st = peek(fd, buf[:1])
		if st == pending && overTLS && seesClose && alertLike(buf[:peekN(fd, buf)]) {
			if peerClosed(fd) {
				st = closed
				return true
			}
			// The close may come in a segment of its own: the netpoller
			// wakes the wait again for it, or for more bytes.
			return false
		}
		return st != silent
	})
	return err == nil && st == closed
}

// maxAlert is the longest record alertLike takes, a block more than the
// longest alert crypto/tls reads: TLS 1.2's under CBC and HMAC-SHA256 (a
// 5-byte header, a 16-byte IV, then 2 bytes and the 32-byte MAC padded to
// 48).
const maxAlert = 5 + 16 + 64

// alertLike reports whether b, all the socket holds, is one TLS record
// that can be an alert (a close_notify), whole or begun: one of type alert
// (21), which TLS 1.2 sends in the clear, or of type application_data
// (23) as long as a TLS 1.3 alert is (its 2 bytes, the inner type and a
// 16-byte AEAD tag: 19; every TLS 1.3 suite crypto/tls serves has such a
// tag). Application data that short and followed by the close is a
// client's half-close after at most 2 bytes, which is a hang-up too.
func alertLike(b []byte) bool {
	if len(b) == 0 || (b[0] != 21 && b[0] != 23) {
		return false
	}
	if len(b) < 5 {
		return len(b) < 2 || b[1] == 3
	}
	n := int(b[3])<<8 | int(b[4])
	if b[1] != 3 || (b[0] == 23 && n != 19) || 5+n > maxAlert {
		return false
	}
	return len(b) <= 5+n
}

// socket is the socket under c, unwrapping what wraps it (*tls.Conn and
// others with a NetConn method); nil if there is none. overTLS is whether
// a *tls.Conn was among them.
func socket(c net.Conn) (_ syscall.Conn, overTLS bool) {
	for range 4 {
		if sc, ok := c.(syscall.Conn); ok {
			return sc, overTLS
		}
		_, isTLS := c.(*tls.Conn)
		overTLS = overTLS || isTLS
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		c = u.NetConn()
	}
	return nil, false
}

// Abort lets another goroutine abandon an exchange with an upstream (a
// client that hung up: Hangup): it closes the connection the exchange is
// on, so that the wait for its answer ends, and that connection never
// goes back to a pool. A nil *Abort abandons nothing.
type Abort struct {
	mu      sync.Mutex
	aborted bool
	conn    net.Conn
}

// Reset readies a for the next exchange.
func (a *Abort) Reset() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.aborted, a.conn = false, nil
	a.mu.Unlock()
}

// Attach notes c as the connection the exchange goes out on; false when it
// was abandoned already, and c is the caller's to close.
func (a *Abort) Attach(c net.Conn) bool {
	if a == nil {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conn = c
	return !a.aborted
}

// Detach forgets the connection before it goes back to its pool; false
// when the exchange was abandoned, and the connection must be closed.
func (a *Abort) Detach() bool {
	if a == nil {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conn = nil
	return !a.aborted
}

// Abort abandons the exchange, closing its connection if it has one.
func (a *Abort) Abort() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aborted = true
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

// Aborted reports whether the exchange was abandoned.
func (a *Abort) Aborted() bool {
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.aborted
}
