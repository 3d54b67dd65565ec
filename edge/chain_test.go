package edge_test

import (
	"fmt"
	"testing"

	"github.com/talowa/wedge/origin/origintest"
)

// TestChainHealthOfPluginsThatRan: what the edge adds to the chain runner
// it shares with the tests (host.Flow): health goes to the versions whose
// request phase ran, a plugin behind one that answered counting nothing,
// and a failure to the version that failed alone, even when its failure
// policy lets the request go on.
func TestChainHealthOfPluginsThatRan(t *testing.T) {
	n := startNode(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {name: outer, file: %q, config: {greeting: Outer}}
      - {name: misbehave, file: %q, failure: open}
      - {name: inner, file: %[3]q, config: {greeting: Inner}}
`, startOrigin(t, "o"), origintest.Key.Text(), hello(t), misbehave(t)))
	health := func() map[string][2]uint64 {
		m := map[string][2]uint64{}
		for _, h := range n.Health() {
			m[h.Plugin] = [2]uint64{h.Requests, h.Errors}
		}
		return m
	}
	// outer answers: the plugins behind it never see the request.
	if st, h, body := n.do(t, "GET", "x", "/hello", nil); st != 200 || body != "Outer, world!\n" || string(h.Peek("X-Hello")) != "Outer" {
		t.Fatalf("answered by outer: %d %q X-Hello %q", st, body, h.Peek("X-Hello"))
	}
	if got, want := fmt.Sprint(health()), "map[inner:[0 0] misbehave:[0 0] outer:[1 0]]"; got != want {
		t.Errorf("after an answer, health %s, want %s", got, want)
	}
	// misbehave fails open: every plugin ran, only misbehave failed; the
	// response phases ran in reverse, outer's last.
	if st, h, _ := n.do(t, "GET", "x", "/x", nil, "X-Misbehave", "request:fail"); st != 200 || string(h.Peek("X-Hello")) != "Outer" {
		t.Fatalf("through the chain: %d X-Hello %q", st, h.Peek("X-Hello"))
	}
	if got, want := fmt.Sprint(health()), "map[inner:[1 0] misbehave:[1 1] outer:[2 0]]"; got != want {
		t.Errorf("after a failure, health %s, want %s", got, want)
	}
}
