package monitoring_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/monitoring"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	edgepop "github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// promtoolPath is promtool's path; a machine without it skips (Debian's
// prometheus package ships it; .ci/run installs it).
func promtoolPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install Debian's prometheus package (.ci/run does) to check the rules")
	}
	return path
}

// promtool runs promtool with args in this folder.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtoolPath(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ruleTest runs `promtool test rules` on alerts.yml with tests, the YAML
// list under a rule test file's "tests:" (evaluated every minute), and
// returns its output and error for the caller to judge.
func ruleTest(t *testing.T, tests string) ([]byte, error) {
	t.Helper()
	path := promtoolPath(t)
	rules, err := filepath.Abs("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules_test.yml")
	doc := fmt.Sprintf("rule_files: [%q]\nevaluation_interval: 1m\ntests:\n%s", rules, tests)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return exec.Command(path, "test", "rules", file).CombinedOutput()
}

func TestPromtoolCheckRules(t *testing.T) { promtool(t, "check", "rules", "alerts.yml") }

func TestPromtoolTestRules(t *testing.T) { promtool(t, "test", "rules", "alerts_test.yml") }

// TestDashboardQueriesParse has promtool parse every panel's query, as
// the expression of a recording rule (Grafana's $__rate_interval as 5m).
func TestDashboardQueriesParse(t *testing.T) {
	type record struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []record
	for _, es := range dashboardExprs(t) {
		for _, e := range es {
			rules = append(rules, record{fmt.Sprintf("dashboard:query:%d", len(rules)), strings.ReplaceAll(e, "$__rate_interval", "5m")})
		}
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", f)
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "alerts.yml", &f)
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("alerts.yml: no rules")
	}
	return rules
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestAlertsComplete holds every alert to what an operator needs from it
// (severity, summary, description, a runbook section that exists) and to
// alerts_test.yml testing it both ways.
func TestAlertsComplete(t *testing.T) {
	anchors := readmeAnchors(t, "../../README.md")
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "alerts_test.yml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts := map[string]bool{}
	for _, r := range readRules(t) {
		if r.Alert == "" {
			continue
		}
		alerts[r.Alert] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], "README.md#"); !ok || !anchors[anchor] {
			t.Errorf("%s: runbook_url %q names no section of README.md", r.Alert, r.Annotations["runbook_url"])
		}
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: alerts_test.yml must test it firing (%v) and quiet (%v)", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
	}
	for name := range fires {
		if !alerts[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", name)
		}
	}
	for name := range quiet {
		if !alerts[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", name)
		}
	}
}

// readmeAnchors are the #fragments of a Markdown file's headings, as
// GitHub makes them (code fences skipped).
func readmeAnchors(t *testing.T, name string) map[string]bool {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors, fence := map[string]bool{}, false
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(title), ""), " ", "-")] = true
	}
	return anchors
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs loads dashboard.json and returns every panel's queries
// by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string  `json:"title"`
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard.json: title %q, uid %q: want both", d.Title, d.UID)
	}
	exprs, ids := map[string][]string{}, map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("dashboard.json: panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("dashboard.json: panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				exprs[p.Title] = append(exprs[p.Title], q.Expr)
			}
		}
	}
	walk(d.Panels)
	return exprs
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	variable   = regexp.MustCompile(`\$\{[^}]*\}|\$\w+|\[[^\]]*\]`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// metricNames are the names a PromQL expression reads: Wedge's (wedge_*)
// and recording rules' (level:metric:operation). Label values, durations
// and Grafana variables are dropped first; functions, keywords and label
// names are neither.
func metricNames(expr string) []string {
	expr = variable.ReplaceAllString(quoted.ReplaceAllString(expr, `""`), " ")
	var names []string
	for _, id := range identifier.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "wedge_") || strings.Contains(id, ":") {
			names = append(names, id)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`sum by (le) (rate(wedge_a_bucket{code="wedge_not",le=~"0.2"}[$__rate_interval])) / wedge:b:rate5m offset 1h > on() (wedge_c[5m])`)
	if want := []string{"wedge_a_bucket", "wedge:b:rate5m", "wedge_c"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %q, want %q", got, want)
	}
}

