package tracing

import (
	"errors"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// Header and StateHeader are the W3C Trace Context fields.
const (
	Header      = "traceparent"
	StateHeader = "tracestate"
)

// Parent is what a traceparent field says: the trace, the span that sent
// the request (the parent of the receiver's), and the trace flags.
type Parent struct {
	TraceID trace.TraceID
	SpanID  trace.SpanID
	Flags   trace.TraceFlags
}

// Sampled reports whether the sender may have recorded its span.
func (p Parent) Sampled() bool { return p.Flags.IsSampled() }

// Why Parse refused a traceparent; preallocated, so refusing allocates
// nothing either.
var (
	ErrLength  = errors.New("tracing: traceparent: wrong length")
	ErrVersion = errors.New("tracing: traceparent: version ff or not two lowercase hex digits")
	ErrFormat  = errors.New("tracing: traceparent: want version-traceid-parentid-flags in lowercase hex")
	ErrZeroID  = errors.New("tracing: traceparent: all-zero trace or parent id")
	ErrAbsent  = errors.New("tracing: no traceparent")
)

// length is a version 00 traceparent's: 2 + 1 + 32 + 1 + 16 + 1 + 2.
const length = 55

// Parse reads a traceparent field value by the rules of W3C Trace Context
// version 00: lowercase hex only, all-zero trace and parent ids invalid,
// version ff invalid. A later version is read by the same rules over its
// first 55 characters, which must be followed by nothing or by '-' (the
// spec's rule for versions it does not know yet). It allocates nothing.
func Parse[T ~string | ~[]byte](v T) (Parent, error) {
	var p Parent
	if len(v) < length {
		return p, ErrLength
	}
	ver, ok := hexByte(v[0], v[1])
	switch {
	case !ok || ver == 0xff:
		return p, ErrVersion
	case ver == 0 && len(v) != length:
		return p, ErrLength
	case len(v) > length && v[length] != '-':
		return p, ErrFormat
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return p, ErrFormat
	}
	for i := range p.TraceID {
		if p.TraceID[i], ok = hexByte(v[3+2*i], v[4+2*i]); !ok {
			return p, ErrFormat
		}
	}
	for i := range p.SpanID {
		if p.SpanID[i], ok = hexByte(v[36+2*i], v[37+2*i]); !ok {
			return p, ErrFormat
		}
	}
	f, ok := hexByte(v[53], v[54])
	if !ok {
		return p, ErrFormat
	}
	p.Flags = trace.TraceFlags(f)
	if !p.TraceID.IsValid() || !p.SpanID.IsValid() {
		return p, ErrZeroID
	}
	return p, nil
}

// Find parses the traceparent among a request's fields, given by their
// count and accessors so the edge's and the origin's field types both fit.
// A request with no traceparent, or with more than one (which the spec
// treats as invalid), gets an error.
func Find[T ~string | ~[]byte](n int, name, value func(i int) T) (Parent, error) {
	at := -1
	for i := range n {
		if equalFold(name(i), Header) {
			if at >= 0 {
				return Parent{}, ErrFormat
			}
			at = i
		}
	}
	if at < 0 {
		return Parent{}, ErrAbsent
	}
	return Parse(value(at))
}

// Append appends p as a version 00 traceparent value, which is always
// 55 bytes; with a large enough dst it allocates nothing.
func (p Parent) Append(dst []byte) []byte {
	dst = append(dst, "00-"...)
	dst = appendHex(dst, p.TraceID[:])
	dst = append(dst, '-')
	dst = appendHex(dst, p.SpanID[:])
	dst = append(dst, '-')
	return append(dst, hexDigits[p.Flags>>4], hexDigits[p.Flags&0xf])
}

// NewTraceID and NewSpanID make random non-zero ids. They need to be
// unique, not secret: math/rand/v2's per-thread generator, no allocation.
func NewTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		putUint64(id[:8], rand.Uint64())
		putUint64(id[8:], rand.Uint64())
	}
	return id
}

// NewSpanID makes a random non-zero span id.
func NewSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		putUint64(id[:], rand.Uint64())
	}
	return id
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

const hexDigits = "0123456789abcdef"

func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// hexByte decodes two lowercase hex digits: the spec allows no uppercase.
func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := unhex(hi)
	l, ok2 := unhex(lo)
	return h<<4 | l, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// equalFold compares an ASCII field name with a lowercase one.
func equalFold[T ~string | ~[]byte](name T, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
