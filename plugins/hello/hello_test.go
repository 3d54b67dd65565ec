package main

import (
	"testing"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// cases run natively (sdktest) and as Wasm (wasmtest): the two must agree.
var cases = []struct {
	name, config, path string
	status             int
	body, header       string
}{
	{"greets by name", "", "/hello?name=Ada", 200, "Hello, Ada!\n", "Hello"},
	{"greets the world", "", "/hello", 200, "Hello, world!\n", "Hello"},
	{"custom greeting", `{"greeting":"Hej"}`, "/hello", 200, "Hej, world!\n", "Hej"},
	{"continues elsewhere", `{"greeting":"Hej"}`, "/other", 201, "origin", "Hej"},
}

func check(t *testing.T, res *host.Result, status int, body, header string) {
	t.Helper()
	if res.RequestErr != nil || res.ResponseErr != nil {
		t.Fatal(res.RequestErr, res.ResponseErr)
	}
	if v, _ := res.Resp.Header.Get("X-Hello"); res.Resp.Status != status || string(res.Resp.Body) != body || v != header {
		t.Fatalf("got %d %q X-Hello=%q, want %d %q %q", res.Resp.Status, res.Resp.Body, v, status, body, header)
	}
}

func request(target string) host.Request {
	r := host.Request{Method: "GET", Path: target}
	for i := range target {
		if target[i] == '?' {
			r.Path, r.RawQuery = target[:i], target[i+1:]
		}
	}
	return r
}

func origin(*host.Request) host.Response { return host.Response{Status: 201, Body: []byte("origin")} }

func TestHelloNative(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := sdktest.New(t, &hello{}, []byte(c.config))
			h.Origin = origin
			check(t, h.Do(request(c.path)), c.status, c.body, c.header)
		})
	}
}

func TestHelloWasm(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := wasmtest.Load(t, ".", []byte(c.config))
			p.Origin = origin
			check(t, p.Do(request(c.path)), c.status, c.body, c.header)
		})
	}
}

func TestHelloRefusesBadConfig(t *testing.T) {
	for _, cfg := range []string{`[1]`, `{"greeting":""}`, `{"greeting":7}`} {
		if _, err := sdktest.Configure(&hello{}, []byte(cfg), nil); err == nil {
			t.Errorf("config %s accepted", cfg)
		}
	}
}
