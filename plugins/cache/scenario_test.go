package main

// A small scenario language for end-to-end runs, used by the README's
// examples and by the end-to-end tests. One directive per line:
//
//	config: {"name":"edge"}          plugin config (first line only)
//	origin: 200 body text            what the origin answers from now on
//	origin-header: Name: value       a field of that answer (repeatable)
//	wait: 5s                         advance the host clock (native only)
//	request: GET /path?query         a new request to https://example.com
//	request-header: Name: value      a field of that request
//	expect: 200 body text            run it; check status (and body if given)
//	expect-body: text                the response body exactly (may be empty)
//	expect-header: Name: value       the response's values of Name, joined
//	                                 with ", "; "Name:" alone means absent
//	expect-names: A, B, C            the response's field names, in order
//	expect-origin: 2                 origin requests so far
//	expect-origin-header: N: v       a field of the last origin request
//	purge-tag: t                     purge tag t in the host (native only)
//
// Blank lines and lines starting with # are ignored.

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/internal/readmetest"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// runner is what a scenario runs against: the native host or the Wasm build.
type runner struct {
	do       func(host.Request) *host.Result
	setOrig  func(func(*host.Request) host.Response)
	advance  func(time.Duration) bool // false when the clock cannot move
	purgeTag func(string) bool
}

func nativeRunner(t *testing.T, config string) runner {
	hs := sdktest.New(t, &cache{}, []byte(config))
	now := t0
	hs.Env.Now = func() time.Time { return now }
	return runner{
		do:       hs.Do,
		setOrig:  func(f func(*host.Request) host.Response) { hs.Origin = f },
		advance:  func(d time.Duration) bool { now = now.Add(d); return true },
		purgeTag: func(tag string) bool { hs.Env.Cache.PurgeTag([]byte(tag)); return true },
	}
}

func wasmRunner(t *testing.T, config string) runner {
	p := wasmtest.Load(t, ".", []byte(config))
	return runner{
		do:       p.Do,
		setOrig:  func(f func(*host.Request) host.Response) { p.Origin = f },
		advance:  func(time.Duration) bool { return false },
		purgeTag: func(string) bool { return false },
	}
}

func field(s string) (string, string) {
	n, v, _ := strings.Cut(s, ":")
	return strings.TrimSpace(n), strings.TrimSpace(v)
}

// scenarioConfig returns the config line of a scenario.
func scenarioConfig(script string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(script), "\n")
	if v, ok := strings.CutPrefix(first, "config:"); ok {
		return strings.TrimSpace(v)
	}
	return ""
}

// runScenario runs script on r; it returns false when r cannot run it (a
// clock or purge step on the Wasm build).
func runScenario(t *testing.T, r runner, script string) bool {
	t.Helper()
	var (
		origin     host.Response
		calls      int
		lastOrigin *host.Request
		req        *host.Request
		res        *host.Result
		line       int
		originSet  bool
	)
	r.setOrig(func(in *host.Request) host.Response {
		calls++
		cp := *in
		cp.Header.Fields = append([]host.HeaderField(nil), in.Header.Fields...)
		lastOrigin = &cp
		out := origin
		out.Header.Fields = append([]host.HeaderField(nil), origin.Header.Fields...)
		return out
	})
	run := func() {
		if res == nil {
			if req == nil {
				t.Fatalf("line %d: expect without a request", line)
			}
			res = r.do(*req)
			if res.RequestErr != nil || res.ResponseErr != nil {
				t.Fatalf("line %d: %v %v", line, res.RequestErr, res.ResponseErr)
			}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		verb, arg, ok := strings.Cut(text, ":")
		if !ok {
			t.Fatalf("line %d: no directive in %q", line, text)
		}
		arg = strings.TrimSpace(arg)
		switch verb {
		case "config":
		case "origin":
			code, body, _ := strings.Cut(arg, " ")
			n, err := strconv.Atoi(code)
			if err != nil {
				t.Fatalf("line %d: bad status %q", line, code)
			}
			origin = host.Response{Status: n, Body: []byte(body)}
			originSet = true
		case "origin-header":
			if !originSet {
				t.Fatalf("line %d: origin-header before origin", line)
			}
			n, v := field(arg)
			origin.Header.Add(n, v)
		case "wait":
			d, err := time.ParseDuration(arg)
			if err != nil {
				t.Fatalf("line %d: %v", line, err)
			}
			if !r.advance(d) {
				return false
			}
		case "purge-tag":
			if !r.purgeTag(arg) {
				return false
			}
		case "request":
			m, target, _ := strings.Cut(arg, " ")
			path, query, _ := strings.Cut(target, "?")
			req = &host.Request{Method: m, Scheme: "https", Host: "example.com", Path: path, RawQuery: query, Proto: "HTTP/1.1"}
			res = nil
		case "request-header":
			n, v := field(arg)
			req.Header.Add(n, v)
		case "expect":
			run()
			code, body, hasBody := strings.Cut(arg, " ")
			if strconv.Itoa(res.Resp.Status) != code || hasBody && string(res.Resp.Body) != body {
				t.Fatalf("line %d: got %d %q, want %s", line, res.Resp.Status, res.Resp.Body, arg)
			}
		case "expect-body":
			run()
			if string(res.Resp.Body) != arg {
				t.Fatalf("line %d: body %q, want %q", line, res.Resp.Body, arg)
			}
		case "expect-header":
			run()
			n, v := field(arg)
			if got := strings.Join(res.Resp.Header.Values(n), ", "); got != v {
				t.Fatalf("line %d: %s = %q, want %q (response %v)", line, n, got, v, res.Resp.Header.Fields)
			}
		case "expect-names":
			run()
			var names []string
			for _, f := range res.Resp.Header.Fields {
				names = append(names, f.Name)
			}
			if got := strings.Join(names, ", "); got != arg {
				t.Fatalf("line %d: names %q, want %q", line, got, arg)
			}
		case "expect-origin":
			run()
			if strconv.Itoa(calls) != arg {
				t.Fatalf("line %d: %d origin requests, want %s", line, calls, arg)
			}
		case "expect-origin-header":
			run()
			n, v := field(arg)
			got := ""
			if lastOrigin != nil {
				got = strings.Join(lastOrigin.Header.Values(n), ", ")
			}
			if got != v {
				t.Fatalf("line %d: origin saw %s = %q, want %q", line, n, got, v)
			}
		default:
			t.Fatalf("line %d: unknown directive %q", line, verb)
		}
	}
	return true
}

// readmeExamples returns the scenario blocks of README.md's Examples section.
func readmeExamples(t *testing.T) []string {
	var out []string
	for _, b := range readmetest.Blocks(t, "README.md", "## Examples") {
		if b.Lang == "scenario" {
			out = append(out, b.Text+"\n")
		}
	}
	if len(out) == 0 {
		t.Fatal("README.md has no scenario examples")
	}
	return out
}

func TestReadmeExamplesNative(t *testing.T) {
	for i, s := range readmeExamples(t) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if !runScenario(t, nativeRunner(t, scenarioConfig(s)), s) {
				t.Fatal("native runner refused a step")
			}
		})
	}
}

func TestReadmeExamplesWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	ran := 0
	for i, s := range readmeExamples(t) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if runScenario(t, wasmRunner(t, scenarioConfig(s)), s) {
				ran++
			}
		})
	}
	if ran == 0 {
		t.Fatal("no README example ran as Wasm: keep at least one without wait and purge-tag")
	}
}
