package limitsync

import (
	"log/slog"
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/host"
)

// TestBatchInAnotherName: a batch counts as the POP its subject names (the
// one NATS let publish there), and one whose body names another POP is
// refused: neither heard from nor charged.
func TestBatchInAnotherName(t *testing.T) {
	if got := Subject(host.ScopeRegion, "eu", "pop-b"); got != "wedge.ratelimit.region.eu.pop-b" {
		t.Errorf("region subject %q", got)
	}
	if got := Subject(host.ScopeGlobal, "eu", "*"); got != "wedge.ratelimit.global.*" {
		t.Errorf("global subject %q", got)
	}
	limits := host.NewShared(host.NewGCRA(1024))
	s := &Sync{o: Options{Limits: limits, Region: "eu", POP: "pop-a", Logger: slog.New(slog.DiscardHandler)}}
	s.seen = [3]map[string]time.Time{host.ScopeRegion: {}, host.ScopeGlobal: {}}
	s.prefixes[host.ScopeGlobal] = Subject(host.ScopeGlobal, "eu", "")
	batch := func(pop string) []byte {
		return appendEntry(appendHeader(nil, pop), "@global:k", host.Usage{Limit: 10, Period: time.Minute, Units: 10})
	}
	for _, subject := range []string{
		Subject(host.ScopeGlobal, "eu", "pop-b"),   // pop-b's subject, pop-c's body
		Subject(host.ScopeRegion, "eu", "pop-c"),   // another scope's subject
		Subject(host.ScopeGlobal, "eu", "pop-c.x"), // a longer one
	} {
		s.receive(host.ScopeGlobal, subject, batch("pop-c"), nil)
	}
	if n := s.Peers(host.ScopeGlobal); n != 0 {
		t.Fatalf("batches in another POP's name heard: %d peers", n)
	}
	if ok, _ := limits.Take([]byte("@global:k"), 10, time.Minute, 1, 1); !ok {
		t.Fatal("a refused batch was charged")
	}
	s.receive(host.ScopeGlobal, Subject(host.ScopeGlobal, "eu", "pop-c"), batch("pop-c"), nil)
	if n := s.Peers(host.ScopeGlobal); n != 1 {
		t.Fatalf("pop-c's own batch: %d peers, want 1", n)
	}
}
