package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// frame builds one frame: fin, opcode, payload, masked with a fixed key
// when masked.
func frame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if masked {
		key := [4]byte{1, 2, 3, 4}
		out = append(out, key[:]...)
		for i, c := range payload {
			out = append(out, c^key[i%4])
		}
		return out
	}
	return append(out, payload...)
}

func TestScanWholeStream(t *testing.T) {
	stream := bytes.Join([][]byte{
		frame(true, opText, []byte("hello"), true),
		frame(false, opBinary, make([]byte, 300), true),
		frame(true, 0x9, []byte("ping"), true), // a control frame between fragments
		frame(false, opContinuation, make([]byte, 70000), true),
		frame(true, opContinuation, nil, true),
		frame(true, opClose, []byte{0x03, 0xe8}, true),
	}, nil)
	// Whole, and in every split into two reads: the same bytes consumed.
	for cut := 0; cut <= len(stream); cut += 1 + cut/7 {
		tr := Tracker{Masked: true, Max: 70300}
		n, err := tr.Scan(stream[:cut], false)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		rest := stream[n:]
		if len(stream[n:cut]) >= MaxHeader {
			t.Fatalf("cut %d: %d bytes left unconsumed, more than a header", cut, cut-n)
		}
		m, err := tr.Scan(rest, false)
		if err != nil || m != len(rest) {
			t.Fatalf("cut %d: second scan took %d of %d: %v", cut, m, len(rest), err)
		}
		if !tr.Boundary() || !tr.Closed() {
			t.Fatalf("cut %d: boundary %v closed %v", cut, tr.Boundary(), tr.Closed())
		}
	}
}

func TestScanMessageLimit(t *testing.T) {
	// The limit counts the whole message, over its fragments.
	tr := Tracker{Max: 100}
	ok := append(frame(false, opText, make([]byte, 60), false), frame(true, opContinuation, make([]byte, 40), false)...)
	if n, err := tr.Scan(ok, false); err != nil || n != len(ok) {
		t.Fatalf("100 bytes in two fragments: %d %v", n, err)
	}
	first := frame(false, opText, make([]byte, 60), false)
	over := append(first, frame(true, opContinuation, make([]byte, 41), false)...)
	n, err := tr.Scan(over, false)
	if !errors.Is(err, ErrTooBig) || n != len(first) {
		t.Fatalf("101 bytes in two fragments: %d %v, want ErrTooBig after the first frame (%d)", n, err, len(first))
	}
	// Control frames do not count, and a new message starts from zero.
	tr = Tracker{Max: 10}
	s := bytes.Join([][]byte{frame(true, opBinary, make([]byte, 10), false), frame(true, 0x9, make([]byte, 100), false),
		frame(true, opBinary, make([]byte, 10), false)}, nil)
	if n, err := tr.Scan(s, false); err != nil || n != len(s) {
		t.Fatalf("messages at the limit: %d %v", n, err)
	}
}

func TestScanRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		masked bool
		in     []byte
	}{
		{"unmasked from a client", true, frame(true, opText, []byte("x"), false)},
		{"masked from a server", false, frame(true, opText, []byte("x"), true)},
		{"reserved opcode", false, frame(true, 0x3, nil, false)},
		{"reserved control opcode", false, frame(true, 0xB, nil, false)},
		{"fragmented control", false, frame(false, 0x9, nil, false)},
		{"long control", false, frame(true, 0x9, make([]byte, 126), false)},
		{"continuation first", false, frame(true, opContinuation, nil, false)},
		{"message in a message", false, append(frame(false, opText, nil, false), frame(true, opText, nil, false)...)},
		{"length top bit", false, []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}},
	} {
		tr := Tracker{Masked: c.masked}
		if _, err := tr.Scan(c.in, false); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", c.name, err)
		}
	}
}

func TestScanStopsAtBoundary(t *testing.T) {
	a, b := frame(true, opText, make([]byte, 10), false), frame(true, opText, make([]byte, 10), false)
	var tr Tracker
	if n, _ := tr.Scan(a[:5], false); n != 5 || tr.Boundary() {
		t.Fatalf("mid-frame: %d, boundary %v", n, tr.Boundary())
	}
	// With stop, the rest of the frame goes and nothing of the next.
	rest := append(a[5:len(a):len(a)], b...)
	if n, _ := tr.Scan(rest, true); n != len(a)-5 || !tr.Boundary() {
		t.Fatalf("stop: consumed %d, want %d", n, len(a)-5)
	}
	if n, _ := tr.Scan(b, true); n != 0 {
		t.Fatalf("stop at a boundary: consumed %d, want 0", n)
	}
}

func TestAppendClose(t *testing.T) {
	if got := AppendClose(nil, 1001, false, [4]byte{}); !bytes.Equal(got, []byte{0x88, 2, 0x03, 0xe9}) {
		t.Fatalf("unmasked: %x", got)
	}
	got := AppendClose(nil, 1001, true, [4]byte{1, 2, 3, 4})
	if !bytes.Equal(got, frame(true, opClose, []byte{0x03, 0xe9}, true)) {
		t.Fatalf("masked: %x", got)
	}
	// Both are frames a Tracker of their direction accepts.
	for _, masked := range []bool{false, true} {
		tr := Tracker{Masked: masked}
		f := AppendClose(nil, 1009, masked, [4]byte{9, 8, 7, 6})
		if n, err := tr.Scan(f, false); err != nil || n != len(f) || !tr.Closed() {
			t.Fatalf("masked %v: %d %v", masked, n, err)
		}
	}
}

// FuzzScan feeds arbitrary bytes in two reads, as a proxy gets them:
// Scan must never panic, never consume past its input, leave at most a
// header's bytes unconsumed without an error, and consume the same bytes
// whatever the split.
func FuzzScan(f *testing.F) {
	f.Add(frame(true, opText, []byte("hello"), true), uint16(3), true, uint64(0))
	f.Add(append(frame(false, opBinary, make([]byte, 200), false), frame(true, opContinuation, make([]byte, 200), false)...), uint16(150), false, uint64(300))
	f.Add([]byte{0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(5), false, uint64(0))
	f.Add(AppendClose(nil, 1000, true, [4]byte{1, 2, 3, 4}), uint16(1), true, uint64(1))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16, masked bool, max uint64) {
		whole := Tracker{Masked: masked, Max: max}
		wn, werr := whole.Scan(in, false)
		if wn < 0 || wn > len(in) {
			t.Fatalf("consumed %d of %d", wn, len(in))
		}
		if werr == nil && len(in)-wn >= MaxHeader {
			t.Fatalf("left %d bytes unconsumed without an error", len(in)-wn)
		}
		c := min(int(cut), len(in))
		split := Tracker{Masked: masked, Max: max}
		n1, err := split.Scan(in[:c], false)
		if err != nil {
			if n1 != wn || !errors.Is(err, errorKind(werr)) {
				t.Fatalf("split at %d: %d %v, whole: %d %v", c, n1, err, wn, werr)
			}
			return
		}
		n2, err := split.Scan(in[n1:], false)
		if n1+n2 != wn || (err == nil) != (werr == nil) {
			t.Fatalf("split at %d: %d+%d %v, whole: %d %v", c, n1, n2, err, wn, werr)
		}
		if split != whole {
			t.Fatalf("split at %d: state %+v, whole %+v", c, split, whole)
		}
	})
}

func errorKind(err error) error {
	if errors.Is(err, ErrTooBig) {
		return ErrTooBig
	}
	return ErrProtocol
}
