package edge_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// TestSetReleases checks how fleet releases override a config file: by
// plugin name everywhere or by route/plugin on one route, staying in force
// across reloads, sharing unchanged plugin versions between generations
// (their health counters go on), and refusing keys no route has.
func TestSetReleases(t *testing.T) {
	ctx := context.Background()
	yaml := config(startOrigin(t, "o"), hello(t), "")
	n := startNode(t, yaml)
	greeting := func() string {
		t.Helper()
		_, h, _ := n.do(t, "GET", "www.example.com", "/x", nil)
		return string(h.Peek("X-Hello"))
	}
	requests := func() uint64 {
		t.Helper()
		for _, h := range n.Health() {
			if h.Plugin == "hello" {
				return h.Requests
			}
		}
		t.Fatal("no health for hello")
		return 0
	}
	if got := greeting(); got != "Hi" {
		t.Fatalf("config file greeting %q", got)
	}

	if err := n.SetReleases(ctx, map[string]*edge.Release{"nope": {}}); err == nil || !strings.Contains(err.Error(), "no route has that plugin") {
		t.Fatalf("release for no plugin: %v", err)
	}
	if got := greeting(); got != "Hi" {
		t.Fatalf("a refused release changed the greeting to %q", got)
	}

	// By plugin name; then a route key, which wins on its route.
	if err := n.SetReleases(ctx, map[string]*edge.Release{"hello": {Config: []byte(`{"greeting":"Yo"}`)}}); err != nil {
		t.Fatal(err)
	}
	if got := greeting(); got != "Yo" {
		t.Fatalf("greeting %q after a release by plugin name", got)
	}
	rel := map[string]*edge.Release{"hello": {Config: []byte(`{"greeting":"Yo"}`)}, "hello/hello": {Config: []byte(`{"greeting":"Hey"}`)}}
	if err := n.SetReleases(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if got := greeting(); got != "Hey" {
		t.Fatalf("greeting %q, want the route's release", got)
	}
	if _, ok := n.Running()["hello/hello"]; !ok {
		t.Fatalf("running %v: want the route key", n.Running())
	}
	before := requests()

	// The same releases again, and a reload of the config file: the
	// version is shared, not loaded again, so its counters go on.
	if err := n.SetReleases(ctx, rel); err != nil {
		t.Fatal(err)
	}
	cfg, err := edge.ParseConfig([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := greeting(); got != "Hey" {
		t.Fatalf("greeting %q after a reload: releases must stay in force", got)
	}
	if after := requests(); after <= before {
		t.Fatalf("health went from %d to %d requests: the version was loaded again, not shared", before, after)
	}

	// A canary on every client, and the pin header choosing the stable side.
	rel = map[string]*edge.Release{"hello": {Canary: &edge.Release{Config: []byte(`{"greeting":"Canary"}`), Version: "c1"}, Share: 100}}
	if err := n.SetReleases(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if got := greeting(); got != "Canary" {
		t.Fatalf("greeting %q with a 100%% canary", got)
	}
	stable := n.Running()["hello"].Version
	_, h, _ := n.do(t, "GET", "www.example.com", "/x", nil, pin("hello@"+stable)...)
	if got := string(h.Peek("X-Hello")); got != "Hi" {
		t.Fatalf("pinned to the stable %s: greeting %q", stable, got)
	}
	// Without the admin token, or with another, a pin is not honoured: a
	// client could otherwise keep a stable side that a canary tightens.
	for _, hdr := range [][]string{{manifest.PinHeader, "hello@" + stable},
		{manifest.PinHeader, "hello@" + stable, manifest.PinTokenHeader, "guess"}} {
		if _, h, _ := n.do(t, "GET", "www.example.com", "/x", nil, hdr...); string(h.Peek("X-Hello")) != "Canary" {
			t.Fatalf("pinned with %q: greeting %q, want the canary's", hdr, h.Peek("X-Hello"))
		}
	}
	if r := n.Running()["hello"]; r.Canary != "c1" || r.Share != 100 {
		t.Fatalf("running %+v", r)
	}
}

// TestShutdownDuringReleases: releases applied while the node shuts down
// either land before it or are refused with ErrClosed; none installs a
// generation after the last one was retired (which would hold its plugins
// open and make Shutdown wait out its context).
func TestShutdownDuringReleases(t *testing.T) {
	cfg, err := edge.ParseConfig([]byte(config(startOrigin(t, "o"), hello(t), "")), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{CompilationCache: wasmbuild.CompilationCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			greeting := []byte(`{"greeting":"G` + strconv.Itoa(i%3) + `"}`)
			if err := n.SetReleases(context.Background(), map[string]*edge.Release{"hello": {Config: greeting}}); err != nil {
				done <- err
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, edge.ErrClosed) {
			t.Fatalf("SetReleases after Shutdown: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SetReleases still succeeding 10 s after Shutdown")
	}
}

// TestConfigOnlyCanaryHealth: a canary that changes only the config runs
// the stable side's module, version and digest alike; the node reports
// each side's health apart, by config, and which config each side runs,
// so the fleet's gates judge the canary on its own requests.
func TestConfigOnlyCanaryHealth(t *testing.T) {
	n := startNode(t, config(startOrigin(t, "o"), hello(t), ""))
	stable, canary := []byte(`{"greeting":"Yo"}`), []byte(`{"greeting":"Hey"}`)
	rel := map[string]*edge.Release{"hello": {Version: "1", Config: stable,
		Canary: &edge.Release{Version: "1", Config: canary}, Share: 50, Split: "header:X-C"}}
	if err := n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	served := map[string]uint64{} // by config hash, from the greetings
	for i := range 40 {
		_, h, _ := n.do(t, "GET", "www.example.com", "/x", nil, "X-C", "client-"+strconv.Itoa(i))
		switch g := string(h.Peek("X-Hello")); g {
		case "Yo":
			served[manifest.ConfigHash(stable)]++
		case "Hey":
			served[manifest.ConfigHash(canary)]++
		default:
			t.Fatalf("greeting %q", g)
		}
	}
	if len(served) != 2 {
		t.Fatalf("40 clients all on one side: %v", served)
	}
	got := map[string]uint64{}
	for _, h := range n.Health() {
		if h.Plugin == "hello" {
			got[h.Config] = h.Requests
		}
	}
	if !maps.Equal(got, served) {
		t.Errorf("health requests by config %v, want %v", got, served)
	}
	if r := n.Running()["hello"]; r.Config != manifest.ConfigHash(stable) || r.CanaryConfig != manifest.ConfigHash(canary) || r.Digest != r.CanaryDigest {
		t.Errorf("running %+v, want configs %s and %s of one module", r, manifest.ConfigHash(stable), manifest.ConfigHash(canary))
	}
}

// pin is the fields that pin a request to versions (Wedge-Pin), with the
// admin token (s3cret, as config has it) that a pin needs.
func pin(versions string) []string {
	return []string{manifest.PinHeader, versions, manifest.PinTokenHeader, "s3cret"}
}

// TestPinTokenNotForwarded: the admin token a pin carries reaches neither
// the plugins nor the application.
func TestPinTokenNotForwarded(t *testing.T) {
	var got atomic.Value
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		v, _ := wire.Get(req.Header, manifest.PinTokenHeader)
		got.Store(string(v))
		resp.Status = 200
	})).Addr
	n := startNode(t, config(addr, hello(t), ""))
	if st, _, _ := n.do(t, "GET", "www.example.com", "/x", nil, pin("hello@1")...); st != 200 {
		t.Fatalf("status %d", st)
	}
	if v := got.Load(); v != "" {
		t.Fatalf("the application got %s: %q (nil: no request)", manifest.PinTokenHeader, v)
	}
}
