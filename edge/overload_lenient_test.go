package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestOverloadShedClosesUntrustedFraming: a request whose header
// section lenient refuses (obs-fold, a bare LF ending a field line, a
// field name that is not a token) is answered with the connection closed,
// since "the framing of what follows on the connection is not to be
// trusted either" (handler.go): a parser before the edge may have read a
// field hidden in a fold (a Transfer-Encoding, a Content-Length) and framed
// the body otherwise. admit ran before lenient, so while the node shed,
// such a request got the shed 503 on a connection kept open, and what the
// proxy before it sent as this request's body was read as the next request
// (smuggling, response queue poisoning): an attacker who could make the
// node shed (filling the limit, or its CPU) reopened the hole lenient
// closed.
func TestOverloadShedClosesUntrustedFraming(t *testing.T) {
	addr, reached, release := heldOrigin(t)
	defer release()
	n := startNode(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
overload: {min_limit: 1, initial_limit: 1, max_limit: 1, target_delay: 1h, queue_delay: 1h}
`, addr, origintest.Key.Text()))
	// Not shedding: each is refused 400 and the connection closed.
	cases := map[string]string{
		"HTTP/1.2 keep-alive": "POST /x HTTP/1.2\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
		"userinfo host":       "GET /x HTTP/1.1\r\nHost: u@a\r\n\r\n",
		"obs-fold":            "POST /x HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
		"bare LF":             "POST /x HTTP/1.1\r\nHost: a\r\nX: y\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
		"non-token name":      "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
	}
	answer := func(req string) *http.Response {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(time.Minute)) // the failure signal, not a margin
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for name, req := range cases {
		if resp := answer(req); resp.StatusCode < 400 || !resp.Close {
			t.Logf("%s, not shedding: %d close %v (expected a 4xx or 505, closed)", name, resp.StatusCode, resp.Close)
		}
	}
	// Shedding: the limit's one place taken.
	hold, err := net.Dial("tcp4", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	io.WriteString(hold, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	testutil.Eventually(t, time.Minute, "the limit's one request at the origin", func() bool { return reached.Load() == 1 })
	for name, req := range cases {
		resp := answer(req)
		t.Logf("%s while shedding: %d close %v", name, resp.StatusCode, resp.Close)
		if !resp.Close {
			t.Errorf("%s while shedding: %d with the connection kept open, want it closed (or the 400)", name, resp.StatusCode)
		}
	}
}
