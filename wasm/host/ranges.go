package host

// Byte ranges (RFC 9110 §14) for range_apply: the host parses the Range
// value and slices the body, the guest decides whether a range applies
// (method, If-Range). Parsing bytes is where a Go guest is slowest, and the
// body never has to enter guest memory.

// rangeKind is what a Range value means for a representation of some length.
type rangeKind uint8

const (
	rangeIgnore        rangeKind = iota // serve the whole representation (RFC 9110 §14.2 lets a server)
	rangeSatisfiable                    // one range, [first, last]
	rangeUnsatisfiable                  // no range overlaps the representation: 416
)

// parseRange reads a Range field value for a representation of size bytes
// (size > 0). It answers rangeSatisfiable with the inclusive byte positions
// for a single satisfiable range, rangeUnsatisfiable when the one range
// does not overlap the representation (§14.1.1), and rangeIgnore for
// anything it does not serve: another range unit, invalid syntax (§14.2: a
// server MAY ignore an invalid ranges-specifier), or more than one range
// (answered with the whole representation instead of multipart/byteranges).
//
// The grammar (§14.1.1, §14.1.2, with §5.6.1 list rules):
//
//	ranges-specifier = range-unit "=" range-set
//	range-set        = 1#range-spec      ; empty list elements are skipped
//	range-spec       = int-range / suffix-range / other-range
//	int-range        = first-pos "-" [ last-pos ]
//	suffix-range     = "-" suffix-length
//
// other-range (anything else) makes the value one this host does not serve.
// Numbers saturate instead of overflowing: a first-pos past any length is
// unsatisfiable, a last-pos or suffix-length past it is clamped (§14.1.2).
// It does not allocate.
func parseRange(v []byte, size int64) (kind rangeKind, first, last int64) {
	const unit = "bytes="
	if len(v) < len(unit) {
		return rangeIgnore, 0, 0
	}
	for i := 0; i < len(unit); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A' // range units are case-insensitive (§14.1)
		}
		if c != unit[i] {
			return rangeIgnore, 0, 0
		}
	}
	specs := 0
	i := len(unit)
	for {
		// OWS, then a range-spec or an empty element, then OWS and a comma
		// or the end.
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i < len(v) && v[i] != ',' {
			var ok bool
			var f, l int64
			var hasFirst, hasLast bool
			f, i, hasFirst = digits(v, i)
			if i >= len(v) || v[i] != '-' {
				return rangeIgnore, 0, 0
			}
			i++
			l, i, hasLast = digits(v, i)
			switch {
			case hasFirst && hasLast && l < f:
				return rangeIgnore, 0, 0 // §14.1.1: invalid
			case hasFirst:
				ok = f < size
				first, last = f, size-1
				if hasLast {
					last = min(l, size-1)
				}
			case hasLast: // suffix-range
				ok = l > 0
				first, last = max(size-l, 0), size-1
			default:
				return rangeIgnore, 0, 0 // "-" alone
			}
			specs++
			if specs > 1 {
				return rangeIgnore, 0, 0
			}
			if ok {
				kind = rangeSatisfiable
			} else {
				kind = rangeUnsatisfiable
			}
			for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
				i++
			}
		}
		if i >= len(v) {
			break
		}
		if v[i] != ',' {
			return rangeIgnore, 0, 0
		}
		i++
	}
	if specs == 0 {
		return rangeIgnore, 0, 0 // 1#range-spec: at least one
	}
	if kind == rangeUnsatisfiable {
		first, last = 0, 0
	}
	return kind, first, last
}

// digits reads 1*DIGIT at v[i:], saturating at 2^62 so that any value past
// every representable length still compares as larger.
func digits(v []byte, i int) (n int64, next int, ok bool) {
	const limit = 1 << 62
	start := i
	for ; i < len(v) && '0' <= v[i] && v[i] <= '9'; i++ {
		if n <= limit/10 {
			n = n*10 + int64(v[i]-'0')
		} else {
			n = limit
		}
	}
	return min(n, limit), i, i > start
}
