package edge_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOversizedStreamedNoExpect: with stream_threshold set, a request
// announcing a body past its route's max_body_bytes and sending only its
// header gets 413 at once, with the connection closed (its body is not
// read), whether it is HTTP/1.0 (which has no Expect) or HTTP/1.1 without
// Expect. fasthttp read the first piece of a streamed body before the
// handler ran: an HTTP/1.0 client waiting to be told waited read_timeout
// for a 408. read_timeout is 10 minutes and the client's read deadline a
// minute, so a wait for the body fails the test. An HTTP/1.0 upload within
// the bound is still served.
func TestOversizedStreamedNoExpect(t *testing.T) {
	n, log := startAbused(t, "stream_threshold: 1024, read_timeout: 10m")
	for _, tc := range []struct{ name, req string }{
		{"HTTP/1.0", "POST /api/x HTTP/1.0\r\nHost: api.example.com\r\nContent-Length: 100000\r\n\r\n"},
		{"HTTP/1.0 keep-alive", "POST /api/x HTTP/1.0\r\nHost: api.example.com\r\nConnection: keep-alive\r\nContent-Length: 100000\r\n\r\n"},
		{"HTTP/1.1", "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 100000\r\n\r\n"},
	} {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute)) // the failure signal, not a margin
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
		if err != nil {
			c.Close()
			t.Errorf("%s: no answer before the body: %v", tc.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		_, err = br.ReadByte()
		c.Close()
		var ne net.Error
		if resp.StatusCode != 413 || !strings.Contains(string(body), "limit") || resp.Header.Get("Date") == "" || errors.As(err, &ne) {
			t.Errorf("%s: %d %q Date %q, then %v; want 413 with a Date, the reason and the connection closed",
				tc.name, resp.StatusCode, body, resp.Header.Get("Date"), err)
		}
	}
	ok := strings.Repeat("u", 5000) // past stream_threshold: streamed
	_, resp, body := closing(t, n.Addr, "POST /api/in HTTP/1.0\r\nHost: api.example.com\r\nContent-Length: 5000\r\n\r\n"+ok)
	if resp.StatusCode != 200 {
		t.Errorf("HTTP/1.0 upload within the bound: %d %q, want 200", resp.StatusCode, body)
	}
	if c := log.seen("/api/x"); c != 0 {
		t.Errorf("the origin got %d oversized requests", c)
	}
	served(t, n.Addr, "after the oversized uploads")
}
