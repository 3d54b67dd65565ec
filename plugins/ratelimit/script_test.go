package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/readmetest"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// This file holds the small exchange-script format the README documents
// (README.md, "Examples") and the two ways of running it: natively
// through sdktest and as Wasm through wasmtest.

// exchange is one request and the response it must get.
type exchange struct {
	line   int // in its script, for failure messages
	method string
	target string
	ip     string
	header [][2]string
	values [][2]string
	status int
	want   [][2]string // "-" as the value: the field is absent
}

// parseExchanges reads exchanges separated by blank lines.
func parseExchanges(script string) ([]exchange, error) {
	var out []exchange
	var ex *exchange
	inResponse := false
	for i, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		n := i + 1
		switch {
		case line == "":
			ex = nil
		case ex == nil:
			f := strings.Fields(line)
			if len(f) != 4 || f[2] != "from" {
				return nil, fmt.Errorf("line %d: want METHOD TARGET from IP, got %q", n, line)
			}
			out = append(out, exchange{line: n, method: f[0], target: f[1], ip: f[3]})
			ex, inResponse = &out[len(out)-1], false
		case strings.HasPrefix(line, "=> "):
			st, err := strconv.Atoi(line[3:])
			if err != nil {
				return nil, fmt.Errorf("line %d: bad status %q", n, line)
			}
			ex.status, inResponse = st, true
		case !inResponse && strings.HasPrefix(line, "value "):
			k, v, ok := strings.Cut(line[6:], "=")
			if !ok {
				return nil, fmt.Errorf("line %d: want value name=v", n)
			}
			ex.values = append(ex.values, [2]string{k, v})
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: want Name: value, got %q", n, line)
			}
			f := [2]string{strings.TrimSpace(k), strings.TrimSpace(v)}
			if inResponse {
				ex.want = append(ex.want, f)
			} else {
				ex.header = append(ex.header, f)
			}
		}
	}
	for _, ex := range out {
		if ex.status == 0 {
			return nil, fmt.Errorf("line %d: exchange without => STATUS", ex.line)
		}
	}
	return out, nil
}

// phases is what sdktest.Host and a loaded Wasm module have in common.
type phases interface {
	OnRequest(host.Exchange) (abi.Action, error)
	OnResponse(host.Exchange) error
}

// do runs ex through p as an edge chain would, with the request values an
// earlier plugin (auth) set already in place.
func do(p phases, ex exchange) *host.Result {
	req := host.Request{Method: ex.method, Scheme: "https", Host: "api.example", Proto: "HTTP/1.1",
		ClientAddr: ex.ip, ID: "test"}
	switch n := strings.Count(ex.ip, ":"); {
	case strings.HasPrefix(ex.ip, "[") || n == 1: // already host:port
	case n > 1:
		req.ClientAddr = "[" + ex.ip + "]:40000"
	default:
		req.ClientAddr = ex.ip + ":40000"
	}
	req.Path, req.RawQuery, _ = strings.Cut(ex.target, "?")
	for _, h := range ex.header {
		req.Header.Add(h[0], h[1])
	}
	onRequest := func(x host.Exchange) (abi.Action, error) {
		for _, v := range ex.values {
			x.Values().Set([]byte(v[0]), []byte(v[1]), 0)
		}
		return p.OnRequest(x)
	}
	origin := func(*host.Request) host.Response { return host.Response{Status: 200, Body: []byte("origin")} }
	return host.Run(req, onRequest, origin, p.OnResponse)
}

// check compares a result with what ex wants.
func check(t *testing.T, ex exchange, res *host.Result) {
	t.Helper()
	if res.RequestErr != nil || res.ResponseErr != nil {
		t.Fatalf("line %d: %s %s: %v %v", ex.line, ex.method, ex.target, res.RequestErr, res.ResponseErr)
	}
	if res.Resp.Status != ex.status {
		t.Errorf("line %d: %s %s from %s: status %d, want %d (fields %v)", ex.line, ex.method, ex.target, ex.ip,
			res.Resp.Status, ex.status, res.Resp.Header.Fields)
	}
	for _, w := range ex.want {
		got := res.Resp.Header.Values(w[0])
		want := []string{w[1]}
		if w[1] == "-" {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("line %d: %s %s from %s: %s = %q, want %q", ex.line, ex.method, ex.target, ex.ip, w[0], got, want)
		}
	}
}

// runScript sends a script's exchanges through p in order.
func runScript(t *testing.T, p phases, script string) {
	t.Helper()
	exs, err := parseExchanges(script)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) == 0 {
		t.Fatal("script has no exchanges")
	}
	for _, ex := range exs {
		check(t, ex, do(p, ex))
	}
}

// native configures the plugin in-process; each call is a fresh limiter.
func native(t testing.TB, config string) *sdktest.Host {
	t.Helper()
	return sdktest.New(t, &ratelimit{}, []byte(config))
}

// loadWasm loads the built plugin with config into a runtime whose
// metrics go to the returned registry.
func loadWasm(t *testing.T, config string) (*wasmtest.Plugin, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(2).WithRegisterer(reg).
		WithStores(host.NewMemCache(1<<20), host.NewGCRA(1<<16)))
	return wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "ratelimit", Version: "test",
		Binary: wasmtest.Build(t, "."), Config: []byte(config)}), reg
}

// readmeExamples returns the README's configurations, each with the
// exchange scripts that follow it.
func readmeExamples(t *testing.T) (configs []string, scripts [][]string) {
	t.Helper()
	for _, b := range readmetest.Blocks(t, "README.md", "") {
		switch b.Lang {
		case "json":
			configs = append(configs, b.Text)
			scripts = append(scripts, nil)
		case "exchanges":
			if len(configs) == 0 {
				t.Fatal("README: exchanges before any json config")
			}
			scripts[len(scripts)-1] = append(scripts[len(scripts)-1], b.Text)
		}
	}
	if len(configs) < 2 {
		t.Fatalf("README: found %d example configs, want at least 2", len(configs))
	}
	return configs, scripts
}
