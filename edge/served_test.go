package edge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// servedNode runs a node whose route "chain" runs hello (version 1) and
// cache (version 2) in front of an origin that answers cacheable responses
// carrying a forged Wedge-Served, and whose route "bare" runs no plugin.
func servedNode(t *testing.T, served bool) *testNode {
	t.Helper()
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) {
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=3600"))
		resp.AddHeader([]byte(edge.ServedHeader), []byte("forged@9"))
		resp.Body = append(resp.Body, "ok"...)
	})).Addr
	return startNode(t, fmt.Sprintf(`
served_header: %t
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - name: chain
    host: chain
    origin: app
    chain:
      - {file: %q, version: "1"}
      - {file: %q, version: "2"}
  - name: bare
    host: bare
    origin: app
`, served, addr, origintest.Key.Text(), hello(t), plugins(t)["cache"]))
}

// TestServedHeader: with served_header on, a response names the versions
// that ran, in chain order: both on a miss and on a cache hit, only hello
// when it answers, a canary's version when the request runs it and the
// stable one when a Wedge-Pin picks it; none, and not the origin's forgery,
// where no plugin ran.
func TestServedHeader(t *testing.T) {
	n := servedNode(t, true)
	served := func(host, target string, hdr ...string) (string, string) {
		t.Helper()
		status, h, _ := n.do(t, "GET", host, target, nil, hdr...)
		if status != 200 {
			t.Fatalf("GET %s%s: %d", host, target, status)
		}
		if vs := h.PeekAll(edge.ServedHeader); len(vs) > 1 {
			t.Fatalf("GET %s%s: %d %s fields", host, target, len(vs), edge.ServedHeader)
		}
		return string(h.Peek(edge.ServedHeader)), string(h.Peek("Cache-Status"))
	}
	if got, cache := served("chain", "/page"); got != "hello@1, cache@2" {
		t.Errorf("miss: %s %q (Cache-Status %q), want the chain", edge.ServedHeader, got, cache)
	}
	if got, cache := served("chain", "/page"); got != "hello@1, cache@2" || !strings.Contains(cache, "hit") {
		t.Errorf("hit: %s %q (Cache-Status %q), want the chain on a hit", edge.ServedHeader, got, cache)
	}
	if got, _ := served("chain", "/hello"); got != "hello@1" {
		t.Errorf("hello's answer: %s %q, want hello alone", edge.ServedHeader, got)
	}
	if got, _ := served("bare", "/page"); got != "" {
		t.Errorf("no plugin ran: %s %q, want none", edge.ServedHeader, got)
	}

	rel := map[string]*edge.Release{"hello": {Canary: &edge.Release{Version: "c1"}, Share: 100}}
	if err := n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	if got, _ := served("chain", "/page"); got != "hello@c1, cache@2" {
		t.Errorf("canary: %s %q, want the canary's version", edge.ServedHeader, got)
	}
	stable := n.Running()["hello"].Version
	if got, _ := served("chain", "/page", pin("hello@"+stable)...); got != "hello@"+stable+", cache@2" {
		t.Errorf("pinned to %s: %s %q", stable, edge.ServedHeader, got)
	}
}

// TestServedHeaderOff: by default the edge adds nothing and passes the
// origin's fields as they are.
func TestServedHeaderOff(t *testing.T) {
	n := servedNode(t, false)
	if _, h, _ := n.do(t, "GET", "chain", "/page", nil); string(h.Peek(edge.ServedHeader)) != "forged@9" {
		t.Errorf("served_header off: %s %q, want the origin's", edge.ServedHeader, h.Peek(edge.ServedHeader))
	}
}
