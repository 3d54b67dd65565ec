package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// The host's GCRA limiter reads its own clock, which neither sdktest nor
// wasmtest lets a test move. So these tests work with burst counts and
// long emission intervals (period/limit of a minute or more): nothing
// comes back while a test runs, and every count and wait is exact. Waits
// print as the interval rounded up to seconds, exact while a script runs
// in under a second.

// scripts run natively and (the main paths, marked wasm) as Wasm.
var scripts = []struct {
	name, config string
	wasm         bool
	script       string
}{
	{"burst is enforced exactly at the boundary", `{"policies":[{"name":"perip","key":"ip","limit":60,"period":"1h","burst":3}]}`, true, `
GET /a from 203.0.113.7
=> 200
RateLimit-Policy: "perip";q=60;w=3600
RateLimit: "perip";r=2;t=60

GET /a from 203.0.113.7
=> 200
RateLimit: "perip";r=1;t=120

GET /a from 203.0.113.7
=> 200
RateLimit: "perip";r=0;t=180

GET /a from 203.0.113.7
=> 429
Retry-After: 60
RateLimit-Policy: "perip";q=60;w=3600
RateLimit: "perip";r=0;t=60
Content-Type: application/problem+json

GET /a from 203.0.113.7
=> 429
Retry-After: 60
`},
	{"burst defaults to limit", `{"policies":[{"name":"p","key":"ip","limit":2,"period":"1h"}]}`, false, `
GET /a from 203.0.113.7
=> 200
RateLimit: "p";r=1;t=1800

GET /a from 203.0.113.7
=> 200
RateLimit: "p";r=0;t=3600

GET /a from 203.0.113.7
=> 429
Retry-After: 1800
RateLimit: "p";r=0;t=1800
`},
	{"waits round up to whole seconds", `{"policies":[{"name":"p","key":"ip","limit":2,"period":"3s"}]}`, true, `
GET /a from 203.0.113.7
=> 200
RateLimit: "p";r=1;t=2

GET /a from 203.0.113.7
=> 200
RateLimit: "p";r=0;t=3

GET /a from 203.0.113.7
=> 429
Retry-After: 2
RateLimit: "p";r=0;t=2
`},
	{"client IPs are isolated, ports and IPv6 brackets stripped", `{"policies":[{"name":"perip","key":"ip","limit":1,"period":"1m"}]}`, true, `
GET /a from 203.0.113.7:1000
=> 200

GET /a from 203.0.113.7:2000
=> 429

GET /a from 198.51.100.9
=> 200

GET /a from [2001:db8::1]:443
=> 200

GET /a from [2001:db8::1]:444
=> 429
`},
	{"users are isolated", `{"policies":[{"name":"peruser","key":"value:sub","limit":1,"period":"1m"}]}`, true, `
GET /a from 203.0.113.7
value sub=alice
=> 200
RateLimit: "peruser";r=0;t=60

GET /a from 198.51.100.9
value sub=alice
=> 429

GET /a from 203.0.113.7
value sub=bob
=> 200
RateLimit: "peruser";r=0;t=60
`},
	{"header keys are isolated, header names case-insensitive", `{"policies":[{"name":"perkey","key":"header:x-api-key","limit":1,"period":"1m"}]}`, false, `
GET /a from 203.0.113.7
X-Api-Key: k1
=> 200

GET /a from 198.51.100.9
X-API-KEY: k1
=> 429

GET /a from 203.0.113.7
X-Api-Key: k2
=> 200
`},
	{"missing key falls back to the client IP by default", `{"policies":[{"name":"perkey","key":"header:X-Api-Key","limit":1,"period":"1m"}]}`, true, `
GET /a from 203.0.113.7
=> 200
RateLimit: "perkey";r=0;t=60

GET /a from 203.0.113.7
X-Api-Key:
=> 429

GET /a from 198.51.100.9
=> 200

GET /a from 203.0.113.7
X-Api-Key: 203.0.113.7
=> 200
`},
	{"missing key skips the policy when configured", `{"policies":[{"name":"peruser","key":"value:sub","limit":1,"period":"1m","missing":"skip"}]}`, true, `
GET /a from 203.0.113.7
=> 200
RateLimit: -
RateLimit-Policy: -

GET /a from 203.0.113.7
value sub=
=> 200
RateLimit: -

GET /a from 203.0.113.7
value sub=alice
=> 200
RateLimit: "peruser";r=0;t=60

GET /a from 203.0.113.7
value sub=alice
=> 429
`},
	{"path policy applies only under its prefix", `{"policies":[{"name":"search","key":"path:/search","limit":1,"period":"1m"}]}`, true, `
GET /searchlight from 203.0.113.7
=> 200
RateLimit: -

GET /other/search from 203.0.113.7
=> 200
RateLimit: -

GET /search/deep?q=1 from 203.0.113.7
=> 200
RateLimit: "search";r=0;t=60

GET /search from 198.51.100.9
=> 429
Retry-After: 60

GET /%73earch from 198.51.100.9
=> 429

GET /%2Fsearch from 198.51.100.9
=> 200

GET /searchlight from 203.0.113.7
=> 200
`},
	{"path prefix ending in a slash", `{"policies":[{"name":"api","key":"path:/api/","limit":1,"period":"1m"}]}`, false, `
GET /api from 203.0.113.7
=> 200
RateLimit: -

GET /api/v1 from 203.0.113.7
=> 200
RateLimit: "api";r=0;t=60

GET /api/ from 203.0.113.7
=> 429
`},
	{"any refusing policy refuses, and a refusal consumes nothing", `{"policies":[
		{"name":"perip","key":"ip","limit":60,"period":"1h","burst":3},
		{"name":"search","key":"path:/search","limit":1,"period":"1m"}]}`, true, `
GET /search from 203.0.113.7
=> 200
RateLimit: "search";r=0;t=60

GET /search from 203.0.113.7
=> 429
Retry-After: 60
RateLimit: "search";r=0;t=60

GET /search from 203.0.113.7
=> 429

GET /items from 203.0.113.7
=> 200
RateLimit: "perip";r=1;t=120
`},
	{"the most constrained policy is advertised", `{"policies":[
		{"name":"perip","key":"ip","limit":60,"period":"1h","burst":10},
		{"name":"peruser","key":"value:sub","limit":60,"period":"1h","burst":2,"missing":"skip"},
		{"name":"perhost","key":"header:Host-Tag","limit":60,"period":"1h","burst":2,"missing":"skip"}]}`, true, `
GET /a from 203.0.113.7
value sub=alice
=> 200
RateLimit-Policy: "peruser";q=60;w=3600
RateLimit: "peruser";r=1;t=60

GET /a from 203.0.113.7
=> 200
RateLimit-Policy: "perip";q=60;w=3600
RateLimit: "perip";r=8;t=120

GET /a from 203.0.113.7
Host-Tag: h
=> 200
RateLimit: "perhost";r=1;t=60
`},
	{"equally constrained: the longest time to a full burst, then config order", `{"policies":[
		{"name":"fast","key":"ip","limit":60,"period":"1h","burst":2},
		{"name":"slow","key":"ip","limit":1,"period":"1h","burst":2},
		{"name":"slow2","key":"ip","limit":1,"period":"1h","burst":2}]}`, false, `
GET /a from 203.0.113.7
=> 200
RateLimit-Policy: "slow";q=1;w=3600
RateLimit: "slow";r=1;t=3600
`},
	{"Retry-After is the longest wait of the refusing policies", `{"policies":[
		{"name":"short","key":"ip","limit":1,"period":"1m"},
		{"name":"long","key":"ip","limit":1,"period":"1h"}]}`, false, `
GET /a from 203.0.113.7
=> 200
RateLimit: "long";r=0;t=3600

GET /a from 203.0.113.7
=> 429
Retry-After: 3600
RateLimit-Policy: "long";q=1;w=3600
RateLimit: "long";r=0;t=3600
`},
	{"shadow policies never block and are never advertised", `{"policies":[
		{"name":"perip","key":"ip","limit":60,"period":"1h","burst":100},
		{"name":"trial","key":"ip","limit":1,"period":"1h","shadow":true}]}`, true, `
GET /a from 203.0.113.7
=> 200
RateLimit: "perip";r=99;t=60

GET /a from 203.0.113.7
=> 200
RateLimit: "perip";r=98;t=120

GET /a from 203.0.113.7
=> 200
RateLimit: "perip";r=97;t=180
`},
	{"a lone shadow policy leaves responses untouched", `{"policies":[{"name":"trial","key":"ip","limit":1,"period":"1h","shadow":true}]}`, false, `
GET /a from 203.0.113.7
=> 200
RateLimit: -

GET /a from 203.0.113.7
=> 200
RateLimit: -
Retry-After: -
`},
	{"headers off: allowed responses plain, refusals still explained", `{"headers":false,"policies":[{"name":"p","key":"ip","limit":1,"period":"1m"}]}`, false, `
GET /a from 203.0.113.7
=> 200
RateLimit: -
RateLimit-Policy: -

GET /a from 203.0.113.7
=> 429
Retry-After: 60
RateLimit: "p";r=0;t=60
`},
	{"long keys are hashed and still isolate", `{"policies":[{"name":"perkey","key":"header:X-Api-Key","limit":1,"period":"1m"}]}`, false, `
GET /a from 203.0.113.7
X-Api-Key: ` + strings.Repeat("a", 2000) + `
=> 200

GET /a from 203.0.113.7
X-Api-Key: ` + strings.Repeat("a", 1999) + `b
=> 200

GET /a from 198.51.100.9
X-Api-Key: ` + strings.Repeat("a", 2000) + `
=> 429
`},
}

