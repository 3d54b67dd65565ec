package edge

import (
	"net"
	"testing"
)

// TestAppendAddr holds appendAddr to the text net.Addr.String gives, which
// plugins and the origin have always seen as the client address.
func TestAppendAddr(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		&net.TCPAddr{IP: net.IP{192, 0, 2, 7}, Port: 1},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 8080},
		&net.TCPAddr{IP: net.ParseIP("::"), Port: 0},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"},
		&net.TCPAddr{Port: 80},
		&net.UnixAddr{Name: "/run/edge.sock", Net: "unix"},
	} {
		if got, want := string(appendAddr([]byte("x"), a)), "x"+a.String(); got != want {
			t.Errorf("%#v: %q, want %q", a, got, want)
		}
	}
}
