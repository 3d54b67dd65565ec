package rollout

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
)

// Summary is the fleet and its rollouts at a glance, for `wedgectl
// rollout status` and the controller's status page.
type Summary struct {
	Time time.Time `json:"time"`
	// HealthWindow says what the health figures of Regions cover: they
	// are each POP's counters of that plugin version, which start from
	// zero whenever the POP loads the version (again), as a report holds
	// counters and one read has no earlier report to subtract. Gate
	// values of the rollouts are over the current wave's bake window
	// instead.
	HealthWindow string           `json:"health_window"`
	Regions      []RegionHealth   `json:"regions"`
	Rollouts     []*Rollout       `json:"rollouts"` // active ones, then the 10 most recent others
	Audit        []manifest.Audit `json:"audit"`    // the last 20, oldest first
	// Waves are the waves of each running rollout, by ID, with the bake
	// time each has left (Rollout.WaveStates at Time).
	Waves map[string][]WaveState `json:"waves,omitempty"`
	// Stuck are the active rollouts, by ID, whose latest audit entry (of
	// Audit) is a step that fails every tick, with why.
	Stuck map[string]string `json:"stuck,omitempty"`
	// Leaderless says, while rollouts are active, that no controller
	// holds the lease (its holder stopped without a goodbye, and its
	// lease has not run out for another to take over): nothing advances
	// them and commands wait, though their figures look as before.
	Leaderless string `json:"leaderless,omitempty"`
}

// RegionHealth is one region: its reporting POPs and the plugin versions
// they run.
type RegionHealth struct {
	Region   string          `json:"region"`
	POPs     []string        `json:"pops"`
	Versions []VersionHealth `json:"versions"`
	// Refusing are the POPs that refused their desired state, with their
	// reason (at most manifest.MaxStatusError bytes): a module that does
	// not verify (a NACK), or a record the controller's key did not sign
	// (Status.Refused); they serve the previous one. Or that run it only
	// in part: a revoked version it names stopped (an ACK with a warning),
	// its slot on the POP's own version.
	Refusing []Refusal `json:"refusing,omitempty"`
}

// Refusal is a POP's reason for refusing its desired state.
type Refusal struct {
	POP   string `json:"pop"`
	Error string `json:"error"`
}

// VersionHealth is one plugin version summed over a region's POPs.
type VersionHealth struct {
	Plugin    string        `json:"plugin"`
	Version   string        `json:"version"`
	Digest    string        `json:"digest"`
	Config    string        `json:"config,omitempty"` // manifest.ConfigHash: a config-only canary's row is apart from the stable side's
	POPs      int           `json:"pops"`             // POPs that report traffic for it
	Requests  uint64        `json:"requests"`
	Errors    uint64        `json:"errors"`
	ErrorRate float64       `json:"error_rate"` // percent
	P99       time.Duration `json:"p99"`
	// CanaryShare is set where the version runs as a canary: the percent
	// of clients it serves (the largest any POP of the region reports,
	// which differ only while a wave applies) and how they are chosen
	// (manifest.Canary.Split, "" by address).
	CanaryShare float64 `json:"canary_share,omitempty"`
	Split       string  `json:"split,omitempty"`
}