func TestPoliciesNative(t *testing.T) {
	for _, c := range scripts {
		t.Run(c.name, func(t *testing.T) { runScript(t, native(t, c.config), c.script) })
	}
}

func TestPoliciesWasm(t *testing.T) {
	n := 0
	for _, c := range scripts {
		if !c.wasm {
			continue
		}
		n++
		t.Run(c.name, func(t *testing.T) {
			p, _ := loadWasm(t, c.config)
			runScript(t, p, c.script)
		})
	}
	if n < 5 {
		t.Fatalf("only %d scripts run as Wasm", n)
	}
}

func TestREADMENative(t *testing.T) {
	configs, scripts := readmeExamples(t)
	for i, cfg := range configs {
		h := native(t, cfg)
		for _, s := range scripts[i] {
			runScript(t, h, s)
		}
	}
}

func TestREADMEWasm(t *testing.T) {
	configs, scripts := readmeExamples(t)
	for i, cfg := range configs {
		p, _ := loadWasm(t, cfg)
		for _, s := range scripts[i] {
			runScript(t, p, s)
		}
	}
}

// metrics reads the plugin's counters; name is without wedge_plugin_.
func metric(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	return wasmtest.Metric(t, g, "wedge_plugin_"+name, nil)
}

const countingConfig = `{"policies":[
	{"name":"perip","key":"ip","limit":60,"period":"1h","burst":2},
	{"name":"trial","key":"ip","limit":1,"period":"1h","shadow":true}]}`