// TestDashboard checks dashboard.json loads, has the panels an operator
// looks for, and that every query reads a metric and no recording rule
// (the dashboard works without alerts.yml loaded).
func TestDashboard(t *testing.T) {
	exprs := dashboardExprs(t)
	for _, want := range []string{"Requests/s", "Error ratio", "p50 / p95 / p99", "Cache hit ratio", "Origin exchange latency",
		"Circuit breaker", "Plugin call time", "Plugin failures", "rollouts", "POPs linked", "POPs reporting", "Rate-limit share", "Concurrency",
		"CPU: utilization", "Origin concurrency limit", "Origin latency the limit follows", "Plugin breaker state", "Control-plane certificates"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(exprs)), func(title string) bool { return strings.Contains(title, want) }) {
			t.Errorf("dashboard.json: no panel titled with %q", want)
		}
	}
	for title, es := range exprs {
		for _, e := range es {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("dashboard.json: panel %q: query %q reads no Wedge metric", title, e)
			}
			for _, n := range names {
				if strings.Contains(n, ":") {
					t.Errorf("dashboard.json: panel %q reads recording rule %s", title, n)
				}
			}
		}
	}
}

// TestNamesExported runs a POP with the cache and ratelimit plugins, two
// origins (one up, with a latency_target so that its limit is exported;
// one gone), a control plane and the control plane's
// collector; drives each family into existence (a cache hit, a refused
// request, a breaker opening, a refused desired state, an active
// rollout); scrapes them over HTTP and checks that every metric alerts.yml
// and dashboard.json read is one of the scraped families.
func TestNamesExported(t *testing.T) {
	ctx := context.Background()
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	keys := t.TempDir()
	_, trust, err := registry.GenerateKey(keys, "signer")
	if err != nil {
		t.Fatal(err)
	}
	_, controlPub, err := registry.GenerateKey(keys, "controller")
	if err != nil {
		t.Fatal(err)
	}
	app := origintest.StartConfig(t, origin.ServerConfig{Handler: origin.HandlerFunc(
		func(_ context.Context, _ *wire.Request, resp *wire.Response) {
			resp.Status = 200
			resp.Header = append(resp.Header, wire.Field{Name: wire.Bytes("Cache-Control"), Value: wire.Bytes("max-age=600")})
			resp.Body = wire.Bytes("hello")
		})}, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg, err := edge.ParseConfig(fmt.Appendf(nil, `
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
pop: eu-west-1
region: eu-west
origins:
  app: {addr: %q, key: %q, latency_target: 1s}
  gone: {addr: %q, key: %q}
routes:
  - name: gone
    path: /gone
    origin: gone
  - name: all
    path: /
    origin: app
    chain:
      - {file: %q, config: {headers: false, policies: [{name: perid, key: "header:X-Id", limit: 1, period: 1m, scope: global, missing: skip}]}}
      - {file: %q}
fleet: {nats: %q, trust: [%q], control_keys: [%q], state_dir: state}
`, app.Addr, origintest.Key.Text(), gone, origintest.Key.Text(),
		edgetest.ModuleFile(t, "../../plugins/ratelimit"), edgetest.ModuleFile(t, "../../plugins/cache"), cp.URL(), trust, controlPub), dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := edgepop.New(ctx, cfg, edgepop.Options{CompilationCache: wasmbuild.CompilationCacheDir(), Report: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pop: %v", err)
		}
	})
	popMetrics := "http://" + p.AdminAddr().String() + "/metrics"
	// The certificate of a server with auth, as `control --embedded`
	// exports its own.
	control := httptest.NewServer(monitoring.Handler(stores, controlplanetest.Auth(t).TLS))
	t.Cleanup(control.Close)

	testutil.Eventually(t, 10*time.Second, "the POP links to the control plane", func() bool {
		return value(scrape(t, popMetrics), "wedge_fleet_connected", nil) == 1
	})
	base := "http://" + p.Addr().String()
	for range 2 { // a forward, then a hit
		if st := get(t, base+"/page", ""); st != 200 {
			t.Fatalf("GET /page: %d", st)
		}
	}
	for i, want := range []int{200, 429} { // a limit of 1 a minute
		if st := get(t, base+"/limited", "alice"); st != want {
			t.Fatalf("GET /limited #%d: %d, want %d", i+1, st, want)
		}
	}
	refuse(t, p.Addr().String())
	for i := 0; value(scrape(t, popMetrics), "wedge_edge_origin_breaker_state", map[string]string{"origin": "gone"}) != 2; i++ {
		if i == 50 {
			t.Fatal("the breaker of an origin that refuses connections did not open in 50 requests")
		}
		get(t, base+"/gone", "")
	}
	if _, err := stores.Desired.Put(ctx, manifest.POPKey("eu-west-1"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	r, _ := json.Marshal(rollout.Rollout{ID: "cache-20260101-000000-abcdef", Key: "cache", Plugin: "cache", Version: "2.0.0",
		State: rollout.StateRunning, Phase: rollout.PhaseBaking, Wave: 1, Waves: make([]rollout.Wave, 2), Created: time.Now()})
	if _, err := stores.Rollouts.Put(ctx, "cache-20260101-000000-abcdef", r); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the control plane sees the POP refuse its desired state", func() bool {
		return value(scrape(t, control.URL), "wedge_control_pops_refusing", map[string]string{"region": "eu-west"}) == 1
	})

	fams := scrape(t, popMetrics)
	if got := value(fams, "wedge_plugin_cache_hits_total", nil); got != 1 {
		t.Errorf("cache hits = %v, want 1", got)
	}
	// The latency SLO's rules read the le="0.2" bucket: without it they
	// would never fire.
	if h := fams["wedge_edge_request_duration_seconds"].GetMetric()[0].GetHistogram(); !slices.ContainsFunc(h.GetBucket(),
		func(b *dto.Bucket) bool { return b.GetUpperBound() == 0.2 }) {
		t.Errorf("wedge_edge_request_duration_seconds has no 0.2 s bucket: %v", h.GetBucket())
	}
	if got := value(fams, "wedge_fleet_applies_total", map[string]string{"result": "nack"}); got != 1 {
		t.Errorf("NACKs = %v, want 1", got)
	}
	controlFams := scrape(t, control.URL)
	if got := value(controlFams, "wedge_control_rollout_wave", map[string]string{"plugin": "cache", "state": "running"}); got != 2 {
		t.Errorf("rollout wave = %v, want 2", got)
	}
	exported := map[string]bool{}
	for _, fs := range []map[string]*dto.MetricFamily{fams, controlFams} {
		for name, f := range fs {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				exported[name+"_bucket"], exported[name+"_sum"], exported[name+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				exported[name], exported[name+"_sum"], exported[name+"_count"] = true, true, true
			default:
				exported[name] = true
			}
		}
	}
	if exported["wedge_edge_request_duration_seconds"] || !exported["wedge_edge_request_duration_seconds_bucket"] {
		t.Fatal("histogram names: the bare name is exported or the bucket series is not")
	}

	recorded := map[string]bool{}
	rules := readRules(t)
	for _, r := range rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	check := func(where, expr string) {
		for _, n := range metricNames(expr) {
			if strings.Contains(n, ":") {
				if !recorded[n] {
					t.Errorf("%s: %s is no recording rule of alerts.yml", where, n)
				}
			} else if !exported[n] {
				t.Errorf("%s: %s is not exported by a POP or the control plane", where, n)
			}
		}
	}
	for _, r := range rules {
		check("alerts.yml "+r.Alert+r.Record, r.Expr)
	}
	for title, es := range dashboardExprs(t) {
		for _, e := range es {
			check("dashboard.json "+title, e)
		}
	}
	if t.Failed() {
		names := slices.Sorted(maps.Keys(exported))
		t.Logf("exported: %s", strings.Join(names, " "))
	}
}

func get(t *testing.T, url, id string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id != "" {
		req.Header.Set("X-Id", id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// refuse sends a request the edge refuses before routing (a backslash in
// the path), for wedge_edge_refused_total.
func refuse(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /a\\b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c)
}

// scrape GETs a /metrics page and parses it.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return fams
}

// value is the sum of the family's series that carry labels (-1: none).
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	sum, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	if !found {
		return -1
	}
	return sum
}
