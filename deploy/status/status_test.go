package status

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/rollout"
)

const hostile = "<script>alert(1)</script>"

// fleet is a control plane with a status page in front of it.
type fleet struct {
	s   *controlplane.Stores
	url string // the status page, http://127.0.0.1:port

	mu   sync.Mutex
	pops []manifest.Status // what the reporter keeps fresh
}

// newFleet starts an embedded JetStream and serves Handler on 127.0.0.1.
func newFleet(t *testing.T) *fleet {
	t.Helper()
	_, s := controlplanetest.Start(t, embedded.Options{})
	web := httptest.NewServer(Handler(s, nil)) // listens on 127.0.0.1:0
	t.Cleanup(web.Close)
	return &fleet{s: s, url: web.URL}
}

// report writes every POP's status now and then every 500 ms until the
// test ends, as POPs do: the overview counts only reports fresher than
// rollout.DefaultFresh, and a slow browser start must not age them out.
func (f *fleet) report(t *testing.T, pops ...manifest.Status) {
	t.Helper()
	f.mu.Lock()
	f.pops = append(f.pops, pops...)
	f.mu.Unlock()
	put := func(ctx context.Context) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, st := range f.pops {
			st.Time = time.Now().UTC()
			b, _ := json.Marshal(st)
			if _, err := f.s.Status.Put(ctx, manifest.StatusKey(st.Region, st.POP), b); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := put(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				put(ctx) // a failed refresh shows up as a missing POP in the assertions
			}
		}
	}()
}

func (f *fleet) audit(t *testing.T, a manifest.Audit) {
	t.Helper()
	b, _ := json.Marshal(a)
	if _, err := f.s.JS.Publish(context.Background(), manifest.SubjectAudit+"."+a.Action, b); err != nil {
		t.Fatal(err)
	}
}

// buckets is a latency histogram by manifest.LatencyBounds (12 buckets,
// the last +Inf) from its first few counts.
func buckets(counts ...uint64) []uint64 {
	b := make([]uint64, len(manifest.LatencyBounds)+1)
	copy(b, counts)
	return b
}

func health(plugin, version string, requests, errs uint64, b []uint64) manifest.Health {
	return manifest.Health{Plugin: plugin, Version: version, Digest: manifest.Digest([]byte(plugin + "@" + version)),
		Requests: requests, Errors: errs, Buckets: b}
}

// cacheConfig is the config the seeded cache versions run with.
var cacheConfig = manifest.ConfigHash([]byte(`{"ttl":"1m"}`))

func withConfig(h manifest.Health, config string) manifest.Health {
	h.Config = config
	return h
}

// push stores a signed artifact of plugin@version, as `wedgectl plugin
// push` does, so rollout.Start accepts it.
func (f *fleet) push(t *testing.T, plugin, version string) {
	t.Helper()
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	bin := []byte(plugin + "@" + version) // the digest health() reports
	a, err := manifest.Sign(key, plugin, version, bin, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Modules.PutBytes(ctx, a.Digest, bin); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a)
	if _, err := f.s.Artifacts.Put(ctx, manifest.ArtifactKey(plugin, version), b); err != nil {
		t.Fatal(err)
	}
}

