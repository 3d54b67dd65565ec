package rollout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// TestOverviewConfigCanary: a canary that changes only the config runs the
// stable version's artifact; the overview marks its own row as the canary
// and not the stable version's, which shares the digest.
func TestOverviewConfigCanary(t *testing.T) {
	e := newEnv(t)
	health := func(version string, requests uint64) manifest.Health {
		b := make([]uint64, len(manifest.LatencyBounds)+1)
		b[0] = requests
		return manifest.Health{Plugin: "auth", Version: version, Digest: e.v1.Digest, Requests: requests, Buckets: b}
	}
	st := manifest.Status{POP: "eu-west-1", Region: "eu-west", Applied: true,
		Running: map[string]manifest.Running{"auth": {Version: "v1", Digest: e.v1.Digest,
			Canary: "v1-config", CanaryDigest: e.v1.Digest, Share: 5, Split: "header:X-User"}},
		Health: []manifest.Health{health("v1", 95), health("v1-config", 5)}}
	b, _ := json.Marshal(st)
	if _, err := e.s.Status.Put(e.ctx, manifest.StatusKey(st.Region, st.POP), b); err != nil {
		t.Fatal(err)
	}
	o, err := Overview(e.ctx, e.s)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Regions) != 1 || len(o.Regions[0].Versions) != 2 {
		t.Fatalf("regions: %+v", o.Regions)
	}
	for _, v := range o.Regions[0].Versions {
		share, split := 0.0, "" // the stable row
		if v.Version == "v1-config" {
			share, split = 5, "header:X-User"
		}
		if v.CanaryShare != share || v.Split != split {
			t.Errorf("%s: canary share %v, split %q; want %v, %q", v.Version, v.CanaryShare, v.Split, share, split)
		}
	}
}

// TestOverviewConfigOnlyCanary: a canary of the same version with another
// config shares version and digest with the stable side; the overview
// keeps its own row, by config, with its own counts, marked the canary.
func TestOverviewConfigOnlyCanary(t *testing.T) {
	e := newEnv(t)
	stable, canary := manifest.ConfigHash([]byte(`{"greeting":"ok"}`)), manifest.ConfigHash([]byte(`{"greeting":"fail"}`))
	health := func(config string, requests, errs uint64) manifest.Health {
		b := make([]uint64, len(manifest.LatencyBounds)+1)
		b[0] = requests
		return manifest.Health{Plugin: "auth", Version: "v1", Digest: e.v1.Digest, Config: config, Requests: requests, Errors: errs, Buckets: b}
	}
	st := manifest.Status{POP: "eu-west-1", Region: "eu-west", Applied: true,
		Running: map[string]manifest.Running{"auth": {Version: "v1", Digest: e.v1.Digest, Config: stable,
			Canary: "v1", CanaryDigest: e.v1.Digest, CanaryConfig: canary, Share: 20, Split: "header:X-C"}},
		Health: []manifest.Health{health(stable, 80, 0), health(canary, 20, 20)}}
	b, _ := json.Marshal(st)
	if _, err := e.s.Status.Put(e.ctx, manifest.StatusKey(st.Region, st.POP), b); err != nil {
		t.Fatal(err)
	}
	o, err := Overview(e.ctx, e.s)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Regions) != 1 || len(o.Regions[0].Versions) != 2 {
		t.Fatalf("regions: %+v", o.Regions)
	}
	// The stable side first, then its canary.
	s, c := o.Regions[0].Versions[0], o.Regions[0].Versions[1]
	if s.Config != stable || s.CanaryShare != 0 || s.Requests != 80 || s.ErrorRate != 0 {
		t.Errorf("stable row %+v, want config %s, no canary, 80 requests, no errors", s, stable)
	}
	if c.Config != canary || c.CanaryShare != 20 || c.Split != "header:X-C" || c.Requests != 20 || c.ErrorRate != 100 {
		t.Errorf("canary row %+v, want config %s, canary 20%% by header:X-C, 20 requests, all errors", c, canary)
	}
}

// Refusing lists what a POP refused, with the reason: a record refused
// (Status.Refused) or a state it could not apply; not a POP that has only
// just started (not Applied yet, no error), and never an unbounded reason.
func TestOverviewRefusing(t *testing.T) {
	e := newEnv(t)
	for _, st := range []manifest.Status{
		{POP: "eu-west-1", Region: "eu-west"},
		{POP: "eu-west-2", Region: "eu-west", Applied: true, Refused: []manifest.Refused{{Key: manifest.RegionKey("eu-west"), Revision: 9,
			Reason: "unsigned", Error: "region.eu-west revision 9 refused (unsigned)"}}},
		{POP: "eu-west-3", Region: "eu-west", Error: strings.Repeat("x", 10<<10)},
	} {
		st.Time = time.Now()
		b, _ := json.Marshal(st)
		if _, err := e.s.Status.Put(e.ctx, manifest.StatusKey(st.Region, st.POP), b); err != nil {
			t.Fatal(err)
		}
	}
	o, err := Overview(e.ctx, e.s)
	if err != nil {
		t.Fatal(err)
	}
	got := o.Regions[0].Refusing
	if len(got) != 2 || got[0].POP != "eu-west-2" || !strings.Contains(got[0].Error, "(unsigned)") ||
		got[1].POP != "eu-west-3" || len(got[1].Error) > manifest.MaxStatusError {
		t.Fatalf("refusing %+v", got)
	}
}

// TestOverviewLeaderless: while rollouts are active, the overview says when
// no controller acts on them (none running, or its holder gone without a
// goodbye and its lease not run out): their figures stand still but look
// live. A controller that renews its lease is acting.
func TestOverviewLeaderless(t *testing.T) {
	e := newEnv(t)
	e.fleet()
	id := e.start("eu-west:10%,eu-west", time.Hour)
	o, err := Overview(e.ctx, e.s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.Leaderless, "no controller holds the lease") {
		t.Fatalf("no controller running: Leaderless %q", o.Leaderless)
	}
	stop := e.controller()
	e.wait(id, "baking", func(r *Rollout) bool { return r.Phase == PhaseBaking })
	if o, err = Overview(e.ctx, e.s); err != nil || o.Leaderless != "" {
		t.Fatalf("a controller renewing its lease: %v, Leaderless %q", err, o.Leaderless)
	}
	// Gone without a goodbye: its lease stays, renewed no more.
	stop()
	b, _ := json.Marshal(lease{Holder: "gone", Expires: time.Now().Add(DefaultLease), Every: 250 * time.Millisecond})
	if _, err := e.s.Rollouts.Put(e.ctx, leaseKey, b); err != nil {
		t.Fatal(err)
	}
	why, err := leaderless(e.ctx, e.s, time.Now().Add(3*time.Second))
	if err != nil || !strings.Contains(why, "no controller has renewed the lease for 3s") {
		t.Fatalf("a lease renewed 3 s ago every 250 ms: %v, %q", err, why)
	}
}
