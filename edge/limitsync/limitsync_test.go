package limitsync

import (
	"log/slog"
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/host"
)

// TestShares: a POP takes up its share, by the peers it heard from in the
// last rememberTTL, when the link goes or when its peers fall silent on a
// link that looks up, and keeps that n while cut.
func TestShares(t *testing.T) {
	s := &Sync{o: Options{Limits: host.NewShared(host.NewGCRA(1024)), Logger: slog.New(slog.DiscardHandler)}}
	s.seen = [3]map[string]time.Time{host.ScopeRegion: {}, host.ScopeGlobal: {}}
	t0 := time.Unix(1e9, 0)
	for _, pop := range []string{"b", "c"} {
		s.heard(host.ScopeGlobal, pop, t0)
	}
	s.heard(host.ScopeRegion, "b", t0)
	for i, step := range []struct {
		at        time.Duration
		heard     bool // b and c publish at this step
		connected bool
		global    int
		region    int
	}{
		{at: time.Second, connected: true, global: 1, region: 1},
		{at: 6 * time.Second, connected: true, global: 3, region: 2}, // silent partition: the link looks up
		{at: 7 * time.Second, heard: true, connected: true, global: 1, region: 1},
		{at: 20 * time.Second, connected: false, global: 3, region: 2}, // the cut seen 13 s after the last batch
		{at: 200 * time.Second, connected: false, global: 3, region: 2},
		{at: 201 * time.Second, heard: true, connected: true, global: 1, region: 1},
		{at: 210 * time.Second, connected: true, global: 3, region: 2},
		{at: 300 * time.Second, connected: true, global: 1, region: 1}, // peers gone for good: the scope shrank
	} {
		now := t0.Add(step.at)
		if step.heard {
			s.heard(host.ScopeGlobal, "b", now)
			s.heard(host.ScopeGlobal, "c", now)
			s.heard(host.ScopeRegion, "b", now)
		}
		s.mu.Lock()
		s.setShares(step.connected, now)
		s.mu.Unlock()
		if g, r := s.o.Limits.Share(host.ScopeGlobal), s.o.Limits.Share(host.ScopeRegion); g != step.global || r != step.region {
			t.Errorf("step %d (+%v, connected %v): shares global %d, region %d; want %d, %d", i, step.at, step.connected, g, r, step.global, step.region)
		}
	}
}
