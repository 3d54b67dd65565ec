package edge_test

import "testing"

// TestAccessLogRefererLowercase: a Referer field spelt "referer" (as
// proxies that lower-case names send it) is logged too. The server keeps
// names as sent, and fasthttp's Referer() looks for the one spelling.
func TestAccessLogRefererLowercase(t *testing.T) {
	n, logFile, _ := heldNode(t, "sample: 1", 200)
	req := "GET /r HTTP/1.1\r\nHost: elsewhere\r\nuser-agent: lower/1.0\r\nreferer: https://ref.example/page?q=1\r\n\r\n"
	if resp, body, _ := rawExchange(t, n.Addr, req); resp.StatusCode != 404 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	l := waitAccessLog(t, logFile, 1)[0]
	if l.UserAgent != "lower/1.0" {
		t.Fatalf("user_agent %q", l.UserAgent)
	}
	if l.Referer != "https://ref.example/page" {
		t.Errorf("a \"referer\" field: referer %q, want %q", l.Referer, "https://ref.example/page")
	}
}
