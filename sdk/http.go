package sdk

import (
	"slices"
	"strings"

	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

// Request is the client's request. Its methods are host calls: the request
// itself stays in the host. Writes are allowed in the request phase only.
type Request struct{}

// Response is, in the request phase, the answer the plugin may build (header
// fields set on it reach the client's response when the plugin continues,
// whichever plugin or origin produces it, and plugins behind this one never
// see them: wasm/abi/README.md section 4; its status and body only go out
// if the plugin returns Answer); in the response phase, the response on its
// way to the client.
type Response struct{}

func field(f abi.Field) string {
	return string(fetch(func(b []byte) int32 { return hostcall.FieldGet(f, b) }))
}

// Method is the request method, "GET".
func (Request) Method() string { return field(abi.FieldMethod) }

// AppendMethod appends the request method to dst, for hot paths that must
// not allocate a string.
func (Request) AppendMethod(dst []byte) []byte {
	return append(dst, fetch(func(b []byte) int32 { return hostcall.FieldGet(abi.FieldMethod, b) })...)
}

// Scheme is "http" or "https".
func (Request) Scheme() string { return field(abi.FieldScheme) }

// Host is the host the client asked for, with any port.
func (Request) Host() string { return field(abi.FieldHost) }

// Path is the request path as received, percent-encoded, without query.
func (Request) Path() string { return field(abi.FieldPath) }

// AppendPath appends the path to dst, for hot paths that must not
// allocate a string.
func (Request) AppendPath(dst []byte) []byte {
	return append(dst, fetch(func(b []byte) int32 { return hostcall.FieldGet(abi.FieldPath, b) })...)
}

// RawQuery is the query string without '?'.
func (Request) RawQuery() string { return field(abi.FieldRawQuery) }

// Proto is the protocol, "HTTP/1.1".
func (Request) Proto() string { return field(abi.FieldProto) }

// ClientAddr is the client's address, "203.0.113.7:51234".
func (Request) ClientAddr() string { return field(abi.FieldClientAddr) }

// AppendClientAddr appends the client's address to dst, for hot paths
// that must not allocate a string.
func (Request) AppendClientAddr(dst []byte) []byte {
	return append(dst, fetch(func(b []byte) int32 { return hostcall.FieldGet(abi.FieldClientAddr, b) })...)
}

// ID is the host-assigned request id.
func (Request) ID() string { return field(abi.FieldRequestID) }

// SetMethod rewrites the method sent to the origin.
func (Request) SetMethod(v string) error {
	return errAt("Request.SetMethod", "an RFC 9110 token", hostcall.FieldSet(abi.FieldMethod, bytesOf(v)))
}

// SetHost rewrites the host sent to the origin.
func (Request) SetHost(v string) error {
	return errAt("Request.SetHost", `printable ASCII without / ? # @ \`, hostcall.FieldSet(abi.FieldHost, bytesOf(v)))
}

// SetPath rewrites the path sent to the origin; it starts with '/'.
func (Request) SetPath(v string) error {
	return errAt("Request.SetPath", "'/' then printable ASCII without ? or # (SetRawQuery sets the query)", hostcall.FieldSet(abi.FieldPath, bytesOf(v)))
}

// SetRawQuery rewrites the query sent to the origin.
func (Request) SetRawQuery(v string) error {
	return errAt("Request.SetRawQuery", "printable ASCII without #", hostcall.FieldSet(abi.FieldRawQuery, bytesOf(v)))
}

// Header is the request's header.
func (Request) Header() Header { return Header{abi.MsgRequest} }

// Cookie returns the value of the cookie name from the request's Cookie
// fields (RFC 6265 §5.4; one pair of double quotes around it removed) and
// whether there is one: without net/http, which would double the size of
// a plugin's module.
func (r Request) Cookie(name string) (string, bool) {
	for _, line := range r.Header().Values("Cookie") {
		for pair := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && k == name {
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}

// Body returns up to limit bytes of the request body and the body's full
// length, so a caller can tell a truncated read. Of a body the edge
// streams to the origin (past its limits.stream_threshold) it returns at
// most the first abi.StreamedPrefix bytes, and abi.BodyLengthUnknown as
// the length when the client did not send one (chunked).
func (Request) Body(limit int) ([]byte, int) { return readBody(abi.MsgRequest, limit) }

// SetBody replaces the request body sent to the origin. A streamed body
// (see Body) cannot be replaced: that is an error wrapping ErrTooLarge, and
// the body goes to the origin as the client sent it.
func (Request) SetBody(b []byte) error {
	return errAt("Request.SetBody", "", hostcall.BodySet(abi.MsgRequest, b))
}

// Value returns a request-scoped value set by this or an earlier plugin.
func (Request) Value(key string) (string, bool) {
	b, n := fetchN(func(b []byte) int32 { return hostcall.ValueGet(bytesOf(key), b) })
	return string(b), n >= 0
}

// AppendValue appends the request-scoped value under key to dst and
// reports whether there is one, for hot paths that must not allocate a
// string.
func (Request) AppendValue(dst []byte, key string) ([]byte, bool) {
	b, n := fetchN(func(b []byte) int32 { return hostcall.ValueGet(bytesOf(key), b) })
	return append(dst, b...), n >= 0
}

// SetValue stores a request-scoped value for later phases and plugins.
func (Request) SetValue(key, value string) error {
	return errAt("Request.SetValue", "", hostcall.ValueSet(bytesOf(key), bytesOf(value), 0))
}

// Forward stores a request-scoped value that is also sent to the origin, for
// example the identity an auth plugin verified. An HTTP application gets it
// as the header field Wedge-Value-<key>, which no client can send
// (origin/wire/README.md, values).
func (Request) Forward(key, value string) error {
	return errAt("Request.Forward", forwardWant, hostcall.ValueSet(bytesOf(key), bytesOf(value), abi.ValueForward))
}

// Status is the response status; in the request phase 0 until set.
func (Response) Status() int { return int(hostcall.StatusGet()) }

// SetStatus sets the response status (200-599).
func (Response) SetStatus(code int) error {
	return errAt("Response.SetStatus", "a status from 200 to 599", hostcall.StatusSet(int32(code)))
}

// Header is the response's header.
func (Response) Header() Header { return Header{abi.MsgResponse} }

// Body returns up to limit bytes of the response body and its full length.
// Of a body the origin streams (a large or open-ended one) it returns no
// bytes, and its length, or abi.BodyLengthUnknown when the origin gave
// none.
func (Response) Body(limit int) ([]byte, int) { return readBody(abi.MsgResponse, limit) }

// SetBody replaces the response body. A streamed body (see Body) cannot be
// replaced: that is an error wrapping ErrTooLarge, and the client gets the
// origin's body.
func (Response) SetBody(b []byte) error {
	return errAt("Response.SetBody", "", hostcall.BodySet(abi.MsgResponse, b))
}

// ApplyRange applies a Range field value (RFC 9110 §14.2) to the response,
// in the host: a single satisfiable byte range of a 200 makes it a 206 with
// Content-Range and that part of the body (a view of the body, cached
// bodies included, not a copy); a range past the end makes it a 416; any
// other value or response is left as it is. It returns the status
// afterwards. Whether a range applies at all (the method, If-Range) is the
// caller's decision.
func (Response) ApplyRange(value string) (status int, err error) {
	r := hostcall.RangeApply(bytesOf(value))
	return int(max(r, 0)), errOf(r)
}

// Answer sets status and body and returns Answer: the request phase ends
// the chain with this response.
func (r Response) Answer(status int, body []byte) Action {
	if err := r.SetStatus(status); err != nil {
		return Fail(err)
	}
	if err := r.SetBody(body); err != nil {
		return Fail(err)
	}
	return Answer
}

// AnswerText answers with a text/plain body.
func (r Response) AnswerText(status int, text string) Action {
	r.Header().Set("Content-Type", "text/plain; charset=utf-8")
	return r.Answer(status, bytesOf(text+"\n"))
}

// readBody reads up to limit bytes of a body; the length is 0 when the body
// is not available in this phase.
func readBody(m abi.Msg, limit int) ([]byte, int) {
	if limit <= 0 {
		return nil, max(int(hostcall.BodyRead(m, 0, nil)), 0)
	}
	buf := make([]byte, limit)
	n := hostcall.BodyRead(m, 0, buf)
	if n == abi.ErrTooLarge {
		// A streamed body: the host refuses a read past the prefix it
		// holds, so read just that.
		held := 0
		if m == abi.MsgRequest {
			held = abi.StreamedPrefix
		}
		buf = buf[:min(limit, held)]
		if n = hostcall.BodyRead(m, 0, buf); n < 0 {
			buf = buf[:0] // a host holding less than the ABI says
		}
		return buf, max(int(n), 0)
	}
	length := max(int(n), 0)
	return buf[:min(length, limit)], length
}

// What header writes and forwarded values take (wasm/abi/README.md).
const (
	headerWant = "a field name that is an RFC 9110 token and none the host owns " +
		"(Content-Length, Transfer-Encoding, Host, Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade), " +
		"and a value without control characters other than tab"
	forwardWant = "a key that is an RFC 9110 token and a value without control characters other than tab"
)

// Header is the header of a request or response. Names are
// case-insensitive. Set, Add and Del refuse framing fields (Content-Length,
// Transfer-Encoding) and values with control characters.
type Header struct{ msg abi.Msg }

// Get returns the first value of name, or "".
func (h Header) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup returns the first value of name and whether it is present.
func (h Header) Lookup(name string) (string, bool) {
	b, n := fetchN(func(b []byte) int32 { return hostcall.HeaderGet(h.msg, bytesOf(name), b) })
	return string(b), n >= 0
}

// AppendValue appends the first value of name to dst without allocating a
// string, for hot paths.
func (h Header) AppendValue(dst []byte, name string) ([]byte, bool) {
	b, n := fetchN(func(b []byte) int32 { return hostcall.HeaderGet(h.msg, bytesOf(name), b) })
	return append(dst, b...), n >= 0
}

// AppendValues appends every value of name to dst, each followed by a NUL
// byte (the ABI's list form; walk it with abi.NextItem), and returns how
// many there were: for hot paths that must tell one value from several
// without allocating strings.
//
// The host writes into dst's spare capacity, not the shared scratch buffer,
// so a value list (a bearer token's is hundreds of bytes) is not copied
// again inside the guest.
func (h Header) AppendValues(dst []byte, name string) ([]byte, int) {
	l := hostcall.HeaderValues(h.msg, bytesOf(name), dst[len(dst):cap(dst)])
	if int(l) > cap(dst)-len(dst) {
		dst = slices.Grow(dst, int(l))
		l = hostcall.HeaderValues(h.msg, bytesOf(name), dst[len(dst):cap(dst)])
	}
	if l <= 0 || int(l) > cap(dst)-len(dst) {
		return dst, 0
	}
	b := dst[len(dst) : len(dst)+int(l)]
	n := 0
	for rest := b; ; n++ {
		var ok bool
		if _, rest, ok = abi.NextItem(rest); !ok {
			break
		}
	}
	return dst[:len(dst)+len(b)], n
}

// Values returns every value of name, in order.
func (h Header) Values(name string) []string {
	return list(fetch(func(b []byte) int32 { return hostcall.HeaderValues(h.msg, bytesOf(name), b) }))
}

// Names returns the header names, in order, each once.
func (h Header) Names() []string {
	return list(fetch(func(b []byte) int32 { return hostcall.HeaderNames(h.msg, b) }))
}

// Set replaces every value of name with value.
func (h Header) Set(name, value string) error {
	return errAt("Header.Set", headerWant, hostcall.HeaderSet(h.msg, bytesOf(name), bytesOf(value)))
}

// Add appends a value to name.
func (h Header) Add(name, value string) error {
	return errAt("Header.Add", headerWant, hostcall.HeaderAdd(h.msg, bytesOf(name), bytesOf(value)))
}

// AddBytes is Add for a value built in a reused buffer, which it does not
// keep: the host copies it.
func (h Header) AddBytes(name string, value []byte) error {
	return errAt("Header.AddBytes", headerWant, hostcall.HeaderAdd(h.msg, bytesOf(name), value))
}

// Del removes every value of name.
func (h Header) Del(name string) error {
	return errAt("Header.Del", headerWant, hostcall.HeaderRemove(h.msg, bytesOf(name)))
}

func list(b []byte) []string {
	var out []string
	for {
		item, rest, ok := abi.NextItem(b)
		if !ok {
			return out
		}
		out = append(out, string(item))
		b = rest
	}
}