// Overview reads the fleet, the rollouts and the audit tail.
func Overview(ctx context.Context, s *controlplane.Stores) (*Summary, error) {
	f, err := readFleet(ctx, s, DefaultFresh)
	if err != nil {
		return nil, err
	}
	o := &Summary{Time: time.Now().UTC(), HealthWindow: "counted per POP since it last loaded each version",
		Waves: map[string][]WaveState{}}
	for _, region := range f.regions() {
		rh := RegionHealth{Region: region}
		byVersion := map[string]*VersionHealth{}
		buckets := map[string]*Window{}
		// By version, digest and config: a config-only canary runs the
		// stable version's artifact, and the stable row is no canary.
		type canary struct{ plugin, version, digest, config string }
		canaries := map[canary]manifest.Running{}
		for _, st := range f.pops(region) {
			rh.POPs = append(rh.POPs, st.POP)
			for _, rf := range st.Refused {
				rh.Refusing = append(rh.Refusing, Refusal{st.POP, manifest.Clip(rf.Error, manifest.MaxStatusError)})
			}
			if st.Error != "" {
				rh.Refusing = append(rh.Refusing, Refusal{st.POP, manifest.Clip(st.Error, manifest.MaxStatusError)})
			}
			for key, run := range st.Running {
				c := canary{key[strings.LastIndexByte(key, '/')+1:], run.Canary, run.CanaryDigest, run.CanaryConfig}
				if run.Canary != "" && run.Share > canaries[c].Share {
					canaries[c] = run
				}
			}
			for _, h := range st.Health {
				k := h.Plugin + "@" + h.Version + "#" + h.Digest + "#" + h.Config
				v := byVersion[k]
				if v == nil {
					v = &VersionHealth{Plugin: h.Plugin, Version: h.Version, Digest: h.Digest, Config: h.Config}
					byVersion[k], buckets[k] = v, &Window{}
				}
				v.POPs++
				buckets[k].add(h, nil)
			}
		}
		for k, v := range byVersion {
			w := buckets[k]
			v.Requests, v.Errors = w.Requests, w.Errors
			v.ErrorRate = w.Value(MetricErrorRate)
			v.P99 = time.Duration(w.Value(MetricP99))
			if run, ok := canaries[canary{v.Plugin, v.Version, v.Digest, v.Config}]; ok {
				v.CanaryShare, v.Split = run.Share, run.Split
			}
			rh.Versions = append(rh.Versions, *v)
		}
		slices.SortFunc(rh.Versions, func(a, b VersionHealth) int {
			return cmp.Or(strings.Compare(a.Plugin+"@"+a.Version, b.Plugin+"@"+b.Version), cmp.Compare(a.CanaryShare, b.CanaryShare),
				strings.Compare(a.Config, b.Config))
		})
		o.Regions = append(o.Regions, rh)
	}
	rs, err := List(ctx, s)
	if err != nil {
		return nil, err
	}
	var ended []*Rollout
	for _, r := range rs {
		if r.Active() {
			o.Rollouts = append(o.Rollouts, r)
			if ws := r.WaveStates(o.Time); ws != nil {
				o.Waves[r.ID] = ws
			}
		} else {
			ended = append(ended, r)
		}
	}
	slices.SortFunc(ended, func(a, b *Rollout) int { return b.Updated.Compare(a.Updated) })
	o.Rollouts = append(o.Rollouts, ended[:min(len(ended), 10)]...)
	if o.Audit, err = RecentAudit(ctx, s, 20); err != nil {
		return nil, err
	}
	last := map[string]manifest.Audit{}
	for _, a := range o.Audit {
		last[a.Rollout] = a
	}
	if slices.ContainsFunc(o.Rollouts, (*Rollout).Active) {
		if o.Leaderless, err = leaderless(ctx, s, o.Time); err != nil {
			return nil, err
		}
	}
	for _, r := range o.Rollouts {
		if a := last[r.ID]; r.Active() && a.Action == "rollout.stuck" {
			if o.Stuck == nil {
				o.Stuck = map[string]string{}
			}
			o.Stuck[r.ID] = a.Why
		}
	}
	return o, nil
}

// RecentAudit returns the last n audit entries, oldest first.
func RecentAudit(ctx context.Context, s *controlplane.Stores, n int) ([]manifest.Audit, error) {
	info, err := s.Audit.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("rollout: audit stream: %w", err)
	}
	last := info.State.LastSeq
	first := max(info.State.FirstSeq, 1)
	if last >= uint64(n) && last-uint64(n)+1 > first {
		first = last - uint64(n) + 1
	}
	var out []manifest.Audit
	for seq := first; seq <= last && info.State.Msgs > 0; seq++ {
		m, err := s.Audit.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("rollout: audit entry %d: %w", seq, err)
		}
		var a manifest.Audit
		if err := json.Unmarshal(m.Data, &a); err != nil {
			a = manifest.Audit{Time: m.Time, Action: strings.TrimPrefix(m.Subject, manifest.SubjectAudit+"."), Why: "unreadable entry: " + err.Error()}
		}
		out = append(out, a)
	}
	return out, nil
}
