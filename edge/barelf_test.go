package edge

import "testing"

// wholeBareLF is the rule lineEndConn applies, on a whole header section
// at once: whether a line ends in a bare LF before the empty line that ends
// the section (empty lines before the request line are skipped, with CRLF
// or LF), and whether the section ended.
func wholeBareLF(b []byte) (bare, ended bool) {
	lines, start := false, 0
	for i, c := range b {
		if c != '\n' {
			continue
		}
		line := b[start:i]
		start = i + 1
		if len(line) == 0 || line[len(line)-1] != '\r' {
			if len(line) > 0 || lines {
				return true, false
			}
			continue
		}
		if len(line) == 1 {
			if lines {
				return false, true
			}
			continue
		}
		lines = true
	}
	return false, false
}

// scanInReads feeds b to a lineEndConn's scan in reads of the sizes cuts
// gives (cycled), as the bytes would arrive.
func scanInReads(b []byte, cuts []byte) (bare, ended bool) {
	c := &lineEndConn{}
	for i := 0; len(b) > 0; i++ {
		n := len(b)
		if len(cuts) > 0 {
			n = min(n, int(cuts[i%len(cuts)])%64+1)
		}
		if c.bareLF(b[:n]) {
			return true, false
		}
		if c.state == inBody {
			return false, true
		}
		b = b[n:]
	}
	return false, false
}

func TestLineEndScan(t *testing.T) {
	for _, tc := range []struct {
		in          string
		bare, ended bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, true},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody\n\n", false, true},
		{"GET / HTTP/1.1\r\nHost: x\r\n", false, false},
		{"GET / HTTP/1.1\nHost: x\n\n", true, false},
		{"GET / HTTP/1.1\r\nHost: x\n", true, false},
		{"GET / HTTP/1.1\r\nHost: x\r\n\n", true, false},
		{"\r\n\n\r\nGET / HTTP/1.1\r\n\r\n", false, true},
		{"\n", false, false},
		{"", false, false},
		{"GET / HTTP/1.1\r\r\n\r\n", false, true},
	} {
		bare, ended := wholeBareLF([]byte(tc.in))
		if bare != tc.bare || ended != tc.ended {
			t.Errorf("%q: bare LF %t, ended %t; want %t, %t", tc.in, bare, ended, tc.bare, tc.ended)
		}
		for _, cuts := range [][]byte{nil, {0}, {1}, {2, 0, 5}} {
			if b, e := scanInReads([]byte(tc.in), cuts); b != bare || e != ended {
				t.Errorf("%q in reads %v: bare LF %t, ended %t; want %t, %t", tc.in, cuts, b, e, bare, ended)
			}
		}
	}
}

// FuzzLineEndScan: however a header section is cut into reads, the scan
// finds what the whole-section rule finds.
func FuzzLineEndScan(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte{0})
	f.Add([]byte("GET / HTTP/1.1\nHost: x\n\n"), []byte{1, 3})
	f.Add([]byte("\r\n\nGET / HTTP/1.1\r\nX: a\r\r\n\n"), []byte{2})
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		bare, ended := wholeBareLF(b)
		if gb, ge := scanInReads(b, cuts); gb != bare || ge != ended {
			t.Fatalf("%q in reads %v: bare LF %t, ended %t; the whole section says %t, %t", b, cuts, gb, ge, bare, ended)
		}
	})
}
