package edge

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"
)

// proxySet is trusted_proxies parsed (Config.TrustedProxies): the L7
// proxies (an HTTP load balancer, a CDN) whose X-Forwarded-For names the
// client. nil when the option is off.
type proxySet []netip.Prefix

// parseProxySet reads addresses ("192.0.2.10", "2001:db8::1") and CIDR
// ranges ("10.0.0.0/8"). An IPv4 address in IPv6 form is taken as the
// IPv4 one, as the peers it is compared with are.
func parseProxySet(list []string) (proxySet, error) {
	if len(list) == 0 {
		return nil, nil
	}
	s := make(proxySet, 0, len(list))
	for _, e := range list {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, aerr := netip.ParseAddr(e)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("trusted_proxies: %q: want an IP address or a CIDR range", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("trusted_proxies: %q: an IPv4-mapped range needs a prefix of 96 bits or more", e)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		s = append(s, p.Masked())
	}
	return s, nil
}

func (s proxySet) contains(a netip.Addr) bool {
	for _, p := range s {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// xffWalk finds the client in the X-Forwarded-For fields of a request from
// a trusted proxy, as nginx's real_ip_recursive and Envoy's trusted hops
// do: right to left over the elements of all the fields in order, trusted
// proxies are skipped and the first address that is not one is the
// client; when all are trusted, the left-most is. A malformed element
// ends the walk, and the client is the last address known good, the
// element to its right (the peer when it is the right-most): what a
// client wrote left of a hop the edge cannot read is no more believable
// than the hop.
//
// It reads the fields left to right, as they lie in the header, and keeps
// what the right-to-left walk would end on: the last element that is not
// a trusted address (untrusted or malformed), and the element after it.
// It allocates nothing for well-formed elements.
type xffWalk struct {
	trusted proxySet
	first   netip.Addr // the left-most address, the client when all are trusted
	client  netip.Addr // past a stop: where the walk ends
	stopped bool       // an untrusted or a malformed element was seen
	pending bool       // the last stop was malformed: the next address is the client
}

// field takes one X-Forwarded-For field's value: elements separated by
// commas, each with optional blanks around it. Empty elements are ignored
// (RFC 9110 section 5.6.1).
func (w *xffWalk) field(v []byte) {
	for len(v) > 0 {
		e := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		e = bytes.Trim(e, " \t")
		if len(e) == 0 {
			continue
		}
		w.element(e)
	}
}

func (w *xffWalk) element(e []byte) {
	a, ok := parseHop(e)
	if !ok {
		w.stopped, w.pending, w.client = true, true, netip.Addr{}
		return
	}
	if !w.first.IsValid() {
		w.first = a
	}
	switch {
	case !w.trusted.contains(a):
		w.stopped, w.pending, w.client = true, false, a
	case w.pending:
		w.pending, w.client = false, a
	}
}

// result is the client the fields name; false when they name none (no
// address at all, or the right-most element malformed): the peer stands.
func (w *xffWalk) result() (netip.Addr, bool) {
	if !w.stopped {
		return w.first, w.first.IsValid()
	}
	return w.client, w.client.IsValid()
}

// parseHop reads one X-Forwarded-For element: an IP address, an IPv4
// address with a port (192.0.2.1:4711) or an IPv6 address in brackets,
// with or without a port ([2001:db8::1]:4711), as some balancers write
// them. The port is not kept. Anything else, an IPv6 address with a zone
// or the "unknown" of RFC 7239 among them, is malformed.
func parseHop(e []byte) (netip.Addr, bool) {
	if bytes.IndexByte(e, '%') >= 0 {
		// A zone names an interface of the host that wrote it, not a
		// client (and netip interns it).
		return netip.Addr{}, false
	}
	host := e
	if e[0] == '[' {
		end := bytes.IndexByte(e, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = e[1:end]
		if rest := e[end+1:]; len(rest) > 0 && (rest[0] != ':' || !portDigits(rest[1:])) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(b2s(host))
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if i := bytes.IndexByte(e, ':'); i >= 0 && bytes.IndexByte(e[i+1:], ':') < 0 {
		// One colon: IPv4 and a port (an IPv6 address has two or more).
		if !portDigits(e[i+1:]) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(b2s(e[:i]))
		if err != nil || !a.Is4() {
			return netip.Addr{}, false
		}
		return a, true
	}
	a, err := netip.ParseAddr(b2s(host))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// portDigits reports whether p is a port number: 1 to 5 digits, at most
// 65535.
func portDigits(p []byte) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// realAddr is the client address a request stands for when a trusted
// proxy named it: set on the request (RequestCtx.SetRemoteAddr), so every
// reader of the client's address (fromHTTP's client_addr for plugins and
// the origin, a canary's split, the access log, the per-client tunnel
// bound) takes it with no change of its own, as they take a PROXY
// header's. Pooled: a request that sets one allocates nothing.
type realAddr struct {
	tcp  net.TCPAddr
	ip   [16]byte
	peer netip.Addr // the proxy the connection came from
}

var realAddrPool = sync.Pool{New: func() any { return new(realAddr) }}

// realClient sets the client a trusted proxy's X-Forwarded-For names as
// the request's address, and returns what releaseClient gives back after
// the request (its access log line included) is done; nil, with nothing
// set, when the option is off, the peer is not trusted or the fields
// name no client. The peer is the connection's address, or the PROXY
// header's with proxy_protocol.
func (n *Node) realClient(ctx *fasthttp.RequestCtx) *realAddr {
	peer := peerAddr(ctx.RemoteAddr())
	if !peer.IsValid() || !n.cfg.trustedProxies.contains(peer) {
		return nil
	}
	w := xffWalk{trusted: n.cfg.trustedProxies}
	for f := (fields{ctx.Request.Header.RawHeaders()}); ; {
		k, v, ok := f.next()
		if !ok {
			break
		}
		if strings.EqualFold(b2s(k), "X-Forwarded-For") {
			w.field(v)
		}
	}
	client, ok := w.result()
	if !ok {
		return nil
	}
	r := realAddrPool.Get().(*realAddr)
	r.peer = peer
	if client.Is4() {
		b := client.As4()
		r.tcp.IP = r.ip[:copy(r.ip[:], b[:])]
	} else {
		r.ip = client.As16()
		r.tcp.IP = r.ip[:]
	}
	// X-Forwarded-For carries no port for the client's own connection.
	r.tcp.Port = 0
	ctx.SetRemoteAddr(&r.tcp)
	return r
}

// releaseClient gives the connection's address back to the request's
// context, which fasthttp keeps for the connection's next request.
func releaseClient(ctx *fasthttp.RequestCtx, r *realAddr) {
	ctx.SetRemoteAddr(nil)
	realAddrPool.Put(r)
}

// peerAddr is a's IP address, an IPv4 one in IPv6 form as IPv4; invalid
// for an address of another kind.
func peerAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr: // HTTP/3
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}
