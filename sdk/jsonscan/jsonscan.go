// Package jsonscan reads JSON without reflection and almost without
// allocating: it walks raw bytes and hands out sub-slices. Plugins use it
// instead of encoding/json, which costs ~30 us per call inside a Go guest.
//
// Values are raw JSON: a string value still has its quotes and escapes (use
// AppendString or String), a number is its literal text (use Int or Float).
// Every function validates what it walks and returns ErrSyntax, never
// panics, on malformed input; nesting deeper than MaxDepth is refused.
package jsonscan

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting, so hostile input cannot exhaust the guest stack.
const MaxDepth = 64

var (
	// ErrSyntax reports malformed JSON.
	ErrSyntax = errors.New("jsonscan: syntax error")
	// ErrType reports a value of another type than asked for.
	ErrType = errors.New("jsonscan: wrong type")
)

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// Iter walks the members of an object or the elements of an array without
// closures or allocation:
//
//	var it jsonscan.Iter
//	it.Object(data)
//	for it.Next() {
//		key, value := it.Key(), it.Value()
//	}
//	if err := it.Err(); err != nil { ... }
//
// Key is the raw key (no quotes, escapes intact; compare with KeyIs), Value
// the raw value. Each value is validated as it is reached.
type Iter struct {
	data       []byte
	i          int
	close      byte // '}' or ']'
	key, value []byte
	escaped    bool // key has escapes
	name       []byte
	err        error
	started    bool
}

// Object starts walking the object data.
func (it *Iter) Object(data []byte) { it.start(data, '{', '}') }

// Array starts walking the array data.
func (it *Iter) Array(data []byte) { it.start(data, '[', ']') }

func (it *Iter) start(data []byte, open, close byte) {
	*it = Iter{data: data, close: close, name: it.name[:0]}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != open {
		it.err = ErrType
		return
	}
	it.i = i + 1
}

// Next advances to the next member or element, reporting whether there is
// one.
func (it *Iter) Next() bool {
	if it.err != nil || it.i < 0 {
		return false
	}
	b := it.data
	i := skipSpace(b, it.i)
	if i >= len(b) {
		return it.fail()
	}
	if b[i] == it.close {
		it.i = -1
		if trailing(b, i+1) != nil {
			return it.fail()
		}
		return false
	}
	if it.started {
		if b[i] != ',' {
			return it.fail()
		}
		i = skipSpace(b, i+1)
	}
	it.started = true
	if it.close == '}' {
		if i >= len(b) || b[i] != '"' {
			return it.fail()
		}
		kend, escaped, err := scanString(b, i)
		if err != nil {
			return it.fail()
		}
		it.key, it.escaped = b[i+1:kend-1], escaped
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return it.fail()
		}
		i = skipSpace(b, i+1)
	}
	end, err := skipValue(b, i, 1)
	if err != nil {
		return it.fail()
	}
	it.value = b[i:end]
	it.i = end
	return true
}

func (it *Iter) fail() bool {
	if it.err == nil {
		it.err = ErrSyntax
	}
	return false
}

// Key is the current member's raw key.
func (it *Iter) Key() []byte { return it.key }

// Name is the current member's key, unescaped: the raw key itself unless it
// has escapes, so a switch on string(it.Name()) costs no allocation.
func (it *Iter) Name() []byte {
	if !it.escaped {
		return it.key
	}
	it.name, _ = appendUnquoted(it.name[:0], it.key)
	return it.name
}

// Value is the current raw value.
func (it *Iter) Value() []byte { return it.value }

// Err is the first error met, nil after a complete walk.
func (it *Iter) Err() error { return it.err }

// Object calls fn for each member of the object data, with the raw key
// (without quotes, escapes intact) and the raw value. fn returns false to
// stop early.
func Object(data []byte, fn func(key, value []byte) bool) error {
	var it Iter
	it.Object(data)
	for it.Next() {
		if !fn(it.key, it.value) {
			return nil
		}
	}
	return it.err
}

// Array calls fn for each element of the array data; fn returns false to
// stop early.
func Array(data []byte, fn func(elem []byte) bool) error {
	var it Iter
	it.Array(data)
	for it.Next() {
		if !fn(it.value) {
			return nil
		}
	}
	return it.err
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return ErrSyntax
	}
	return nil
}

// Member returns the raw value of the first member of object data whose key
// is key.
func Member(data []byte, key string) (value []byte, ok bool, err error) {
	var it Iter
	it.Object(data)
	for it.Next() {
		if KeyIs(it.key, key) {
			return it.value, true, nil
		}
	}
	return nil, false, it.err
}

// KeyIs reports whether raw key k (as Object passes it) equals key.
func KeyIs(k []byte, key string) bool {
	for _, c := range k {
		if c == '\\' {
			var buf [64]byte
			u, err := appendUnquoted(buf[:0], k)
			return err == nil && string(u) == key
		}
	}
	return string(k) == key
}

