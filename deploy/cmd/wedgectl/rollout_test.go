package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/internal/testutil"
)

// TestRolloutCLI drives a rollout through the commands, over a real
// socket: dry run, start, status, a controller in `control`, pause, audit.
func TestRolloutCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	// One POP that reports but never applies anything: the rollout stays
	// in its first wave, which is all the commands need.
	srv, s := rolloutPlane(t, ctx, manifest.Health{Plugin: "auth", Version: "v1", Digest: "d1", Requests: 200, Errors: 2, Buckets: []uint64{0, 0, 200}})
	nats := []string{"--nats", srv.URL()}
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append(args, nats...), &out)
		return out.String(), err
	}

	out, err := cli("rollout", "start", "auth@v2", "--waves", "eu-west:10%,*", "--gate", "error_rate<1%", "--bake", "1s", "--dry-run")
	if err != nil || !strings.Contains(out, "eu-west (1 POPs: eu-west-1)") || !strings.Contains(out, "gates error_rate<1%") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if rs, _ := rollout.List(ctx, s); len(rs) != 0 {
		t.Fatal("dry run stored a rollout")
	}
	if _, err := cli("rollout", "start", "auth@v9", "--waves", "eu-west", "--gate", "error_rate<1%"); err == nil ||
		!strings.Contains(err.Error(), "not in the registry") {
		t.Errorf("start of an unknown version: %v", err)
	}
	out, err = cli("rollout", "start", "auth@v2", "--waves", "eu-west:10%,*", "--gate", "error_rate<1%", "--why", "new issuer")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)

	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	controlOut := new(testutil.SyncBuffer)
	ctlKey, _, err := registry.GenerateKey(t.TempDir(), "controller")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- run(cctx, append([]string{"control", "--http", "127.0.0.1:0", "--controller-key", ctlKey, "--trust", trustFile(t)}, nats...), controlOut)
	}()
	defer func() { stop(); <-done }()

	waitFor := func(what string, cond func(*rollout.Rollout) bool) {
		t.Helper()
		deadline := time.Now().Add(hangGuard)
		for {
			r, err := rollout.Get(ctx, s, id)
			if err != nil {
				t.Fatal(err)
			}
			if cond(r) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never %s: %s", id, what, r.Progress())
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	// The controller in `control` writes the first wave...
	waitFor("applied its first wave", func(r *rollout.Rollout) bool { return r.Phase == rollout.PhaseApplying })
	// ...and takes a pause from another connection.
	if _, err := cli("rollout", "pause", id, "--why", "lunch"); err != nil {
		t.Fatal(err)
	}
	waitFor("paused", func(r *rollout.Rollout) bool { return r.Paused })
	status, err := cli("rollout", "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"eu-west", "auth", "v1", "1.00%", "4.97ms", id, "wave 1/2 eu-west:10% applying (paused)"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	// The status page `control --http` serves shows the rollout.
	page := regexp.MustCompile(`status page on (http://\S+)`).FindStringSubmatch(controlOut.String())
	if page == nil {
		t.Fatalf("control printed no status page address:\n%s", controlOut.String())
	}
	resp, err := http.Get(page[1])
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(html), id) || !strings.Contains(string(html), "eu-west") {
		t.Errorf("status page: %d, want the rollout %s and eu-west:\n%s", resp.StatusCode, id, html)
	}
	// So does its /metrics, for deploy/monitoring's rules and dashboard.
	resp, err = http.Get(page[1] + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `wedge_control_rollout_wave{id="` + id + `"`; resp.StatusCode != 200 || !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics: %d, want %s...:\n%s", resp.StatusCode, want, metrics)
	}
	out, err = cli("rollout", "audit", "-n", "2")
	if err != nil {
		t.Fatal(err)
	}
	// Each entry names its release (a column it lacked).
	if !strings.Contains(out, "wave.apply") || !strings.Contains(out, "rollout.pause") || strings.Contains(out, "rollout.start") ||
		!strings.Contains(out, "RELEASE") || strings.Count(out, "auth@v2") < 2 {
		t.Errorf("audit -n 2:\n%s", out)
	}
	t.Logf("status:\n%s\naudit:\n%s", status, out)
}

// rolloutPlane starts a control plane on a socket holding what a rollout
// of auth@v2 needs: the signed artifact, and POP eu-west-1 of eu-west
// reporting with health.
func rolloutPlane(t *testing.T, ctx context.Context, health ...manifest.Health) (*embedded.Server, *controlplane.Stores) {
	t.Helper()
	srv, s := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	_, key, _ := ed25519.GenerateKey(nil)
	a, err := manifest.Sign(key, "auth", "v2", []byte("module"), "test")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a)
	if _, err := s.Artifacts.Put(ctx, manifest.ArtifactKey("auth", "v2"), b); err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(manifest.Status{POP: "eu-west-1", Region: "eu-west", Time: time.Now(), Applied: true, Health: health,
		Running: map[string]manifest.Running{"auth": {Version: "v1", Digest: "d1"}}})
	if _, err := s.Status.Put(ctx, manifest.StatusKey("eu-west", "eu-west-1"), st); err != nil {
		t.Fatal(err)
	}
	return srv, s
}
