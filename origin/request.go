package origin

import (
	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
)

var (
	nameHost          = []byte("Host")
	nameXForwardedFor = []byte("X-Forwarded-For")
	nameForwarded     = []byte("Forwarded")
	nameXRequestID    = []byte("X-Request-Id")
	nameXFwdProto     = []byte("X-Forwarded-Proto")
	nameXFwdHost      = []byte("X-Forwarded-Host")
	nameXRealIP       = []byte("X-Real-Ip")
)

// buildRequest writes req into freq as an upstream will see it: the fields
// forwardFields gives, after Host. b is scratch space, returned for reuse.
//
// Special-header handling is off so fasthttp writes every field as given,
// in order and with its case, Host included, and adds only the body's
// Content-Length.
func buildRequest(freq *fasthttp.Request, req *wire.Request, defaultHost string, b []byte) []byte {
	h := &freq.Header
	h.DisableSpecialHeader()
	h.DisableNormalizing()
	h.SetMethodBytes(req.Method)
	b = append(b[:0], req.Path...)
	if len(b) == 0 {
		b = append(b, '/')
	}
	if len(req.Query) > 0 {
		b = append(b, '?')
		b = append(b, req.Query...)
	}
	h.SetRequestURIBytes(b)
	if len(req.Host) > 0 && abi.ValidHeaderValue(req.Host) {
		h.AddBytesKV(nameHost, req.Host)
	} else {
		h.AddBytesKV(nameHost, append(b[:0], defaultHost...))
	}
	b = forwardFields(req, b, h.AddBytesKV)
	// The envelope's body outlives freq, which only reads it.
	freq.SetBodyRaw(req.Body)
	return b
}

// forwardFields gives add the header fields an application behind the
// origin sees, as a proxy passes them on (Proxy, and HTTP in the origin's
// process): the fields in the order the client sent them, minus hop-by-hop
// ones and any a client may not set (wire.Reserved: Wedge-Value-* in any
// spelling); then, from an edge, X-Real-Ip, X-Forwarded-Proto and
// X-Forwarded-Host in place of the client's; then X-Forwarded-For with
// the hop the edge saw appended (wire.Request.Peer, else the client) and
// Forwarded with the client appended; then X-Request-Id, the envelope's ID
// (the one the edge's and the origin's logs name the request by), in place
// of any a client sent, so an application can log it and a client cannot
// choose it; then the forwarded values. add keeps no reference to what it
// is given. b is scratch space, returned for reuse.
func forwardFields(req *wire.Request, b []byte, add func(name, value []byte)) []byte {
	conn := false
	for i := range req.Header {
		if asciiEqualFold(req.Header[i].Name, "connection") {
			conn = true
			break
		}
	}
	// An edge says who the client is and how it came: what a client sent
	// in these fields is replaced, not passed on, since frameworks that
	// trust one proxy hop (Express, Rails, Django) take the scheme, host
	// and address from them (a faked https, or a faked host in the links
	// of a password reset).
	edge := len(req.Client) > 0 && abi.ValidHeaderValue(req.Client)
	for i := range req.Header {
		f := &req.Header[i]
		if dropRequestField(f) || (conn && listedInConnection(req.Header, f.Name)) ||
			asciiEqualFold(f.Name, "x-forwarded-for") || asciiEqualFold(f.Name, "forwarded") ||
			(len(req.ID) > 0 && asciiEqualFold(f.Name, "x-request-id")) ||
			(edge && (asciiEqualFold(f.Name, "x-forwarded-proto") || asciiEqualFold(f.Name, "x-forwarded-host") ||
				asciiEqualFold(f.Name, "x-real-ip"))) {
			continue
		}
		add(f.Name, f.Value)
	}
	if edge {
		add(nameXRealIP, req.Client)
		if abi.ValidToken(req.Scheme) {
			add(nameXFwdProto, req.Scheme)
		}
		if len(req.Host) > 0 && abi.ValidHeaderValue(req.Host) {
			add(nameXFwdHost, req.Host)
		}
	}

	b = joinFields(b[:0], req.Header, "x-forwarded-for")
	// Each hop appends the address it got the request from: the client's,
	// or, when the edge took the client from a trusted proxy's
	// X-Forwarded-For (wire.Request.Peer), that proxy's, already in the
	// chain to its left.
	hop := req.Client
	if len(req.Peer) > 0 && len(hop) > 0 {
		hop = req.Peer
	}
	if len(hop) > 0 && abi.ValidHeaderValue(hop) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, hop...)
	}
	if len(b) > 0 {
		add(nameXForwardedFor, b)
	}
	b = joinFields(b[:0], req.Header, "forwarded")
	if len(req.Client) > 0 {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = appendForwarded(b, req)
	}
	if len(b) > 0 {
		add(nameForwarded, b)
	}
	if len(req.ID) > 0 && abi.ValidHeaderValue(req.ID) {
		add(nameXRequestID, req.ID)
	}

	for i := range req.Values {
		v := &req.Values[i]
		if !abi.ValidToken(v.Name) || !abi.ValidHeaderValue(v.Value) {
			continue
		}
		b = append(append(b[:0], valuePrefix...), v.Name...)
		add(b, v.Value)
	}
	return b
}

