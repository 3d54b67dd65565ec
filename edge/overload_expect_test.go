package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
)

// TestOverloadExpectShedBeforeBody: with the concurrency limit full, a
// request that asks "Expect: 100-continue" before sending its body is shed
// at the header: answering 100 Continue first invited the whole upload
// (read whole, up to max_body_bytes and against max_read_bytes; or
// drained) only to throw it away with the 503.
func TestOverloadExpectShedBeforeBody(t *testing.T) {
	for _, limits := range []string{"{}", "{stream_threshold: 1024}"} {
		t.Run(limits, func(t *testing.T) {
			addr, reached, release := heldOrigin(t)
			defer release()
			n := startNode(t, fmt.Sprintf(`
limits: %s
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
overload: {min_limit: 1, initial_limit: 1, max_limit: 1, target_delay: 1h, queue_delay: 1h}
`, limits, addr, origintest.Key.Text()))
			hold, err := net.Dial("tcp4", n.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer hold.Close()
			io.WriteString(hold, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
			testutil.Eventually(t, time.Minute, "the limit's one request at the origin", func() bool { return reached.Load() == 1 })

			c, err := net.Dial("tcp4", n.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute)) // the failure signal, not a margin
			io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(line, "HTTP/1.1 503") {
				t.Fatalf("an upload that asked 100-continue with the limit full: first answer %q, want 503 before its body is asked for", strings.TrimSpace(line))
			}
		})
	}
}
