package edge_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/talowa/wedge/edge"
)

// splitNode is a node whose hello plugin runs a canary ("Canary") on 10%
// of clients, placed by split.
func splitNode(t *testing.T, split string) (n *testNode, greeting func(hdr ...string) string) {
	t.Helper()
	n = startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	rel := map[string]*edge.Release{"hello": {Canary: &edge.Release{Config: []byte(`{"greeting":"Canary"}`), Version: "c1"},
		Share: 10, Split: split}}
	if err := n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	return n, func(hdr ...string) string {
		t.Helper()
		_, h, _ := n.do(t, "GET", "www.example.com", "/x", nil, hdr...)
		return string(h.Peek("X-Hello"))
	}
}

// TestCanarySplitByHeader: behind one client address (every request here
// comes from 127.0.0.1), a 10% canary split by a header gives 10% of the
// header's values the canary, each value always the same side; a request
// without the header falls back to the address, as an address split does.
func TestCanarySplitByHeader(t *testing.T) {
	n, greeting := splitNode(t, "header:X-User")
	if r := n.Running()["hello"]; r.Split != "header:X-User" || r.Share != 10 {
		t.Fatalf("running %+v: want the header split reported", r)
	}
	const users = 1000
	side := make([]string, users)
	canary := 0
	for i := range users {
		side[i] = greeting("X-User", "user-"+strconv.Itoa(i))
		if side[i] == "Canary" {
			canary++
		}
	}
	// FNV-1a over 1,000 values: 10% +/- 3% (the hash is fixed, so this
	// count is the same on every run; the bound says what a split is).
	if canary < 70 || canary > 130 {
		t.Fatalf("%d of %d header values got the canary, want 10%% +/- 3%%", canary, users)
	}
	for i := 0; i < users; i += 7 {
		if got := greeting("x-user", "user-"+strconv.Itoa(i)); got != side[i] {
			t.Fatalf("user-%d got %q, then %q: a value must stay on its side", i, side[i], got)
		}
	}
	// Without the value, every request of the one address is on one side.
	first := greeting()
	for range 20 {
		if got := greeting("X-Other", "x"); got != first {
			t.Fatalf("without the header: %q, then %q: want the address's one side", first, got)
		}
	}
}

// TestCanarySplitByCookie: the same with a cookie, found among others and
// over several Cookie fields.
func TestCanarySplitByCookie(t *testing.T) {
	_, greeting := splitNode(t, "cookie:uid")
	const users = 500
	canary := 0
	for i := range users {
		uid := strconv.Itoa(i)
		got := greeting("Cookie", "theme=dark; uid="+uid+"; lang=en")
		if got == "Canary" {
			canary++
		}
		if again := greeting("Cookie", "theme=dark", "Cookie", `uid="`+uid+`"`); again != got {
			t.Fatalf("uid %s: %q in one Cookie field, %q in a second, quoted: want the same side", uid, got, again)
		}
	}
	if canary < 35 || canary > 65 {
		t.Fatalf("%d of %d cookie values got the canary, want 10%% +/- 3%%", canary, users)
	}
}

// TestCanarySplitRefused: a split the node cannot read is an error of
// SetReleases, and nothing changes.
func TestCanarySplitRefused(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	for _, split := range []string{"ip", "header:", "header:X User", "cookie:a=b"} {
		rel := map[string]*edge.Release{"hello": {Canary: &edge.Release{Version: "c1"}, Share: 10, Split: split}}
		if err := n.SetReleases(context.Background(), rel); err == nil {
			t.Errorf("split %q accepted", split)
		}
	}
	if r := n.Running()["hello"]; r.Canary != "" {
		t.Fatalf("running %+v after refused releases", r)
	}
}

// TestCanarySplitIPv6ByPrefix: a 10% address split places an IPv6 client
// by its /64, one host's: the 64 addresses of one /64 fall on one side
// (by its whole address, one host fell on both and could pick its side),
// and of 200 /64s some get the canary and most not.
func TestCanarySplitIPv6ByPrefix(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), `trusted_proxies: ["127.0.0.1"]`))
	rel := map[string]*edge.Release{"hello": {Canary: &edge.Release{Config: []byte(`{"greeting":"Canary"}`), Version: "c1"}, Share: 10}}
	if err := n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	side := func(addr string) string {
		t.Helper()
		_, h, _ := n.do(t, "GET", "www.example.com", "/x", nil, "X-Forwarded-For", addr)
		return string(h.Peek("X-Hello"))
	}
	sides := map[string]int{}
	for i := 1; i <= 64; i++ {
		sides[side(fmt.Sprintf("2001:db8:1:2:%x::%x", i*7919%0x10000, i))]++
	}
	if len(sides) != 1 {
		t.Errorf("64 addresses of 2001:db8:1:2::/64 fell on %d sides: %v", len(sides), sides)
	}
	canary := 0
	for i := range 200 {
		if side(fmt.Sprintf("2001:db8:%x:%x::1", i/16, i)) == "Canary" {
			canary++
		}
	}
	if canary == 0 || canary > 60 {
		t.Errorf("of 200 /64s, %d got the 10%% canary", canary)
	}
}
