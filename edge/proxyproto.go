package edge

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/talowa/wedge/internal/connx"
)

// ProxyProtocolConfig is the PROXY protocol (v1 and v2, as HAProxy,
// AWS NLB and GCP's TCP load balancer send it) on the HTTP and TLS
// listeners (proxy_protocol in the config), for a node behind an L4 load
// balancer: the balancer's connection opens with a header naming the
// client's address, which then stands for the socket's everywhere the
// client's address is used (ratelimit's ip key, a canary split by
// address, the access log, X-Forwarded-For, Forwarded and X-Real-Ip to
// the application).
//
// A connection from a trusted address must open with a header, within
// limits.read_timeout; one from any other address must not carry one.
// Either kind of connection that breaks its rule is closed without an
// answer, logged at debug and counted in
// wedge_edge_proxy_protocol_refused_total by reason: missing (a trusted
// peer sent none, or nothing within read_timeout), malformed,
// unsupported (a header for a transport other than TCP), timeout (a
// header begun and not finished within read_timeout) or untrusted (a
// header from an address not in Trusted). A header with the LOCAL
// command (a balancer's own health check) or v1's UNKNOWN keeps the
// socket's addresses, as the protocol says. HTTP/3 (UDP) carries no
// header.
type ProxyProtocolConfig struct {
	// Trusted lists the load balancers' addresses and CIDR ranges, e.g.
	// ["10.0.0.0/8", "192.0.2.10"]. Required: an empty list would refuse
	// every connection.
	Trusted []string `yaml:"trusted"`

	policy proxyproto.ConnPolicyFunc
}

// validate parses Trusted into the listeners' policy. Untrusted peers
// get REJECT rather than IGNORE: a client that sends a header directly
// is refused and counted, so a balancer left out of Trusted shows in the
// metric rather than as every client served under its address.
func (p *ProxyProtocolConfig) validate() error {
	if len(p.Trusted) == 0 {
		return errors.New("proxy_protocol: trusted is empty: every connection would be refused")
	}
	var err error
	if p.policy, err = proxyproto.PolicyFromRanges(p.Trusted, proxyproto.REQUIRE, proxyproto.REJECT); err != nil {
		return fmt.Errorf("proxy_protocol: trusted: %w", err)
	}
	return nil
}

// trusted is Trusted, nil when the block is absent (the protocol off).
func (p *ProxyProtocolConfig) trusted() []string {
	if p == nil {
		return nil
	}
	return p.Trusted
}

// errProxyTransport refuses a PROXY header for anything but TCP: the
// node's client address is a TCP address (fasthttp's RemoteIP reads one).
var errProxyTransport = errors.New("proxy protocol: header for a transport other than TCP")

// tcpHeader is the listeners' header validator.
func tcpHeader(h *proxyproto.Header) error {
	if h.Command.IsLocal() {
		return nil // the socket's addresses stand
	}
	if _, _, ok := h.TCPAddrs(); !ok {
		return errProxyTransport
	}
	return nil
}

// proxied is ln reading the PROXY protocol header of each connection, as
// proxy_protocol configures it; ln itself when it is off. The header is
// read on a connection's first read (or RemoteAddr), by the goroutine
// that serves it, so a slow header holds up no other connection.
func (n *Node) proxied(ln net.Listener) net.Listener {
	pp := n.cfg.ProxyProtocol
	if pp == nil {
		return ln
	}
	return proxyListener{n: n, Listener: &proxyproto.Listener{
		Listener:          ln,
		ConnPolicy:        pp.policy,
		ValidateHeader:    tcpHeader,
		ReadHeaderTimeout: time.Duration(n.cfg.Limits.ReadTimeout),
	}}
}

type proxyListener struct {
	net.Listener
	n *Node
}

func (l proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	pc, ok := c.(*proxyproto.Conn)
	if !ok {
		return c, nil // a policy of SKIP, which proxied never sets up
	}
	return &proxyConn{Conn: pc, pc: pc, n: l.n}, nil
}

// proxyConn is a connection whose PROXY header the library reads; it
// counts and logs a connection refused for its header.
type proxyConn struct {
	net.Conn // pc: RemoteAddr is the header's source
	pc       *proxyproto.Conn
	n        *Node
	read     atomic.Bool // the first read, the header's, is done
}

// Read fails from the first read on when the header was refused, with
// the library's error: fasthttp takes an error on a connection's first
// byte for the client going away and closes it without an answer, and a
// TLS handshake fails with it.
func (c *proxyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.read.Load() && !c.read.Swap(true) && err != nil {
		c.refused(err)
	}
	return n, err
}

// SetReadDeadline is the library's until the first read is done: it
// keeps the deadline, and bounds the header's read by it. After, it is
// the socket's: the library keeps each deadline boxed in an atomic.Value,
// an allocation for each of the two fasthttp sets per request.
func (c *proxyConn) SetReadDeadline(t time.Time) error {
	if c.read.Load() {
		return c.pc.Raw().SetReadDeadline(t)
	}
	return c.pc.SetReadDeadline(t)
}

// Write before the first read goes to the socket: fasthttp's accept loop
// writes its 503 to a connection past max_conns before anything reads
// it, and the library would read the PROXY header first, holding the
// loop, and every connection behind it, for up to read_timeout on a peer
// that sends nothing.
func (c *proxyConn) Write(p []byte) (int, error) {
	if !c.read.Load() {
		return c.pc.Raw().Write(p)
	}
	return c.Conn.Write(p)
}

// SetDeadline is SetReadDeadline's and SetWriteDeadline's.
func (c *proxyConn) SetDeadline(t time.Time) error {
	if c.read.Load() {
		return c.pc.Raw().SetDeadline(t)
	}
	return c.pc.SetDeadline(t)
}

// refused counts and logs the first read's error if the header caused it.
func (c *proxyConn) refused(err error) {
	var ne net.Error
	reason := "malformed"
	switch {
	case errors.Is(err, proxyproto.ErrSuperfluousProxyHeader):
		reason = "untrusted"
	case c.pc.ProxyHeaderPolicy == proxyproto.REJECT:
		return // the header was not the cause: the client went away
	case c.pc.ProxyHeader() != nil:
		return // a header was read: the client went away after it
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		reason = "missing"
	case errors.Is(err, errProxyTransport):
		reason = "unsupported"
	case errors.As(err, &ne) && ne.Timeout():
		reason = "timeout"
	}
	c.n.m.proxyRefused.WithLabelValues(reason).Inc()
	c.n.log.Debug("proxy protocol: connection refused", "peer", c.pc.Raw().RemoteAddr().String(), "reason", reason, "err", err)
}

// NetConn is the socket, for connwatch.Hangup: it peeks at the socket
// for a hang-up, which bytes the library buffered do not hide.
func (c *proxyConn) NetConn() net.Conn { return c.pc.Raw() }

// CloseWrite half-closes the socket: a WebSocket tunnel passes on the end
// of the application's direction so (closeWrite in tunnel.go).
func (c *proxyConn) CloseWrite() error { return connx.CloseWrite(c.pc.Raw()) }