// countingScript: trial would refuse requests 2-4, perip refuses 3 and 4.
const countingScript = `
GET /a from 203.0.113.7
=> 200

GET /a from 203.0.113.7
=> 200

GET /a from 203.0.113.7
=> 429

GET /a from 203.0.113.7
=> 429
`

func checkCounts(t *testing.T, g prometheus.Gatherer) {
	t.Helper()
	for name, want := range map[string]float64{
		"ratelimit_shadow_refused_trial_total": 3,
		"ratelimit_refused_perip_total":        2,
		"ratelimit_refused_total":              2,
	} {
		if got := metric(t, g, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestMetricsNative(t *testing.T) {
	h := native(t, countingConfig)
	runScript(t, h, countingScript)
	checkCounts(t, h.Registry)
}

func TestMetricsWasm(t *testing.T) {
	p, reg := loadWasm(t, countingConfig)
	runScript(t, p, countingScript)
	checkCounts(t, reg)
}

func TestProblemBody(t *testing.T) {
	h := native(t, `{"policies":[
		{"name":"a","key":"ip","limit":1,"period":"1m"},
		{"name":"b","key":"ip","limit":1,"period":"1m","shadow":true},
		{"name":"c","key":"ip","limit":1,"period":"1h"}]}`)
	ex := exchange{method: "GET", target: "/", ip: "203.0.113.7"}
	if res := do(h, ex); res.Resp.Status != 200 {
		t.Fatalf("first request: %d", res.Resp.Status)
	}
	res := do(h, ex)
	want := `{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded",` +
		`"title":"Request cannot be satisfied as assigned quota has been exceeded","status":429,` +
		`"violated-policies":["a","c"]}` + "\n"
	if res.Resp.Status != 429 || string(res.Resp.Body) != want {
		t.Fatalf("got %d %s, want 429 %s", res.Resp.Status, res.Resp.Body, want)
	}
}

// TestProblemBodyOnePolicy: the body Configure prepares for a policy
// refusing alone, with a shadow policy refusing beside it, is the one
// built for several.
func TestProblemBodyOnePolicy(t *testing.T) {
	h := native(t, `{"policies":[
		{"name":"a","key":"ip","limit":1,"period":"1m"},
		{"name":"b","key":"ip","limit":1,"period":"1m","shadow":true}]}`)
	ex := exchange{method: "GET", target: "/", ip: "203.0.113.7"}
	if res := do(h, ex); res.Resp.Status != 200 {
		t.Fatalf("first request: %d", res.Resp.Status)
	}
	for range 2 { // the second from the buffers the first left
		res := do(h, ex)
		want := `{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded",` +
			`"title":"Request cannot be satisfied as assigned quota has been exceeded","status":429,` +
			`"violated-policies":["a"]}` + "\n"
		if res.Resp.Status != 429 || string(res.Resp.Body) != want {
			t.Fatalf("got %d %s, want 429 %s", res.Resp.Status, res.Resp.Body, want)
		}
		if got, _ := res.Resp.Header.Get("RateLimit"); !strings.HasPrefix(got, `"a";r=0;t=`) {
			t.Errorf("RateLimit %q", got)
		}
	}
}

// TestIPKey: what ip policies count a client by.
func TestIPKey(t *testing.T) {
	for _, c := range []struct {
		prefix   int
		ip, want string
	}{
		{64, "203.0.113.7", "203.0.113.7"},
		{64, "2001:db8:1:2:dead:beef:0:1", "2001:db8:1:2::/64"},
		{64, "2001:DB8:1:2::7", "2001:db8:1:2::/64"},
		{48, "2001:db8:1:2::7", "2001:db8:1::/48"},
		{128, "2001:db8:1:2::7", "2001:db8:1:2::7"},
		{64, "::ffff:203.0.113.7", "203.0.113.7"}, // IPv4 in IPv6 is IPv4
		{64, "fe80::1%eth0", "fe80::/64"},
		{128, "fe80::1%eth0", "fe80::1"},
		{64, "not:an:address", "not:an:address"}, // as it came: nothing is lost
	} {
		cfg := &config{ipv6Prefix: c.prefix}
		if got := string(cfg.appendIPKey(nil, []byte(c.ip))); got != c.want {
			t.Errorf("/%d %s: %q, want %q", c.prefix, c.ip, got, c.want)
		}
	}
	cfg, buf := &config{ipv6Prefix: 64}, make([]byte, 0, 64)
	ip := []byte("2001:db8:1:2:dead:beef:0:1")
	if n := testing.AllocsPerRun(100, func() { buf = cfg.appendIPKey(buf[:0], ip) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := `"name":"p","key":"ip","limit":1,"period":"1s"`
	for _, c := range []struct{ config, want string }{
		{``, "config required"},
		{`[1]`, "not a JSON object"},
		{`{}`, "needs policies"},
		{`{"policies":[]}`, "policies is empty"},
		{`{"policies":{}}`, "array"},
		{`{"policies":[` + manyPolicies(33) + `]}`, "at most 32 policies"},
		{`{"policies":[{` + ok + `}],"header":true}`, `unknown config field "header"`},
		{`{"policies":[{` + ok + `}],"headers":"yes"}`, "headers must be true or false"},
		{`{"policies":[{` + ok + `}],"ipv6_prefix":0}`, "ipv6_prefix must be a whole number of bits from 1 to 128"},
		{`{"policies":[{` + ok + `}],"ipv6_prefix":129}`, "ipv6_prefix must be"},
		{`{"policies":[{` + ok + `}],"ipv6_prefix":"64"}`, "ipv6_prefix must be"},
		{`{"policies":[{` + ok + `},{` + ok + `}]}`, `"p" used twice`},
		{`{"policies":[{` + ok + `,"brust":3}]}`, `unknown field "brust"`},
		{`{"policies":[{` + ok + `,"scope":"continent"}]}`, `scope must be "pop", "region" or "global"`},
		{`{"policies":[{` + ok + `,"scope":1}]}`, `scope must be`},
		{`{"policies":[{"key":"ip","limit":1,"period":"1s"}]}`, "name"},
		{`{"policies":[{"name":"Per-IP","key":"ip","limit":1,"period":"1s"}]}`, "must match"},
		{`{"policies":[{"name":"` + strings.Repeat("a", 33) + `","key":"ip","limit":1,"period":"1s"}]}`, "at most 32"},
		{`{"policies":[{"name":"p","limit":1,"period":"1s"}]}`, "needs key, limit and period"},
		{`{"policies":[{"name":"p","key":"ip","period":"1s"}]}`, "needs key, limit and period"},
		{`{"policies":[{"name":"p","key":"ip","limit":1}]}`, "needs key, limit and period"},
		{`{"policies":[{"name":"p","key":"cookie:x","limit":1,"period":"1s"}]}`, "want ip, header:<name>"},
		{`{"policies":[{"name":"p","key":"ip:x","limit":1,"period":"1s"}]}`, "ip takes no argument"},
		{`{"policies":[{"name":"p","key":"header:","limit":1,"period":"1s"}]}`, "header needs a header name"},
		{`{"policies":[{"name":"p","key":"header:X Y","limit":1,"period":"1s"}]}`, "header needs a header name"},
		{`{"policies":[{"name":"p","key":"value:","limit":1,"period":"1s"}]}`, "value needs"},
		{`{"policies":[{"name":"p","key":"path:search","limit":1,"period":"1s"}]}`, "path needs a prefix"},
		{`{"policies":[{"name":"p","key":"path:/a%2F","limit":1,"period":"1s"}]}`, "path needs a prefix"},
		{`{"policies":[{"name":"p","key":"ip","limit":0,"period":"1s"}]}`, "limit must be"},
		{`{"policies":[{"name":"p","key":"ip","limit":1.5,"period":"1s"}]}`, "limit must be"},
		{`{"policies":[{"name":"p","key":"ip","limit":2147483648,"period":"1s"}]}`, "limit must be"},
		{`{"policies":[{"name":"p","key":"ip","limit":1,"period":"soon"}]}`, `period "soon"`},
		{`{"policies":[{"name":"p","key":"ip","limit":1,"period":60}]}`, "period must be a duration string"},
		{`{"policies":[{"name":"p","key":"ip","limit":1,"period":"500ms"}]}`, "whole seconds"},
		{`{"policies":[{"name":"p","key":"ip","limit":1,"period":"1.5s"}]}`, "whole seconds"},
		{`{"policies":[{"name":"p","key":"ip","limit":1,"period":"9601h"}]}`, "400 days"},
		{`{"policies":[{` + ok + `,"burst":0}]}`, "burst must be"},
		{`{"policies":[{` + ok + `,"shadow":1}]}`, "shadow must be"},
		{`{"policies":[{"name":"p","key":"value:sub","limit":1,"period":"1s","missing":"deny"}]}`, `missing must be "skip" or "ip"`},
		{`{"policies":[{` + ok + `,"missing":"skip"}]}`, "missing applies to header: and value: keys only"},
	} {
		_, err := sdktest.Configure(&ratelimit{}, []byte(c.config), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %.80s: error %v, want one containing %q", c.config, err, c.want)
		}
	}
	// The largest values accepted, as a boundary check on the refusals above.
	if _, err := sdktest.Configure(&ratelimit{}, []byte(`{"policies":[`+manyPolicies(32)+`]}`), nil); err != nil {
		t.Errorf("32 policies refused: %v", err)
	}
	good := `{"policies":[{"name":"` + strings.Repeat("a", 32) + `","key":"value:sub","limit":2147483647,"period":"9600h","burst":2147483647,"missing":"skip"}]}`
	if _, err := sdktest.Configure(&ratelimit{}, []byte(good), nil); err != nil {
		t.Errorf("config at the limits refused: %v", err)
	}
}

func TestClientIP(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7:51234":   "203.0.113.7",
		"[2001:db8::1]:443":   "2001:db8::1",
		"2001:db8::1":         "2001:db8::1",
		"203.0.113.7":         "203.0.113.7",
		"[2001:db8::1":        "[2001:db8::1",
		"":                    "",
		"unix:/run/edge.sock": "unix",
	} {
		if got := clientIP(in); got != want {
			t.Errorf("clientIP(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnderPrefix(t *testing.T) {
	for _, c := range []struct {
		path, prefix string
		want         bool
	}{
		{"/search", "/search", true},
		{"/search/", "/search", true},
		{"/search/x", "/search", true},
		{"/searchx", "/search", false},
		{"/sear", "/search", false},
		{"/%73earch", "/search", true},
		{"/%73EARCH", "/search", false},
		{"/se%61rch/x", "/search", true},
		{"/search%2Fx", "/search", false},
		{"/%2", "/search", false},
		{"/api/", "/api/", true},
		{"/api", "/api/", false},
		{"/api/v1", "/api/", true},
		{"/", "/", true},
		{"/anything", "/", true},
	} {
		if got := underPrefix(normalizePath(nil, c.path), c.prefix); got != c.want {
			t.Errorf("underPrefix(%q, %q) = %v, want %v", c.path, c.prefix, got, c.want)
		}
	}
}

// manyPolicies returns n valid policies with distinct names, comma-separated.
func manyPolicies(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"p%d","key":"ip","limit":1,"period":"1s"}`, i)
	}
	return b.String()
}

// TestScopeKeys: a region or global policy names its scope by the key's
// prefix, which the host shares (wasm/host.KeyScope); pop has none.
func TestScopeKeys(t *testing.T) {
	for scope, want := range map[string]string{"": "ratelimit\x00p\x00", `,"scope":"pop"`: "ratelimit\x00p\x00",
		`,"scope":"region"`: "@region:ratelimit\x00p\x00", `,"scope":"global"`: "@global:ratelimit\x00p\x00"} {
		cfg, err := parseConfig([]byte(`{"policies":[{"name":"p","key":"ip","limit":1,"period":"1s"` + scope + `}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(cfg.policies[0].keyPrefix); got != want {
			t.Errorf("scope %s: key prefix %q, want %q", scope, got, want)
		}
	}
}
