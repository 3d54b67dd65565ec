package edge_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestAccessLogCacheStatusUpstream: cache_status says what the edge's
// cache did when a cache nearer the origin reports too. RFC 9211 puts
// that cache's members first and the edge's cache adds its own after
// them: the line once held the first field alone, the application's
// cache's, and never the edge's.
func TestAccessLogCacheStatusUpstream(t *testing.T) {
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=3600"))
		resp.AddHeader([]byte("Cache-Status"), []byte("app-cache; hit"))
		resp.Body = append(resp.Body, "ok"...)
	})).Addr
	logFile := filepath.Join(t.TempDir(), "access.log")
	n := edgetest.Start(t, fmt.Sprintf(`
access_log: {path: %q}
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: cached, host: cached, origin: app, chain: [{file: %q}]}
`, logFile, addr, origintest.Key.Text(), plugins(t)["cache"]))
	var got []string
	for range 2 { // the miss, then the edge's hit
		resp, body, _ := rawExchange(t, n.Addr, "GET /c HTTP/1.1\r\nHost: cached\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		got = append(got, strings.Join(resp.Header.Values("Cache-Status"), ", "))
	}
	for i, l := range waitAccessLog(t, logFile, 2) {
		if !strings.Contains(l.CacheStatus, "wedge;") {
			t.Errorf("request %d: cache_status %q has no member of the edge's cache; the client got %q", i, l.CacheStatus, got[i])
		}
	}
}

// TestAccessLogCacheStatusTier: the same with the regional tier: a key
// another POP owns, fetched at A, then a local hit at A, whose client gets
// "wedge-tier; ..., wedge; hit". A's line must say the hit, not only the
// owner's "wedge-tier; ..." member, as on the miss.
func TestAccessLogCacheStatusTier(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	pops := startRegion(t, &countingOrigin{}, fmt.Sprintf("access_log: {path: %q}\n", logFile), "pop-a", "pop-b")
	path := ownedBy("pop-b", "/obj/", 1, "pop-a", "pop-b")[0]
	miss := pops[0].mustGet(t, path)
	hit := pops[0].mustGet(t, path)
	if !strings.Contains(hit, ", wedge; hit") {
		t.Fatalf("second GET at A: Cache-Status %q, want A's own hit", hit)
	}
	lines := waitAccessLog(t, logFile, 2)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want A's 2", len(lines))
	}
	if !strings.Contains(lines[1].CacheStatus, "wedge; hit") {
		t.Errorf("A's local hit logged with cache_status %q (the miss's: %q); the client got %q, after %q",
			lines[1].CacheStatus, lines[0].CacheStatus, hit, miss)
	}
}
