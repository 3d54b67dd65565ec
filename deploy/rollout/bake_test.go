package rollout

import (
	"testing"
	"time"
)

// TestWaveStates: the waves before the current one are done, the current
// one has what is left of its bake once it bakes (all of it before, none
// once over), the later ones their whole bake; a rollout that rolls back
// or ended has none.
func TestWaveStates(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := &Rollout{State: StateRunning, Bake: 2 * time.Minute, Wave: 1, Phase: PhaseBaking, AppliedAt: at,
		Waves: []Wave{{Region: "eu-west", Share: 10}, {Region: "eu-west", Share: 100}, {Region: Everywhere}}}
	type got struct {
		state string
		left  time.Duration
	}
	check := func(what string, now time.Time, want ...got) {
		t.Helper()
		ws := r.WaveStates(now)
		if len(ws) != len(want) {
			t.Fatalf("%s: %d waves, want %d", what, len(ws), len(want))
		}
		for i, w := range ws {
			if (got{w.State, w.BakeLeft}) != want[i] || w.Wave.String() != r.Waves[i].String() {
				t.Errorf("%s: wave %d = %s %s %s, want %v", what, i+1, w.Wave, w.State, w.BakeLeft, want[i])
			}
		}
	}
	check("baking 30s", at.Add(30*time.Second), got{WaveDone, 0}, got{PhaseBaking, 90 * time.Second}, got{WaveWaiting, 2 * time.Minute})
	check("bake over", at.Add(5*time.Minute), got{WaveDone, 0}, got{PhaseBaking, 0}, got{WaveWaiting, 2 * time.Minute})
	r.Phase = PhaseApplying
	check("applying", at, got{WaveDone, 0}, got{PhaseApplying, 2 * time.Minute}, got{WaveWaiting, 2 * time.Minute})
	r.State = StateRollingBack
	check("rolling back", at)
	r.State = StateDone
	check("done", at)
}
