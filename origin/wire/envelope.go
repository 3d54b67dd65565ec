package wire

import "bytes"

// Version is the envelope protocol version this package speaks. A peer that
// receives any other version refuses the envelope (ErrVersion): fields may be
// added within a version, never changed in meaning.
const Version = 1

// Bytes is a CBOR byte string that decodes into its own spare capacity, so a
// Request or Response reused across exchanges decodes without allocating.
// HTTP names and values are octets (RFC 9110 §5.5), so every textual field of
// the envelope is a byte string rather than a UTF-8 text string.
type Bytes []byte

// UnmarshalBinary copies b into the receiver's existing capacity. The CBOR
// decoder calls it for every byte string, with b pointing into the input.
func (p *Bytes) UnmarshalBinary(b []byte) error {
	*p = append((*p)[:0], b...)
	return nil
}

// Field is one header field or one forwarded value: a name and a value, in
// the order they were sent. Repeated names stay separate fields.
type Field struct {
	_     struct{} `cbor:",toarray"`
	Name  Bytes
	Value Bytes
}

// Request is what an edge sends to the origin for a request no plugin
// answered. The CBOR map keys are the integers in the tags; README.md has the
// CDDL.
type Request struct {
	// Version is the protocol version; encoders set it to Version.
	Version uint64 `cbor:"1,keyasint"`
	// ID identifies the request across edge, origin and upstream logs.
	ID     Bytes `cbor:"2,keyasint,omitempty"`
	Method Bytes `cbor:"3,keyasint,omitempty"`
	Scheme Bytes `cbor:"4,keyasint,omitempty"`
	Host   Bytes `cbor:"5,keyasint,omitempty"`
	Path   Bytes `cbor:"6,keyasint,omitempty"`
	// Query is the raw query, without the '?'.
	Query  Bytes   `cbor:"7,keyasint,omitempty"`
	Header []Field `cbor:"8,keyasint,omitempty"`
	Body   Bytes   `cbor:"9,keyasint,omitempty"`
	// Client is the client's IP address in text form.
	Client Bytes `cbor:"10,keyasint,omitempty"`
	POP    Bytes `cbor:"11,keyasint,omitempty"`
	Region Bytes `cbor:"12,keyasint,omitempty"`
	// Values are the request-scoped values edge plugins marked for
	// forwarding: typically the verified identity.
	Values []Field `cbor:"13,keyasint,omitempty"`
	// Timeout is the time left, in microseconds, when the edge sent the
	// request; 0 means the edge set none. A relative budget rather than a
	// deadline, so the two clocks need not agree.
	Timeout uint64 `cbor:"14,keyasint,omitempty"`
	// Peer is the address of the proxy the edge's connection came from,
	// set only when Client is not it: the edge took Client from the
	// X-Forwarded-For of a proxy it trusts (trusted_proxies). The origin
	// appends Peer, not Client, to the X-Forwarded-For it passes on, so
	// the chain stays one address per hop.
	Peer Bytes `cbor:"15,keyasint,omitempty"`
}

// Response is the origin's answer.
type Response struct {
	Status uint64  `cbor:"1,keyasint"`
	Header []Field `cbor:"2,keyasint,omitempty"`
	Body   Bytes   `cbor:"3,keyasint,omitempty"`
	Cache  Hints   `cbor:"4,keyasint,omitempty"`
	// Error is set when the origin service made this response itself
	// (a 502, 503 or 504): why the application could not answer.
	Error Bytes `cbor:"5,keyasint,omitempty"`
	// Interim are the informational (1xx) responses the application sent
	// before this one, in order, such as 103 Early Hints: an HTTP proxy
	// forwards them (RFC 9110 §15.2). At most MaxInterim.
	Interim []Interim `cbor:"6,keyasint,omitempty"`
	// Scope says, on a response with Error set, how far the failure
	// reaches: ScopeRequest or ScopeOrigin. An edge's circuit breaker
	// needs to tell one request's failure from an origin that can serve
	// nothing; 0 is a sender that predates the field (see OriginDown).
	Scope uint64 `cbor:"7,keyasint,omitempty"`
}

// Values of Response.Scope. Others are read as absent.
const (
	// ScopeRequest is a failure confined to this request: its upstream
	// timed out, closed the connection, or sent an invalid or too large
	// response. The origin serves other requests.
	ScopeRequest = 1
	// ScopeOrigin is an origin service that cannot serve any request now:
	// no upstream is in rotation, or none would take a connection.
	ScopeOrigin = 2
)

// OriginDown reports whether r is a failure the origin service made
// because it cannot serve any request now, rather than one confined to
// this request. When the sender set no Scope it goes by the status: before
// Scope, only a 503 (no healthy upstream) meant that.
func (r *Response) OriginDown() bool {
	if len(r.Error) == 0 {
		return false
	}
	switch r.Scope {
	case ScopeRequest:
		return false
	case ScopeOrigin:
		return true
	}
	return r.Status == 503
}

