package wire

import "encoding/binary"

// The envelope codec without reflection. fxamacker/cbor's reflective path
// cost ~7 us per exchange; envelopes are a fixed shape, so they are written
// and read here directly. The reflective encoder and decoder (encMode,
// decMode) stay the reference: the tests and FuzzFastDecode hold these
// functions to their output byte for byte and value for value.
//
// The encoder writes exactly what encMode writes: the core deterministic
// encoding, keys ascending, empty entries left out, nil arrays and byte
// strings in array positions written empty.
//
// The decoder only accepts: it reads the shape encoders produce (known keys
// once each, definite lengths, byte strings, unsigned integers) and reports
// false for anything else (unknown keys, null, tags, text strings,
// indefinite lengths, trailing bytes, any limit reached), without saying
// why. unmarshal then decodes the same bytes with decMode, which either
// accepts them (a valid envelope of a rarer shape, such as one with an
// extension key) or refuses them with the error it always gave. So what is
// refused, and why, is decMode's decision alone; the fast path never
// accepts what decMode refuses, which FuzzFastDecode checks.

// CBOR major types, shifted into the initial byte.
const (
	majUint  = 0 << 5
	majBytes = 2 << 5
	majArray = 4 << 5
	majMap   = 5 << 5
)

// appendHead appends a CBOR head with its argument in the shortest form
// (RFC 8949 §4.2.1).
func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= 0xff:
		return append(b, major|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, major|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, major|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, major|27), n)
}

func appendBytes(b []byte, s []byte) []byte {
	return append(appendHead(b, majBytes, uint64(len(s))), s...)
}

func appendFields(b []byte, fs []Field) []byte {
	b = appendHead(b, majArray, uint64(len(fs)))
	for i := range fs {
		b = append(b, majArray|2)
		b = appendBytes(b, fs[i].Name)
		b = appendBytes(b, fs[i].Value)
	}
	return b
}

// appendEntry appends a byte string entry of a map, if it is not empty.
func appendEntry(b []byte, key byte, s []byte) []byte {
	if len(s) == 0 {
		return b
	}
	return appendBytes(append(b, key), s)
}

func appendFieldsEntry(b []byte, key byte, fs []Field) []byte {
	if len(fs) == 0 {
		return b
	}
	return appendFields(append(b, key), fs)
}

func appendUintEntry(b []byte, key byte, n uint64) []byte {
	if n == 0 {
		return b
	}
	return appendHead(append(b, key), majUint, n)
}

func count(n *uint64, nonEmpty bool) {
	if nonEmpty {
		*n++
	}
}

// appendRequest appends r's deterministic CBOR.
func appendRequest(b []byte, r *Request) []byte {
	n := uint64(1) // version is always present
	for _, s := range [...][]byte{r.ID, r.Method, r.Scheme, r.Host, r.Path, r.Query, r.Body, r.Client, r.POP, r.Region, r.Peer} {
		count(&n, len(s) > 0)
	}
	count(&n, len(r.Header) > 0)
	count(&n, len(r.Values) > 0)
	count(&n, r.Timeout != 0)
	b = appendHead(b, majMap, n)
	b = appendHead(append(b, 1), majUint, r.Version)
	b = appendEntry(b, 2, r.ID)
	b = appendEntry(b, 3, r.Method)
	b = appendEntry(b, 4, r.Scheme)
	b = appendEntry(b, 5, r.Host)
	b = appendEntry(b, 6, r.Path)
	b = appendEntry(b, 7, r.Query)
	b = appendFieldsEntry(b, 8, r.Header)
	b = appendEntry(b, 9, r.Body)
	b = appendEntry(b, 10, r.Client)
	b = appendEntry(b, 11, r.POP)
	b = appendEntry(b, 12, r.Region)
	b = appendFieldsEntry(b, 13, r.Values)
	b = appendUintEntry(b, 14, r.Timeout)
	return appendEntry(b, 15, r.Peer)
}

func (h *Hints) empty() bool {
	return h.TTL == 0 && h.Stale == 0 && len(h.Tags) == 0 && h.Shared == 0
}