// seed writes a fleet in the middle of things: two regions, three POPs,
// ratelimit@2.1.0 baking in its second wave with its gates holding, and
// auth@1.4.0 rolled back after its canary failed the error-rate gate.
func (f *fleet) seed(t *testing.T) (ratelimitID string) {
	t.Helper()
	ctx := context.Background()
	rl21 := health("ratelimit", "2.1.0", 800, 0, buckets(700, 100))
	f.report(t,
		manifest.Status{POP: "eu-west-1", Region: "eu-west", Applied: true, Source: "control", Revision: 7,
			Running: map[string]manifest.Running{"auth": {Version: "1.3.0"}, "ratelimit": {Version: "2.1.0"}},
			Health: []manifest.Health{
				health("auth", "1.3.0", 1000, 2, buckets(0, 0, 900, 80, 20)),
				health("auth", "1.4.0", 400, 60, buckets(0, 0, 300, 40, 40, 20)),
				rl21,
			}},
		manifest.Status{POP: "eu-west-2", Region: "eu-west", Applied: true, Source: "control", Revision: 7,
			Refused: []manifest.Refused{{Key: "region.eu-west", Revision: 8, Reason: "unsigned",
				Error: "fleet: region.eu-west revision 8 refused (unsigned): manifest: desired state is not signed by the controller"}},
			Running: map[string]manifest.Running{"auth": {Version: "1.3.0"}, "ratelimit": {Version: "2.1.0"}},
			Health:  []manifest.Health{health("auth", "1.3.0", 1000, 2, buckets(0, 0, 900, 80, 20)), rl21}},
		manifest.Status{POP: "us-east-1", Region: "us-east", Applied: true, Source: "control", Revision: 3,
			Running: map[string]manifest.Running{"auth": {Version: "1.3.0"}, "ratelimit": {Version: "2.0.0"},
				"api/cache": {Version: "2.9.0", Digest: health("cache", "2.9.0", 0, 0, nil).Digest, Config: cacheConfig,
					Canary: "3.0.0", CanaryDigest: health("cache", "3.0.0", 0, 0, nil).Digest, CanaryConfig: cacheConfig, Share: 10, Split: "cookie:uid"}},
			Health: []manifest.Health{
				health("auth", "1.3.0", 500, 0, buckets(500)),
				health("ratelimit", "2.0.0", 600, 1, buckets(600)),
				withConfig(health("cache", "2.9.0", 450, 0, buckets(450)), cacheConfig),
				withConfig(health("cache", "3.0.0", 50, 0, buckets(50)), cacheConfig),
			}},
	)

	// The running rollout goes through rollout.Start, the real path (it
	// also writes the rollout.start audit entry); the controller's
	// progress is then written onto its record as the controller would.
	f.push(t, "ratelimit", "2.1.0")
	id, err := rollout.Start(ctx, f.s, rollout.Spec{Plugin: "ratelimit", Version: "2.1.0",
		Waves: "eu-west:10%,eu-west:100%,us-east", Gates: "error_rate<1%,p99<50ms", Bake: 2 * time.Minute,
		Who: "alice", Why: "burst tokens per route"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rollout.Get(ctx, f.s, id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	r.Wave, r.Phase, r.AppliedAt, r.WaveStart, r.Updated = 1, rollout.PhaseBaking, now, now, now
	r.Window = rollout.Window{Requests: 1600, Errors: 0, Buckets: buckets(1400, 200)}
	r.GateValues = []rollout.GateValue{
		{Gate: "error_rate<1%", Value: "0%", Raw: 0, OK: true},
		{Gate: "p99<50ms", Value: "2ms", Raw: float64(2 * time.Millisecond), OK: true},
	}
	b, _ := json.Marshal(r)
	if _, err := f.s.Rollouts.Put(ctx, id, b); err != nil {
		t.Fatal(err)
	}

	// The ended rollout is written as a record directly.
	auth := rollout.Rollout{ID: "auth-20260101-120000-abcdef", Key: "auth", Plugin: "auth", Version: "1.4.0",
		Waves: []rollout.Wave{{Region: "eu-west", Share: 10}, {Region: "eu-west", Share: 100}},
		Gates: []rollout.Gate{{Metric: rollout.MetricErrorRate, Op: "<", Limit: 1}}, Bake: time.Minute,
		MinRequests: 20, By: "bob", Created: now.Add(-time.Hour), Updated: now.Add(-50 * time.Minute),
		State: rollout.StateRolledBack, Phase: rollout.PhaseBaking, Window: rollout.Window{Requests: 400, Errors: 60},
		GateValues:       []rollout.GateValue{{Gate: "error_rate<1%", Value: "15%", Raw: 15, OK: false}},
		Reason:           "gate failed in eu-west: error_rate 15% is not < 1%",
		RollbackDuration: 1234 * time.Millisecond, Touched: []string{"eu-west"}}
	b, _ = json.Marshal(auth)
	if _, err := f.s.Rollouts.Put(ctx, auth.ID, b); err != nil {
		t.Fatal(err)
	}
	f.audit(t, manifest.Audit{Time: now, Who: "controller", Action: "wave.promote", Rollout: id,
		Plugin: "ratelimit", Version: "2.1.0", Region: "eu-west", Why: "wave 1 eu-west:10% held its gates for 2m0s"})
	f.audit(t, manifest.Audit{Time: now, Who: "controller", Action: "rollout.rollback", Rollout: auth.ID,
		Plugin: "auth", Version: "1.4.0", Region: "eu-west", Why: "error_rate 15% is not < 1%"})
	return id
}

func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// row returns the markup from the first occurrence of marker to the end
// of its table row, failing the test if marker is not there.
func row(t *testing.T, page, marker string) string {
	t.Helper()
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("page has no %s:\n%s", marker, page)
	}
	rest := page[i:]
	if j := strings.Index(rest, "</tr>"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func wantIn(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, text)
		}
	}
}

// checkPage asserts what the seeded fleet must show. The same checks run
// on the server's HTML and on the DOM Chromium built from it.
func checkPage(t *testing.T, page, ratelimitID string) {
	t.Helper()
	wantIn(t, "regions", row(t, page, `data-region="eu-west"`),
		`data-pop="eu-west-1"`, `data-pop="eu-west-2"`, ">2:")
	wantIn(t, "us-east pops", row(t, page, `data-region="us-east"`), `data-pop="us-east-1"`, ">1:")
	wantIn(t, "refusals", page, `data-pop="eu-west-2"><strong>eu-west-2 refuses its desired state</strong>`, "revision 8 refused (unsigned)")
	if strings.Contains(page, `data-pop="eu-west-1"><strong>`) {
		t.Error("eu-west-1, which applied its desired state, is listed as refusing it")
	}
	// 2 POPs x 1000 requests, 4 errors: 0.20%; p99 halfway into (10ms, 25ms].
	wantIn(t, "eu-west auth@1.3.0", row(t, page, `data-version="auth@1.3.0"`),
		">2000<", ">0.20%<", ">17.5ms<")
	// The failed canary: one POP, 400 requests, 60 errors.
	wantIn(t, "eu-west auth@1.4.0", row(t, page, `data-version="auth@1.4.0"`),
		">400<", ">15.00%<", ">45ms<")
	wantIn(t, "eu-west ratelimit@2.1.0", row(t, page, `data-version="ratelimit@2.1.0"`), ">1600<", ">0.00%<", ">1.92ms<")
	us := page[strings.Index(page, `data-region="us-east"`):]
	wantIn(t, "us-east ratelimit@2.0.0", row(t, us, `data-version="ratelimit@2.0.0"`), ">600<", ">0.17%<", ">990µs<")
	if strings.Contains(us, `data-version="ratelimit@2.1.0"`) {
		t.Error("us-east shows ratelimit@2.1.0, which none of its POPs reports")
	}
	// The canary is marked with its share and split; its stable side and
	// the versions that run alone are not.
	wantIn(t, "us-east cache@3.0.0", row(t, us, `data-version="cache@3.0.0"`), `class="canary"`, "canary 10% by cookie:uid",
		`data-config="`+cacheConfig+`"`, "config "+cacheConfig[:8])
	for _, v := range []string{"cache@2.9.0", "ratelimit@2.0.0", "auth@1.3.0"} {
		if strings.Contains(row(t, us, `data-version="`+v+`"`), `class="canary"`) {
			t.Errorf("us-east %s is marked a canary", v)
		}
	}

	rl := row(t, page, `data-rollout="`+ratelimitID+`"`)
	wantIn(t, "ratelimit rollout", rl, "ratelimit@2.1.0", `data-state="running"`,
		"wave 2/3 eu-west:100% baking", `class="gate pass"`, "0% pass", "2ms pass", "1600 req, 0 err",
		`<li class="wave wave-done">eu-west:10% done</li>`, `<li class="wave wave-waiting">us-east:100% waiting, bake 2m0s to come</li>`)
	// The wave baking since the seed: what is left of its 2 minutes, to
	// the second (how much has passed depends on the machine's pace).
	if !regexp.MustCompile(`<li class="wave wave-baking">eu-west:100% baking, (1m[0-5]?[0-9]s|2m0s) of 2m0s bake left</li>`).MatchString(rl) {
		t.Errorf("ratelimit rollout: no bake time left for its baking wave:\n%s", rl)
	}
	if strings.Contains(rl, `class="gate fail"`) {
		t.Errorf("ratelimit rollout shows a failing gate:\n%s", rl)
	}
	auth := row(t, page, `data-rollout="auth-20260101-120000-abcdef"`)
	wantIn(t, "auth rollout", auth, "auth@1.4.0", `data-state="rolled_back"`, "restored in 1.234s",
		`class="gate fail"`, "15% FAIL", "gate failed in eu-west: error_rate 15% is not", ">1.234s<")
	if strings.Contains(auth, `class="wave`+" ") || strings.Contains(auth, `class="waves"`) {
		t.Errorf("the ended auth rollout lists bake times:\n%s", auth)
	}
	// Active rollouts come first.
	if strings.Index(page, `data-rollout="`+ratelimitID+`"`) > strings.Index(page, `data-rollout="auth-`) {
		t.Error("the ended auth rollout is listed before the running ratelimit one")
	}

	wantIn(t, "rollback audit entry", row(t, page, `data-action="rollout.rollback"`),
		">controller<", ">auth@1.4.0<", ">eu-west<", "error_rate 15% is not")
	wantIn(t, "start audit entry", row(t, page, `data-action="rollout.start"`),
		">alice<", ">ratelimit@2.1.0<", "burst tokens per route")
	wantIn(t, "promote audit entry", row(t, page, `data-action="wave.promote"`), "held its gates for 2m0s")
	// Newest first: the rollback was published last.
	if strings.Index(page, `data-action="rollout.rollback"`) > strings.Index(page, `data-action="rollout.start"`) {
		t.Error("audit is not newest first")
	}
}

func TestPage(t *testing.T) {
	f := newFleet(t)
	id := f.seed(t)
	res, page := get(t, http.MethodGet, f.url+"/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %s:\n%s", res.Status, page)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	checkPage(t, page, id)

	// The CSP must allow exactly the page's style: by the hash of what
	// was served, not of what the code thinks it serves.
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("page has no <style>")
	}
	sum := sha256.Sum256([]byte(m[1]))
	policy := res.Header.Get("Content-Security-Policy")
	wantIn(t, "Content-Security-Policy", policy, "default-src 'none'",
		"style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	if strings.Contains(policy, "unsafe") || strings.Contains(policy, "script-src") {
		t.Errorf("Content-Security-Policy %q allows more than the style", policy)
	}
	if strings.Contains(page, "<script") {
		t.Error("the page has a script; it needs none and the CSP would block it")
	}
}

