package monitoring_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/monitoring"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/internal/testutil"
)

// TestCollector writes POP reports and rollout records, garbage among
// them, and reads the series the collector makes of them.
func TestCollector(t *testing.T) {
	ctx := context.Background()
	_, s := controlplanetest.Start(t, embedded.Options{})
	put := func(kv interface {
		Put(context.Context, string, []byte) (uint64, error)
	}, key string, v any) {
		t.Helper()
		b, ok := v.([]byte)
		if !ok {
			b, _ = json.Marshal(v)
		}
		if _, err := kv.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []manifest.Status{
		{POP: "eu-1", Region: "eu-west", Applied: true},
		{POP: "eu-2", Region: "eu-west", Applied: false, Error: "bad signature"},
		// Applied, but a revoked version it names stopped: counted (it was not).
		{POP: "us-1", Region: "us-east", Applied: true, Error: "cache: cache@2 revoked (leaks tokens)"},
		{POP: "us-2", Region: "us-east"}, // has not applied its first state yet: no NACK
	} {
		put(s.Status, manifest.StatusKey(st.Region, st.POP), st)
	}
	put(s.Status, manifest.StatusKey("eu-west", "junk"), []byte("{not json"))
	// A report claiming another region than its key's (a POP's credential
	// writes its own region's key alone) counts nowhere.
	put(s.Status, manifest.StatusKey("eu-west", "eu-3"), manifest.Status{POP: "eu-3", Region: "us-east", Applied: false, Error: "spoofed NACK"})
	now := time.Now()
	for i, r := range []rollout.Rollout{
		{ID: "auth-1", Plugin: "auth", Version: "2", State: rollout.StateRunning, Phase: rollout.PhaseApplying, Wave: 0,
			Waves: make([]rollout.Wave, 3)},
		// The rollback of a finished two-wave rollout: its wave is past the
		// last, and the gauge says the last (it said 3).
		{ID: "cache-1", Plugin: "cache", Version: "3", State: rollout.StateRollingBack, Wave: 2, Waves: make([]rollout.Wave, 2)},
		{ID: "cache-0", Plugin: "cache", Version: "2", State: rollout.StateRolledBack},
		{ID: "rl-0", Plugin: "ratelimit", Version: "1", State: rollout.StateDone},
		{ID: "rl-1", Plugin: "ratelimit", Version: "2", State: rollout.StateDone},
	} {
		r.Created = now.Add(time.Duration(i) * time.Second)
		put(s.Rollouts, r.ID, r)
	}
	put(s.Rollouts, "garbage-1", []byte("not a rollout"))
	put(s.Rollouts, "active.cache", []byte("cache-1")) // a lock, not a record

	srv := httptest.NewServer(monitoring.Handler(s))
	defer srv.Close()
	fams := scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wedge_control_pops", map[string]string{"region": "eu-west"}, 2},
		{"wedge_control_pops", map[string]string{"region": "us-east"}, 2},
		{"wedge_control_pops_refusing", map[string]string{"region": "eu-west"}, 1},
		{"wedge_control_pops_refusing", map[string]string{"region": "us-east"}, 1},
		{"wedge_control_rollouts", map[string]string{"state": "running"}, 1},
		{"wedge_control_rollouts", map[string]string{"state": "rolling_back"}, 1},
		{"wedge_control_rollouts", map[string]string{"state": "rolled_back"}, 1},
		{"wedge_control_rollouts", map[string]string{"state": "done"}, 2},
		{"wedge_control_rollout_wave", map[string]string{"id": "auth-1", "plugin": "auth", "version": "2", "state": "running", "phase": "applying"}, 1},
		{"wedge_control_rollout_wave", map[string]string{"id": "cache-1", "state": "rolling_back"}, 2},
		{"wedge_control_rollout_wave", map[string]string{"id": "cache-0"}, -1}, // ended: no wave
	} {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(fams["wedge_control_pops"].GetMetric()); n != 2 {
		t.Errorf("wedge_control_pops has %d series, want 2 (the unreadable report counts nowhere)", n)
	}
}

// TestCollectorFailsScrape checks that a control plane that cannot be
// read fails the scrape (Prometheus marks the target down) rather than
// exporting zeros an alert would take for a healthy fleet.
func TestCollectorFailsScrape(t *testing.T) {
	_, s := controlplanetest.Start(t, embedded.Options{})
	srv := httptest.NewServer(monitoring.Handler(s))
	defer srv.Close()
	s.JS.Conn().Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("scrape of an unreachable control plane: %s, want 500", resp.Status)
	}
}

// TestCertExpiry: the certificate of a server the process runs is
// exported with its expiry and serial, a renewed one from a scrape after
// the renewal on (no client need connect first), and a leaf's handler,
// without buckets, exports it alone.
func TestCertExpiry(t *testing.T) {
	m := controlplanetest.Auth(t)
	srv := httptest.NewServer(monitoring.Handler(nil, m.TLS))
	defer srv.Close()
	const name = "wedge_control_cert_expiry_timestamp_seconds"
	exported := func(c *x509.Certificate) bool {
		return value(scrape(t, srv.URL), name, map[string]string{"file": filepath.Join(m.Dir, "server.pem"),
			"serial": fmt.Sprintf("%x", c.SerialNumber)}) == float64(c.NotAfter.Unix())
	}
	if fams := scrape(t, srv.URL); len(fams) != 1 || !exported(m.TLS.Leaf()) {
		t.Fatalf("scraped %d families, want %s alone, with the certificate's expiry and serial", len(fams), name)
	}
	c, err := m.RenewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, "the renewed certificate exported", func() bool { return exported(c) })
	if n := len(scrape(t, srv.URL)[name].GetMetric()); n != 1 {
		t.Fatalf("%d series after the renewal, want the renewed certificate's alone", n)
	}
}
