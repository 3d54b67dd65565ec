package edge

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzFrontDoorHead: whatever method, target, authority and fields an
// HTTP/2 or HTTP/3 client sends, the header section the front door writes
// for fasthttp either is refused or reads back as exactly what was sent:
// the method, target, Host and one line per field value, so no value can
// add a field or a request line of its own.
func FuzzFrontDoorHead(f *testing.F) {
	for _, s := range [][5]string{
		{"GET", "/a?b=c", "edge.test", "X-A", "1"},
		{"POST", "/", "edge.test:8443", "Cookie", "a=1; b=2"},
		{"GET", "/a b", "x", "X", "v"},
		{"GET", "/\r\nX-Evil: 1", "x", "X", "v"},
		{"GET", "/", "x\r\nX-Evil: 1", "X", "v"},
		{"GET", "/", "x", "X\r\nY", "v"},
		{"GET", "/", "x", "X", "v\r\nX-Evil: 1"},
		{"G T", "/", "x", "X", "v"},
		{"GET", "*", "x", "Content-Length", "5"},
		{"GET", "/", "", "X", "\x00"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	fd := &frontDoor{proto: "HTTP/2.0"}
	f.Fuzz(func(t *testing.T, method, target, host, name, value string) {
		r := &http.Request{Method: method, RequestURI: target, Host: host, Header: http.Header{name: {value, value + "2"}}}
		b, ok := fd.head(nil, r)
		if !ok {
			return
		}
		var h fasthttp.RequestHeader
		h.DisableNormalizing()
		if err := h.Read(bufio.NewReader(bytes.NewReader(b))); err != nil {
			return // fasthttp refuses it: the front door answers 400
		}
		if string(h.Method()) != method || string(h.RequestURI()) != target || string(h.Protocol()) != "HTTP/2.0" {
			t.Fatalf("request line %q %q %q from %q %q", h.Method(), h.RequestURI(), h.Protocol(), method, target)
		}
		// One line per value, plus Host, as sent (Content-Length and Host
		// fields aside: the front door leaves them out).
		want := []string{"Host: " + host}
		if name != "Content-Length" && name != "Host" {
			want = append(want, name+": "+value, name+": "+value+"2")
		}
		got := strings.Split(strings.TrimSuffix(string(h.RawHeaders()), "\r\n\r\n"), "\r\n")
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("fields %q, want %q", got, want)
		}
	})
}