func TestSummaryJSON(t *testing.T) {
	f := newFleet(t)
	id := f.seed(t)
	res, body := get(t, http.MethodGet, f.url+"/api/summary")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/summary = %s %q:\n%s", res.Status, res.Header.Get("Content-Type"), body)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	var sum rollout.Summary
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Regions) != 2 || sum.Regions[0].Region != "eu-west" || len(sum.Regions[0].POPs) != 2 ||
		sum.Regions[1].Region != "us-east" || len(sum.Regions[1].POPs) != 1 {
		t.Errorf("regions = %+v", sum.Regions)
	}
	if len(sum.Rollouts) != 2 || sum.Rollouts[0].ID != id || sum.Rollouts[0].Progress() != "wave 2/3 eu-west:100% baking" {
		t.Errorf("rollouts = %+v", sum.Rollouts)
	}
	if len(sum.Audit) != 3 || sum.Audit[2].Action != "rollout.rollback" {
		t.Errorf("audit = %+v", sum.Audit)
	}
	if w := sum.Waves[id]; len(w) != 3 || w[0].State != rollout.WaveDone || w[1].State != rollout.PhaseBaking ||
		w[1].BakeLeft <= 0 || w[1].BakeLeft > 2*time.Minute || w[2].BakeLeft != 2*time.Minute || len(sum.Waves) != 1 {
		t.Errorf("waves = %+v", sum.Waves)
	}
	var canaries []string
	for _, r := range sum.Regions {
		for _, v := range r.Versions {
			if v.CanaryShare != 0 {
				canaries = append(canaries, fmt.Sprintf("%s %s@%s %g%% %s", r.Region, v.Plugin, v.Version, v.CanaryShare, v.Split))
			}
		}
	}
	if got := strings.Join(canaries, "; "); got != "us-east cache@3.0.0 10% cookie:uid" {
		t.Errorf("canaries: %q", got)
	}
}