// appendResponse appends r's deterministic CBOR.
func appendResponse(b []byte, r *Response) []byte {
	n := uint64(1) // status is always present
	count(&n, len(r.Header) > 0)
	count(&n, len(r.Body) > 0)
	count(&n, !r.Cache.empty())
	count(&n, len(r.Error) > 0)
	count(&n, len(r.Interim) > 0)
	count(&n, r.Scope != 0)
	b = appendHead(b, majMap, n)
	b = appendHead(append(b, 1), majUint, r.Status)
	b = appendFieldsEntry(b, 2, r.Header)
	b = appendEntry(b, 3, r.Body)
	if h := &r.Cache; !h.empty() {
		var m uint64
		count(&m, h.TTL != 0)
		count(&m, h.Stale != 0)
		count(&m, len(h.Tags) > 0)
		count(&m, h.Shared != 0)
		b = appendHead(append(b, 4), majMap, m)
		b = appendUintEntry(b, 1, h.TTL)
		b = appendUintEntry(b, 2, h.Stale)
		if len(h.Tags) > 0 {
			b = appendHead(append(b, 3), majArray, uint64(len(h.Tags)))
			for _, t := range h.Tags {
				b = appendBytes(b, t)
			}
		}
		b = appendUintEntry(b, 4, h.Shared)
	}
	b = appendEntry(b, 5, r.Error)
	if len(r.Interim) > 0 {
		b = appendHead(append(b, 6), majArray, uint64(len(r.Interim)))
		for i := range r.Interim {
			b = append(b, majArray|2)
			b = appendHead(b, majUint, r.Interim[i].Status)
			b = appendFields(b, r.Interim[i].Header)
		}
	}
	return appendUintEntry(b, 7, r.Scope)
}

// reader reads the envelope shapes appendRequest and appendResponse write.
// Every method reports false for anything else, and the decoding stops.
type reader struct {
	b   []byte
	off int
}