// Interim is one informational response: a status of 102 to 199 and its
// header fields. 100 Continue and 101 Switching Protocols answer what one
// connection asked for and never travel in an envelope.
type Interim struct {
	_      struct{} `cbor:",toarray"`
	Status uint64
	Header []Field
}

// MaxInterim bounds the informational responses of one envelope.
const MaxInterim = 8

// AddHeader appends a header field, reusing spare capacity.
func (r *Interim) AddHeader(name, value []byte) { r.Header = appendField(r.Header, name, value) }

// AddInterim appends an informational response with status and no fields,
// reusing spare capacity, and returns it for its fields to be added.
func (r *Response) AddInterim(status uint64) *Interim {
	if len(r.Interim) < cap(r.Interim) {
		r.Interim = r.Interim[:len(r.Interim)+1]
	} else {
		r.Interim = append(r.Interim, Interim{})
	}
	in := &r.Interim[len(r.Interim)-1]
	in.Status, in.Header = status, in.Header[:0]
	return in
}

// Hints are what the origin knows about caching the response beyond its
// header fields. They are advice for the edge's cache; the response's own
// Cache-Control still governs where it says more.
type Hints struct {
	// TTL is a shared freshness lifetime in seconds that an in-process
	// application set without writing Cache-Control; 0 means no hint.
	TTL uint64 `cbor:"1,keyasint,omitempty"`
	// Stale is how many seconds past TTL the edge may serve the response
	// while it revalidates or while the origin fails.
	Stale uint64 `cbor:"2,keyasint,omitempty"`
	// Tags are the purge tags, gathered from Surrogate-Key and Cache-Tag.
	Tags []Bytes `cbor:"3,keyasint,omitempty"`
	// Shared counts the other requests this one answered when the origin
	// collapsed identical concurrent requests.
	Shared uint64 `cbor:"4,keyasint,omitempty"`
}

// Reset empties r for reuse, keeping its buffers.
func (r *Request) Reset() {
	*r = Request{
		ID: r.ID[:0], Method: r.Method[:0], Scheme: r.Scheme[:0], Host: r.Host[:0],
		Path: r.Path[:0], Query: r.Query[:0], Header: r.Header[:0], Body: r.Body[:0],
		Client: r.Client[:0], POP: r.POP[:0], Region: r.Region[:0], Values: r.Values[:0],
		Peer: r.Peer[:0],
	}
}

// Reset empties r for reuse, keeping its buffers.
func (r *Response) Reset() {
	*r = Response{
		Header: r.Header[:0], Body: r.Body[:0], Error: r.Error[:0],
		Cache: Hints{Tags: r.Cache.Tags[:0]}, Interim: r.Interim[:0],
	}
}

// AddHeader appends a header field, reusing spare capacity.
func (r *Request) AddHeader(name, value []byte) { r.Header = appendField(r.Header, name, value) }

// AddValue appends a forwarded value, reusing spare capacity.
func (r *Request) AddValue(name, value []byte) { r.Values = appendField(r.Values, name, value) }

// AddHeader appends a header field, reusing spare capacity.
func (r *Response) AddHeader(name, value []byte) { r.Header = appendField(r.Header, name, value) }

func appendField(fs []Field, name, value []byte) []Field {
	if len(fs) < cap(fs) {
		fs = fs[:len(fs)+1]
	} else {
		fs = append(fs, Field{})
	}
	f := &fs[len(fs)-1]
	f.Name = append(f.Name[:0], name...)
	f.Value = append(f.Value[:0], value...)
	return fs
}

// Get returns the value of the first field named name (ASCII
// case-insensitive), and whether there was one.
func Get(fs []Field, name string) ([]byte, bool) {
	for i := range fs {
		if asciiEqualFold(fs[i].Name, name) {
			return fs[i].Value, true
		}
	}
	return nil, false
}

// HopByHop reports whether a field belongs to one connection rather than
// to the message (RFC 9110 §7.6.1): Connection, Keep-Alive, TE, Trailer,
// Transfer-Encoding, Upgrade, and Proxy-Connection, Proxy-Authenticate and
// Proxy-Authorization, which are for the proxy and not the application.
// Such fields never travel in an envelope. Not every Proxy- field: RFC
// 9209's Proxy-Status is for the client.
func HopByHop[S ~string | ~[]byte](name S) bool {
	switch len(name) {
	case 2:
		return asciiEqualFold(name, "te")
	case 7:
		return asciiEqualFold(name, "trailer") || asciiEqualFold(name, "upgrade")
	case 10:
		return asciiEqualFold(name, "connection") || asciiEqualFold(name, "keep-alive")
	case 16:
		return asciiEqualFold(name, "proxy-connection")
	case 17:
		return asciiEqualFold(name, "transfer-encoding")
	case 18:
		return asciiEqualFold(name, "proxy-authenticate")
	case 19:
		return asciiEqualFold(name, "proxy-authorization")
	}
	return false
}

func asciiEqualFold[S ~string | ~[]byte](b S, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Equal reports whether two field lists are the same, in order.
func Equal(a, b []Field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Name, b[i].Name) || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}