func TestFormatWave(t *testing.T) {
	w := rollout.Wave{Region: "eu-west", Share: 10}
	for _, tc := range []struct {
		state string
		left  time.Duration
		want  string
	}{
		{rollout.PhaseBaking, 71400 * time.Millisecond, "eu-west:10% baking, 1m11s of 2m0s bake left"},
		{rollout.PhaseBaking, 0, "eu-west:10% baking, bake over"},
		{rollout.PhaseApplying, 2 * time.Minute, "eu-west:10% applying, bake 2m0s to come"},
		{rollout.WaveDone, 0, "eu-west:10% done"},
	} {
		if got := formatWave(rollout.WaveState{Wave: w, State: tc.state, BakeLeft: tc.left}, 2*time.Minute); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.state, tc.left, got, tc.want)
		}
	}
}

func TestMethodsAndPaths(t *testing.T) {
	f := newFleet(t)
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{http.MethodGet, "/", http.StatusOK, ""},
		{http.MethodHead, "/", http.StatusOK, ""},
		{http.MethodHead, "/api/summary", http.StatusOK, ""},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, "/api/summary", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodGet, "/index.html", http.StatusNotFound, ""},
		{http.MethodGet, "/api/summary/", http.StatusNotFound, ""},
		{http.MethodGet, "/api", http.StatusNotFound, ""},
		{http.MethodPost, "/nope", http.StatusNotFound, ""},
	} {
		res, body := get(t, tc.method, f.url+tc.path)
		if res.StatusCode != tc.code {
			t.Errorf("%s %s = %d, want %d: %s", tc.method, tc.path, res.StatusCode, tc.code, body)
		}
		if got := res.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if tc.method == http.MethodHead && body != "" {
			t.Errorf("HEAD %s has a body", tc.path)
		}
		if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s lacks the security headers: %v", tc.method, tc.path, res.Header)
		}
	}
	// An empty control plane is a page that says so, not an error.
	_, page := get(t, http.MethodGet, f.url+"/")
	wantIn(t, "empty page", page, "No POP has reported", "No rollouts.", "No audit entries.")
}

