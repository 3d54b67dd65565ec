package edge_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin/origintest"
)

// TestReadBytesBound: a body read whole takes its announced length from
// limits.max_read_bytes as soon as its header is in, since fasthttp
// allocates that much at once. Clients that announce bodies and send
// nothing fill it; the next such request gets 503 and Retry-After at once
// (with Expect: 100-continue, before any 100 Continue), a small body is
// still served, and once a holder hangs up its bytes are free again.
func TestReadBytesBound(t *testing.T) {
	cfg := strings.Replace(config(startOrigin(t, "origin-1"), hello(t), ""),
		"max_body_bytes: 65536}", "max_body_bytes: 65536, max_read_bytes: 131072}", 1)
	n := startNode(t, cfg)
	const announce = "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 65536\r\n"
	var held []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp4", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, announce+"\r\n"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		waitMetric(t, n, atLeast(float64(i+1)*65536), "wedge_edge_read_bytes")
	}

	for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
		resp, body, _, closed := exchange(t, n.Addr, announce+expect+"\r\n", 5*time.Second)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "request bodies") || !closed {
			t.Fatalf("%q past max_read_bytes: %d Retry-After %q body %q, closed %t; want 503, Retry-After, closed",
				expect, resp.StatusCode, resp.Header.Get("Retry-After"), body, closed)
		}
	}
	if s := metric(t, n, "wedge_edge_shed_total", "reason", "read_bytes"); s != 2 {
		t.Errorf("shed_total{read_bytes} %v, want 2", s)
	}
	if b := metric(t, n, "wedge_edge_read_bytes"); b != 131072 {
		t.Errorf("read_bytes %v after the refusals, want 131072 (the two held)", b)
	}
	// A body no longer than max_header_bytes is not counted.
	if st, _, _ := n.do(t, "POST", "api.example.com", "/api/x", make([]byte, 4000)); st != 200 {
		t.Fatalf("small body at the bound: %d, want 200", st)
	}
	// A holder hangs up: its bytes go back, and a body that long is served.
	held[0].Close()
	waitMetric(t, n, func(v float64) bool { return v == 65536 }, "wedge_edge_read_bytes")
	if st, _, _ := n.do(t, "POST", "api.example.com", "/api/x", make([]byte, 65536)); st != 200 {
		t.Fatalf("after a holder left: %d, want 200", st)
	}
	if b := metric(t, n, "wedge_edge_read_bytes"); b != 65536 {
		t.Errorf("read_bytes %v after a served body, want 65536 (the one still held)", b)
	}
}

// TestMaxReadBytesConfig: max_read_bytes defaults to max_body_bytes where
// that is larger than 256 MiB (a config with larger bodies was refused
// once the bound came in), and one set below max_body_bytes is refused.
func TestMaxReadBytesConfig(t *testing.T) {
	doc := func(limits string) []byte {
		return []byte(fmt.Sprintf("limits: {%s}\norigins:\n  app: {addr: 127.0.0.1:9, key: %q}\nroutes:\n  - {path: /, origin: app}\n",
			limits, origintest.Key.Text()))
	}
	cfg, err := edge.ParseConfig(doc("max_body_bytes: 536870912"), t.TempDir())
	if err != nil || cfg.Limits.MaxReadBytes != 536870912 {
		t.Fatalf("max_body_bytes 512 MiB: %v, max_read_bytes %d, want it too", err, cfg.Limits.MaxReadBytes)
	}
	if _, err := edge.ParseConfig(doc("max_body_bytes: 1048576, max_read_bytes: 65536"), t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "max_read_bytes 65536 is less than max_body_bytes 1048576") {
		t.Fatalf("max_read_bytes below max_body_bytes: %v", err)
	}
}