// dropRequestField reports whether a client's field stays at the proxy:
// malformed, hop-by-hop, framing that fasthttp sets from the body, Host
// (the envelope carries it), or reserved to Wedge (wire.Reserved: a claim
// to be a forwarded value, in whatever spelling a gateway would read as
// one). The edge drops reserved fields too; the origin does again because
// it is the last hop before the application.
func dropRequestField(f *wire.Field) bool {
	return !abi.ValidToken(f.Name) || !abi.ValidHeaderValue(f.Value) || wire.HopByHop(f.Name) ||
		asciiEqualFold(f.Name, "content-length") || asciiEqualFold(f.Name, "host") ||
		wire.Reserved(f.Name)
}

// joinFields appends the values of the fields named name, comma separated,
// as one field would carry them (RFC 9110 §5.3).
func joinFields(b []byte, fs []wire.Field, name string) []byte {
	for i := range fs {
		if asciiEqualFold(fs[i].Name, name) && abi.ValidHeaderValue(fs[i].Value) && len(fs[i].Value) > 0 {
			if len(b) > 0 {
				b = append(b, ", "...)
			}
			b = append(b, fs[i].Value...)
		}
	}
	return b
}

// appendForwarded appends this hop's Forwarded element (RFC 7239 §4):
// for=client;proto=scheme;host=host.
func appendForwarded(b []byte, req *wire.Request) []byte {
	b = append(b, "for="...)
	if bytesContains(req.Client, ':') {
		// An IPv6 address goes in brackets, which a token cannot hold.
		b = append(b, `"[`...)
		b = appendEscaped(b, req.Client)
		b = append(b, `]"`...)
	} else {
		b = appendParam(b, req.Client)
	}
	if len(req.Scheme) > 0 {
		b = append(b, ";proto="...)
		b = appendParam(b, req.Scheme)
	}
	if len(req.Host) > 0 {
		b = append(b, ";host="...)
		b = appendParam(b, req.Host)
	}
	return b
}

// appendParam appends v as a token if it is one, else as a quoted string.
func appendParam(b, v []byte) []byte {
	if abi.ValidToken(v) {
		return append(b, v...)
	}
	b = append(b, '"')
	b = appendEscaped(b, v)
	return append(b, '"')
}

func appendEscaped(b, v []byte) []byte {
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\r' || c == '\n' || c == 0:
			// dropped: a field value cannot hold them
		default:
			b = append(b, c)
		}
	}
	return b
}

func bytesContains(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// copyUpstream fills resp from an upstream's answer: status, the fields
// minus malformed and hop-by-hop ones and Content-Length (the envelope's body defines
// it; but an answer to HEAD, head, has no body to define it, and keeps
// the one that says how long a GET's would be, RFC 9110 §9.3.2), the body,
// and purge tags. b is scratch space.
//
// fasthttp keeps repeated fields of one name in order, Set-Cookie included,
// and keeps the order of ordinary fields, but lists Content-Type,
// Content-Encoding, Server and Set-Cookie ahead of them and keeps only the
// last of a repeated Content-Type, Content-Encoding or Server. The order of
// fields with different names carries no meaning (RFC 9110 §5.3).
//
// A response without Content-Type stays without one: fasthttp would list
// its default, text/plain, which a 304 would then write over a cached
// image's type (RFC 9110 §8.3 leaves a missing type to the recipient).
func copyUpstream(resp *wire.Response, fresp *fasthttp.Response, head bool, b []byte) {
	fresp.Header.SetNoDefaultContentType(true)
	resp.Status = uint64(fresp.StatusCode())
	conn := b[:0]
	for k, v := range fresp.Header.All() {
		if asciiEqualFold(k, "connection") {
			if len(conn) > 0 {
				conn = append(conn, ',')
			}
			conn = append(conn, v...)
			continue
		}
		// fasthttp lets a name with spaces through; the edge would write
		// it out to its client as given.
		if !abi.ValidToken(k) || !abi.ValidHeaderValue(v) || wire.HopByHop(k) || asciiEqualFold(k, "content-length") && !head {
			continue
		}
		resp.AddHeader(k, v)
	}
	if len(conn) > 0 {
		// Fields that Connection names are this hop's only.
		k := 0
		for i := range resp.Header {
			if hasToken(conn, resp.Header[i].Name) {
				continue
			}
			// Swap rather than overwrite, so the dropped field's buffers
			// stay in the slice for reuse.
			resp.Header[k], resp.Header[i] = resp.Header[i], resp.Header[k]
			k++
		}
		resp.Header = resp.Header[:k]
	}
	resp.Body = append(resp.Body[:0], fresp.Body()...)
	fillTags(resp)
}