// TestEscapesHostileInput: a refusal's reason comes from whatever a POP
// reports, a plugin version from whatever was pushed, and an audit reason
// from whatever an operator typed; none may become markup. (A region name
// is its status key's, a name the bucket keys allow.)
func TestEscapesHostileInput(t *testing.T) {
	f := newFleet(t)
	f.report(t, manifest.Status{POP: "evil-1", Region: "eu-west", Time: time.Now(), Error: hostile,
		Health: []manifest.Health{health("auth", hostile, 10, 0, buckets(10))}})
	f.audit(t, manifest.Audit{Time: time.Now(), Who: `"><b>mallory</b>`, Action: "rollout.abort", Why: hostile})
	_, page := get(t, http.MethodGet, f.url+"/")
	if strings.Contains(page, "<script") || strings.Contains(page, "<b>mallory") {
		t.Fatalf("hostile input rendered as markup:\n%s", page)
	}
	escaped := "&lt;script&gt;alert(1)&lt;/script&gt;"
	wantIn(t, "hostile refusal", row(t, page, `class="error refusing"`), escaped)
	wantIn(t, "hostile version", page, ">"+escaped+"<")
	wantIn(t, "hostile audit", row(t, page, `data-action="rollout.abort"`),
		`<td class="why">`+escaped+`</td>`, "&#34;&gt;&lt;b&gt;mallory&lt;/b&gt;")
}

