package wasmbin

import (
	"errors"
	"fmt"
)

var errShort = errors.New("unexpected end")

// reader decodes the primitive encodings of the binary format.
type reader struct {
	b   []byte
	off int
}

func (r *reader) done() bool   { return r.off >= len(r.b) }
func (r *reader) rest() []byte { return r.b[r.off:] }

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) skip(n int) error {
	if n < 0 || n > len(r.b)-r.off {
		return errShort
	}
	r.off += n
	return nil
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

// u64 reads an unsigned LEB128 of at most 64 bits.
func (r *reader) u64() (uint64, error) { return r.uleb(64) }

// uleb reads an unsigned LEB128 of at most bits bits: its last byte, at
// shift last, may hold only the bits left (4 of a u32, 1 of a u64), and
// no continuation.
func (r *reader) uleb(bits int) (uint64, error) {
	last := (bits - 1) / 7 * 7
	var v uint64
	for shift := 0; shift <= last; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == last && c >= 1<<(bits-last) {
			return 0, fmt.Errorf("u%d overflows", bits)
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("u%d too long", bits)
}

// count reads a vector length. Every element takes at least one byte, so a
// length beyond the bytes left is malformed; checking it here is what keeps
// a tiny hostile module from making a decoder allocate gigabytes.
func (r *reader) count() (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int64(n) > int64(len(r.b)-r.off) {
		return 0, fmt.Errorf("vector of %d elements in %d bytes", n, len(r.b)-r.off)
	}
	return n, nil
}

// leb skips a LEB128 of at most max bytes, signed or not.
func (r *reader) leb(max int) error {
	for i := 0; i < max; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("LEB128 too long")
}

// bytesU32 reads a length-prefixed byte string (a section, a body, a name).
func (r *reader) bytesU32() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	start := r.off
	if err := r.skip(int(n)); err != nil {
		return nil, err
	}
	return r.b[start:r.off], nil
}

func (r *reader) name() ([]byte, error) { return r.bytesU32() }

// nameMap skips a vec of (index, name) pairs.
func (r *reader) nameMap() error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.u32(); err != nil {
			return err
		}
		if _, err := r.name(); err != nil {
			return err
		}
	}
	return nil
}

// blockType skips a block type: 0x40, a value type, or an s33 type index.
// All three read as one signed LEB128.
func (r *reader) blockType() error { return r.leb(5) }

// limits reads the limits of a table or memory: the minimum, and the
// maximum or -1 when there is none.
func (r *reader) limits() (lo uint64, hi int64, err error) {
	flags, err := r.byte()
	if err != nil {
		return 0, 0, err
	}
	if flags > 0x07 {
		return 0, 0, fmt.Errorf("limits flags 0x%02x", flags)
	}
	if lo, err = r.u64(); err != nil {
		return 0, 0, err
	}
	if flags&1 == 0 {
		return lo, -1, nil
	}
	m, err := r.u64()
	if err != nil {
		return 0, 0, err
	}
	return lo, int64(min(m, 1<<62)), nil
}

// memarg skips alignment (with a memory index when bit 6 is set) and offset.
func (r *reader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return r.leb(10)
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendSection(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(payload)))
	return append(out, payload...)
}
