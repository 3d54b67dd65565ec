// Where each wave of an active rollout stands and how much of its bake is
// left, for the status page: read from the rollout record alone.

package rollout

import "time"

// Wave states in a WaveState, beside the phases of the current wave.
const (
	WaveDone    = "done"    // promoted
	WaveWaiting = "waiting" // a later wave, not started
)

// WaveState is one wave of an active rollout as the status page shows it.
type WaveState struct {
	Wave Wave `json:"wave"`
	// State is WaveDone, WaveWaiting, or the current wave's phase
	// (PhasePending, PhaseApplying, PhaseBaking).
	State string `json:"state"`
	// BakeLeft is how much of the bake the wave has still to hold its
	// gates: all of it before baking starts, 0 once it is over (the wave
	// then waits for MinRequests, or for a resume if paused).
	BakeLeft time.Duration `json:"bake_left"`
}

// WaveStates returns the waves of a running rollout, at now, and nil for
// one that rolls back or ended: no wave of it bakes any more.
func (r *Rollout) WaveStates(now time.Time) []WaveState {
	if r.State != StateRunning {
		return nil
	}
	out := make([]WaveState, len(r.Waves))
	for i, w := range r.Waves {
		s := WaveState{Wave: w, State: WaveWaiting, BakeLeft: r.Bake}
		switch {
		case i < r.Wave:
			s.State, s.BakeLeft = WaveDone, 0
		case i > r.Wave:
		case r.Phase == PhaseBaking:
			s.State, s.BakeLeft = PhaseBaking, max(r.Bake-now.Sub(r.AppliedAt), 0)
		default:
			s.State = r.Phase
		}
		out[i] = s
	}
	return out
}