// TestControlPlaneDown: with the connection gone the page is a 503 that
// says why, and the JSON an error object.
func TestControlPlaneDown(t *testing.T) {
	f := newFleet(t)
	f.s.JS.Conn().Close()
	res, page := get(t, http.MethodGet, f.url+"/")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET / with the control plane gone = %s", res.Status)
	}
	wantIn(t, "503 page", page, `id="error"`, "status: read the control plane:", "connection closed")
	res, body := get(t, http.MethodGet, f.url+"/api/summary")
	var e struct{ Error string }
	if res.StatusCode != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil ||
		!strings.Contains(e.Error, "connection closed") {
		t.Errorf("GET /api/summary with the control plane gone = %s %s", res.Status, body)
	}
}

// chromium finds the browser. CI installs it; a machine without it fails
// the test, so a missing browser cannot pass CI unnoticed, unless the
// developer opts out with WEDGE_SKIP_BROWSER=1.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WEDGE_SKIP_BROWSER") == "1" {
		t.Skip("no chromium on PATH and WEDGE_SKIP_BROWSER=1")
	}
	t.Fatal("no chromium or chromium-browser on PATH: apt-get install -y chromium " +
		"(or set WEDGE_SKIP_BROWSER=1 to skip this test)")
	return ""
}

// TestPageInChromium loads the page in headless Chromium and checks the
// DOM it built: what an operator's browser shows, after the HTML parser
// and the Content-Security-Policy had their say.
func TestPageInChromium(t *testing.T) {
	bin := chromium(t)
	f := newFleet(t)
	id := f.seed(t)
	f.audit(t, manifest.Audit{Time: time.Now(), Who: "mallory", Action: "rollout.abort", Why: hostile})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--no-first-run", "--no-default-browser-check",
		"--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", "--dump-dom", f.url+"/")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Chromium's helper processes may hold the pipes after it is killed.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("chromium did not finish within 60s: %v\n%s", err, stderr.String())
		}
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := stdout.String()
	if !strings.Contains(dom, "<table") {
		t.Fatalf("chromium dumped no page:\n%s\nstderr:\n%s", dom, stderr.String())
	}
	checkPage(t, dom, id)
	// Escaped text stays text: no script element in the DOM (an attribute
	// value may hold "<script" verbatim, which is harmless).
	if regexp.MustCompile(`(?i)[^"]<script`).MatchString(dom) {
		t.Errorf("the DOM has a script element:\n%s", dom)
	}
	wantIn(t, "hostile audit in the DOM", row(t, dom, `data-action="rollout.abort"`), "&lt;script&gt;alert(1)&lt;/script&gt;")
	// Chromium logs what the Content-Security-Policy refused: the page's
	// own style must not be among it.
	if strings.Contains(stderr.String(), "Content Security Policy") {
		t.Errorf("chromium refused part of the page under its CSP:\n%s", stderr.String())
	}
}
