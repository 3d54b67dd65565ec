package edge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// purgeURL purges the cached responses for u through the admin API and
// returns how many entries went.
func (n *testNode) purgeURL(t *testing.T, u string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", n.Admin.URL+"/purge?url="+url.QueryEscape(u), nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var purged int
	if _, err := fmt.Sscanf(string(body), "purged %d", &purged); resp.StatusCode != 200 || err != nil {
		t.Fatalf("purge %q: %d %q", u, resp.StatusCode, body)
	}
	return purged
}

// TestPurgeURLFindsWhatThePluginStored: the cache plugin keys a response
// by the request a client sent (scheme, Host, path and query as received),
// purge by URL by the URL an operator writes. Both go through one key
// format (httpcache), but each side picks the parts its own way, so every
// case is a real request stored by the real plugin and then purged by URL:
// one entry purged means the two keys agree byte for byte.
func TestPurgeURLFindsWhatThePluginStored(t *testing.T) {
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=600"))
		resp.Body = append(resp.Body, "cacheable"...)
	})).Addr
	n := cacheNode(t, addr)

	for _, c := range []struct {
		name, host, target string
		url                string // names what target stored
		other              string // names another resource: purges nothing
	}{
		// Each case has a host of its own: the GET after a purge stores
		// its response again.
		{"the empty path is /", "a", "/", "http://a", ""},
		{"root with a query", "b", "/?a=1", "http://b?a=1", "http://b/"},
		{"scheme and host case, port", "Example.COM:8080", "/p", "HTTP://example.com:8080/p", "http://example.com/p"},
		{"query order as sent", "c", "/q?b=2&a=1", "http://c/q?b=2&a=1", "http://c/q?a=1&b=2"},
		{"percent-encoding as sent", "d", "/a%2Fb/%7Eu/caf%c3%a9", "http://d/a%2Fb/%7Eu/caf%c3%a9", ""},
		{"sub-delims as sent", "e", "/s!'()*;=,$", "http://e/s!'()*;=,$", ""},
		{"an empty query is none", "f", "/e?", "http://f/e?", ""},
		{"the fragment is no part of it", "g", "/f", "http://g/f#top", ""},
		// As written, never re-escaped: url.Parse made /a|b /a%7Cb, and
		// refused a bad escape outright.
		{"characters sent raw", "h", "/a|b/x{1}/x\"y/caf\u00e9", "http://h/a|b/x{1}/x\"y/caf\u00e9", "http://h/a%7Cb/x%7B1%7D/x%22y/caf%C3%A9"},
		{"a bad escape", "i", "/x%zz", "http://i/x%zz", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, _ := n.raw(t, "GET "+c.target+" HTTP/1.1\r\nHost: "+c.host+"\r\nConnection: close\r\n\r\n")
			if cs := resp.Header.Get("Cache-Status"); resp.StatusCode != 200 || !strings.Contains(cs, "stored") {
				t.Fatalf("GET %s: %d, Cache-Status %q: want it stored", c.target, resp.StatusCode, cs)
			}
			if c.other != "" {
				if got := n.purgeURL(t, c.other); got != 0 {
					t.Errorf("purge %q purged %d entries of %s", c.other, got, c.target)
				}
			}
			if got := n.purgeURL(t, c.url); got != 1 {
				t.Fatalf("purge %q purged %d entries, want the one GET %s (Host %s) stored", c.url, got, c.target, c.host)
			}
			resp, _ = n.raw(t, "GET "+c.target+" HTTP/1.1\r\nHost: "+c.host+"\r\nConnection: close\r\n\r\n")
			if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") {
				t.Errorf("GET %s after the purge: Cache-Status %q, want a miss", c.target, cs)
			}
		})
	}
}

// purgeTag purges the cached responses tagged tag through the admin API.
func (n *testNode) purgeTag(t *testing.T, tag string) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.Admin.URL+"/purge?tag="+url.QueryEscape(tag), nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("purge tag %q: %d", tag, resp.StatusCode)
	}
}

// TestPurgeDuringFill: an admin purge while the cache fills an entry
// keeps what the fill fetched out of the cache: its client gets it, the
// next one the version after the purge. The fill stored v1 after the
// purge, and every later request hit it.
func TestPurgeDuringFill(t *testing.T) {
	org := &purgeRaceOrigin{hold: make(chan struct{})}
	org.version.Store(1)
	n := cacheNode(t, origintest.Start(t, org).Addr)
	got := make(chan string, 1)
	go func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + n.Addr + "/fill")
		req.UseHostHeader = true
		req.Header.SetHost("x")
		if err := fasthttp.DoTimeout(req, resp, 20*time.Second); err != nil {
			got <- err.Error()
			return
		}
		got <- string(resp.Body())
	}()
	testutil.Eventually(t, 20*time.Second, "the fill reaches the origin", func() bool { return org.n.Load() == 1 })
	org.version.Store(2)
	n.purgeTag(t, "t")
	close(org.hold)
	if body := <-got; body != "v1" {
		t.Errorf("GET during the purge: %q, want v1 (fetched before it)", body)
	}
	if _, _, body := n.do(t, "GET", "x", "/fill", nil); body != "v2" {
		t.Errorf("GET after the purge: %q, want v2", body)
	}
	if got := org.n.Load(); got != 2 {
		t.Errorf("origin saw %d requests, want 2 (nothing stored by the fill)", got)
	}
}