// Valid reports whether data is one well-formed JSON value.
func Valid(data []byte) bool {
	i := skipSpace(data, 0)
	end, err := skipValue(data, i, 0)
	return err == nil && trailing(data, end) == nil
}

// afterItem reads what follows a member or element ending at b[i]: the
// container's close (done, with the index past it) or a comma (with the
// index of the next item).
func afterItem(b []byte, i int, close byte) (next int, done bool, err error) {
	i = skipSpace(b, i)
	switch {
	case i >= len(b):
		return 0, false, ErrSyntax
	case b[i] == close:
		return i + 1, true, nil
	case b[i] != ',':
		return 0, false, ErrSyntax
	}
	return skipSpace(b, i+1), false, nil
}

// skipValue returns the end of the value starting at b[i]; depth is the
// number of containers around it.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, ErrSyntax
	}
	if depth >= MaxDepth && (b[i] == '{' || b[i] == '[') {
		return 0, ErrSyntax // one more container would nest past MaxDepth
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, ErrSyntax
			}
			end, err := skipString(b, i)
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, ErrSyntax
			}
			if i, err = skipValue(b, skipSpace(b, i+1), depth+1); err != nil {
				return 0, err
			}
			var done bool
			if i, done, err = afterItem(b, i, '}'); err != nil || done {
				return i, err
			}
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValue(b, i, depth+1); err != nil {
				return 0, err
			}
			var done bool
			if i, done, err = afterItem(b, i, ']'); err != nil || done {
				return i, err
			}
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	}
	return 0, ErrSyntax
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, ErrSyntax
	}
	return i + len(lit), nil
}

// skipNumber follows the JSON number grammar (RFC 8259 section 6).
func skipNumber(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return 0, ErrSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, ErrSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, ErrSyntax
		}
	}
	return i, nil
}

// plain marks bytes that need no attention inside a string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipString returns the index after the closing quote of the string that
// starts at b[i], validating escapes and rejecting raw control characters.
func skipString(b []byte, i int) (int, error) {
	end, _, err := scanString(b, i)
	return end, err
}

// scanString is skipString that also reports whether the string has escapes.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(b) {
		// Runs of ordinary bytes are the common case: one table load each.
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, false, ErrSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return 0, false, ErrSyntax
				}
				i += 6
			default:
				return 0, false, ErrSyntax
			}
		default: // a control character
			return 0, false, ErrSyntax
		}
	}
	return 0, false, ErrSyntax
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// AppendString appends the unescaped text of the raw string value to dst.
func AppendString(dst, raw []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return dst, ErrType
	}
	if end, err := skipString(raw, 0); err != nil || end != len(raw) {
		return dst, ErrSyntax
	}
	return appendUnquoted(dst, raw[1:len(raw)-1])
}

// String returns the unescaped text of the raw string value.
func String(raw []byte) (string, error) {
	b, err := AppendString(nil, raw)
	return string(b), err
}

// appendUnquoted decodes the escapes of a string body (between the quotes).
func appendUnquoted(dst, s []byte) ([]byte, error) {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return dst, ErrSyntax
		}
		switch s[i+1] {
		case '"', '\\', '/':
			dst = append(dst, s[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n, ok := readU(s[i:])
			if !ok {
				return dst, ErrSyntax
			}
			dst = utf8.AppendRune(dst, r)
			i += n
			continue
		default:
			return dst, ErrSyntax
		}
		i += 2
	}
	return dst, nil
}

// readU decodes \uXXXX at s[0], joining a surrogate pair; it returns the rune
// and the bytes consumed. Lone surrogates become U+FFFD, as in encoding/json.
func readU(s []byte) (rune, int, bool) {
	if len(s) < 6 || !isHex4(s[2:6]) {
		return 0, 0, false
	}
	r := hex4(s[2:6])
	if utf16.IsSurrogate(r) {
		if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' && isHex4(s[8:12]) {
			if d := utf16.DecodeRune(r, hex4(s[8:12])); d != utf8.RuneError {
				return d, 12, true
			}
		}
		return utf8.RuneError, 6, true
	}
	return r, 6, true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// Int parses a raw number that is an integer (no fraction or exponent).
func Int(raw []byte) (int64, error) {
	if end, err := skipNumber(raw, 0); err != nil || end != len(raw) {
		return 0, ErrType
	}
	neg := raw[0] == '-'
	digits := raw
	if neg {
		digits = raw[1:]
	}
	var v uint64
	for _, c := range digits {
		if c < '0' || c > '9' || v > (1<<63)/10 {
			return 0, ErrType // a fraction, an exponent, or out of range
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 1<<63 || (!neg && v == 1<<63) {
		return 0, ErrType
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// Float parses a raw number.
func Float(raw []byte) (float64, error) {
	if end, err := skipNumber(raw, 0); err != nil || end != len(raw) {
		return 0, ErrType
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, ErrType
	}
	return v, nil
}

// Bool parses a raw true or false.
func Bool(raw []byte) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, ErrType
}