// head reads a head of the given major type with a definite argument.
func (d *reader) head(major byte) (uint64, bool) {
	if d.off >= len(d.b) {
		return 0, false
	}
	c := d.b[d.off]
	if c&0xe0 != major {
		return 0, false
	}
	d.off++
	ai := c & 0x1f
	if ai < 24 {
		return uint64(ai), true
	}
	if ai > 27 { // reserved, or indefinite length
		return 0, false
	}
	n := 1 << (ai - 24)
	if len(d.b)-d.off < n {
		return 0, false
	}
	p := d.b[d.off:]
	d.off += n
	switch n {
	case 1:
		return uint64(p[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), true
	}
	return binary.BigEndian.Uint64(p), true
}

// count reads an array or map head whose count is at most max and which
// the remaining input can hold at minSize bytes per item.
func (d *reader) count(major byte, max uint64, minSize int) (int, bool) {
	n, ok := d.head(major)
	if !ok || n > max || n > uint64(len(d.b)-d.off)/uint64(minSize) {
		return 0, false
	}
	return int(n), true
}

// bytes reads a byte string into dst's capacity, as Bytes.UnmarshalBinary
// does.
func (d *reader) bytes(dst *Bytes) bool {
	n, ok := d.head(majBytes)
	if !ok || n > uint64(len(d.b)-d.off) {
		return false
	}
	*dst = append((*dst)[:0], d.b[d.off:d.off+int(n)]...)
	d.off += int(n)
	return true
}

// fields reads a field list into fs's capacity.
func (d *reader) fields(fs *[]Field) bool {
	n, ok := d.count(majArray, MaxFields, 3)
	if !ok {
		return false
	}
	out := (*fs)[:0]
	for range n {
		if d.off >= len(d.b) || d.b[d.off] != majArray|2 {
			return false
		}
		d.off++
		if len(out) < cap(out) {
			out = out[:len(out)+1]
		} else {
			out = append(out, Field{})
		}
		f := &out[len(out)-1]
		if !d.bytes(&f.Name) || !d.bytes(&f.Value) {
			*fs = out
			return false
		}
	}
	*fs = out
	return true
}

// key reads a map key: one of the known keys 1..last, in the one-byte form,
// not seen before in this map.
func (d *reader) key(last byte, seen *uint32) (byte, bool) {
	if d.off >= len(d.b) {
		return 0, false
	}
	k := d.b[d.off]
	if k == 0 || k > last || *seen&(1<<k) != 0 {
		return 0, false
	}
	*seen |= 1 << k
	d.off++
	return k, true
}

// decodeRequest decodes b into r, which must be Reset, and reports whether
// it could; on false r holds a partial decode.
func decodeRequest(b []byte, r *Request) bool {
	d := reader{b: b}
	n, ok := d.count(majMap, 15, 2)
	if !ok {
		return false
	}
	var seen uint32
	for range n {
		k, ok := d.key(15, &seen)
		if !ok {
			return false
		}
		switch k {
		case 1:
			r.Version, ok = d.head(majUint)
		case 2:
			ok = d.bytes(&r.ID)
		case 3:
			ok = d.bytes(&r.Method)
		case 4:
			ok = d.bytes(&r.Scheme)
		case 5:
			ok = d.bytes(&r.Host)
		case 6:
			ok = d.bytes(&r.Path)
		case 7:
			ok = d.bytes(&r.Query)
		case 8:
			ok = d.fields(&r.Header)
		case 9:
			ok = d.bytes(&r.Body)
		case 10:
			ok = d.bytes(&r.Client)
		case 11:
			ok = d.bytes(&r.POP)
		case 12:
			ok = d.bytes(&r.Region)
		case 13:
			ok = d.fields(&r.Values)
		case 14:
			r.Timeout, ok = d.head(majUint)
		case 15:
			ok = d.bytes(&r.Peer)
		}
		if !ok {
			return false
		}
	}
	return d.off == len(d.b)
}

// decodeResponse decodes b into r, which must be Reset, and reports whether
// it could; on false r holds a partial decode.
func decodeResponse(b []byte, r *Response) bool {
	d := reader{b: b}
	n, ok := d.count(majMap, 7, 2)
	if !ok {
		return false
	}
	var seen uint32
	for range n {
		k, ok := d.key(7, &seen)
		if !ok {
			return false
		}
		switch k {
		case 1:
			r.Status, ok = d.head(majUint)
		case 2:
			ok = d.fields(&r.Header)
		case 3:
			ok = d.bytes(&r.Body)
		case 4:
			ok = d.hints(&r.Cache)
		case 5:
			ok = d.bytes(&r.Error)
		case 6:
			ok = d.interim(r)
		case 7:
			r.Scope, ok = d.head(majUint)
		}
		if !ok {
			return false
		}
	}
	return d.off == len(d.b)
}

func (d *reader) hints(h *Hints) bool {
	n, ok := d.count(majMap, 4, 2)
	if !ok {
		return false
	}
	var seen uint32
	for range n {
		k, ok := d.key(4, &seen)
		if !ok {
			return false
		}
		switch k {
		case 1:
			h.TTL, ok = d.head(majUint)
		case 2:
			h.Stale, ok = d.head(majUint)
		case 3:
			ok = d.tags(&h.Tags)
		case 4:
			h.Shared, ok = d.head(majUint)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *reader) tags(tags *[]Bytes) bool {
	n, ok := d.count(majArray, MaxFields, 1)
	if !ok {
		return false
	}
	out := (*tags)[:0]
	for range n {
		if len(out) < cap(out) {
			out = out[:len(out)+1]
		} else {
			out = append(out, nil)
		}
		if !d.bytes(&out[len(out)-1]) {
			*tags = out
			return false
		}
	}
	*tags = out
	return true
}

// interim reads the informational responses. Their number is checked
// against MaxInterim after decoding, as for the reflective decoder, so a
// longer list is read (up to the array bound) and refused there.
func (d *reader) interim(r *Response) bool {
	n, ok := d.count(majArray, MaxFields, 3)
	if !ok {
		return false
	}
	for range n {
		if d.off >= len(d.b) || d.b[d.off] != majArray|2 {
			return false
		}
		d.off++
		status, ok := d.head(majUint)
		if !ok {
			return false
		}
		in := r.AddInterim(status)
		if !d.fields(&in.Header) {
			return false
		}
	}
	return true
}
