package main

import (
	"slices"
	"strconv"
	"testing"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// exchangeCalls are the host functions by which the plugin reads or writes
// the exchange itself: the state value, the status and header fields.
// What the host does inside cache_response is not among them.
var exchangeCalls = []string{"status_get", "field_get", "value_get", "header_get", "header_values",
	"header_names", "header_set", "header_add", "header_remove"}

// settleCase is a forwarded request and the origin's answer to it.
type settleCase struct {
	config  string
	method  string
	reqCC   string // the request's Cache-Control
	status  int
	fields  []string // name, value, ...
	settled bool     // the host settles it: not stored, decided from the directives
}

var settleCases = []settleCase{
	{"", "GET", "", 200, []string{"Cache-Control", "no-store"}, true},
	{"", "GET", "", 200, []string{"Cache-Control", "private, max-age=60"}, true},
	{"", "GET", "", 206, []string{"Cache-Control", "max-age=60"}, true},
	{"", "GET", "", 599, []string{"Cache-Control", "max-age=60"}, true},
	{"", "GET", "no-store", 200, []string{"Cache-Control", "max-age=60"}, true},
	{"", "GET", "", 200, []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=1"}, true},
	{"", "GET", "", 200, []string{"Cache-Control", "max-age=60", "Wedge-Cache-Control", "no-store"}, true},
	{`{"strip_cdn_cache_control":true}`, "GET", "", 200, []string{"CDN-Cache-Control", "private", "Cache-Control", "max-age=60"}, true},
	{"", "GET", "", 200, []string{"CDN-Cache-Control", "no-store", "Cache-Control", "max-age=60"}, true},
	{"", "OPTIONS", "", 200, []string{"Cache-Control", "max-age=60"}, true},
	// Left to the plugin: it may store, or needs what only it reads.
	{"", "GET", "", 200, []string{"Cache-Control", "no-store, must-understand"}, false},
	{`{"set_cookie":"strip"}`, "GET", "", 200, []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=1"}, false},
	{"", "GET", "", 200, []string{"Cache-Control", "max-age=60"}, false},
	{"", "GET", "", 302, nil, false},
	{"", "DELETE", "", 200, []string{"Cache-Control", "no-store"}, false},
}

// respond runs c's request phase on a fresh harness, then its response
// phase on the given answer, through OnResponse (the host settles what it
// can) or the plugin's own decision alone. It returns the response's
// fields and how often the plugin itself read or wrote the exchange.
func respond(t testing.TB, sc settleCase, viaHost bool) ([]host.HeaderField, int) {
	c := &cache{}
	h := sdktest.New(t, c, []byte(sc.config))
	var call host.Call
	acc := &abi.CountingHost{Host: &call}
	prev := hostcall.SetHost(&call)
	defer hostcall.SetHost(prev)
	x := &host.MemExchange{Req: host.Request{Method: sc.method, Scheme: "https", Host: "example.com", Path: "/settle"}}
	if sc.reqCC != "" {
		x.Req.Header.Add("Cache-Control", sc.reqCC)
	}
	call.Reset(h.Env, abi.PhaseRequest, x)
	if act := c.OnRequest(sdk.Request{}, sdk.Response{}); act != sdk.Continue {
		t.Fatalf("request phase: action %d: %s", act, call.ErrorMessage())
	}
	call.Release()
	x.Resp = host.Response{Status: sc.status, Body: []byte("hello")}
	for i := 0; i+1 < len(sc.fields); i += 2 {
		x.Resp.Header.Add(sc.fields[i], sc.fields[i+1])
	}
	hostcall.SetHost(acc)
	call.Reset(h.Env, abi.PhaseResponse, x)
	act := sdk.Continue
	if viaHost {
		act = c.OnResponse(sdk.Request{}, sdk.Response{})
	} else {
		act = c.decide(sdk.Request{}, sdk.Response{})
	}
	if act != sdk.Continue {
		t.Fatalf("response phase: action %d: %s", act, call.ErrorMessage())
	}
	call.Release()
	return x.Resp.Header.Fields, acc.Count(exchangeCalls...)
}

// TestSettledInHost: a response that will not be stored is settled by
// cache_response, without the plugin reading the state, the status or a
// field itself (in Wasm each read is a host call and each parse costs what
// a whole hit should), and the response comes out exactly as the plugin's
// own decision leaves it; one that may be stored is left to the plugin.
func TestSettledInHost(t *testing.T) {
	for i, sc := range settleCases {
		t.Run(strconv.Itoa(i)+" "+sc.method+" "+strconv.Itoa(sc.status), func(t *testing.T) {
			got, n := respond(t, sc, true)
			want, _ := respond(t, sc, false)
			if !slices.Equal(got, want) {
				t.Errorf("%+v:\nsettled  %v\nplugin's %v", sc, got, want)
			}
			if sc.settled && n != 0 {
				t.Errorf("%+v: the plugin accessed the exchange %d times itself, want the host to settle it", sc, n)
			}
			if !sc.settled && n == 0 {
				t.Errorf("%+v: settled in the host, want it left to the plugin", sc)
			}
		})
	}
}

// FuzzSettle holds cache_response to the plugin's own decision for
// arbitrary caching fields and statuses: whatever the host settles, it
// settles to the response the plugin would have made.
func FuzzSettle(f *testing.F) {
	for _, sc := range settleCases {
		if len(sc.fields) >= 2 {
			f.Add(sc.fields[1], sc.reqCC, sc.status, len(sc.fields) > 2)
		}
	}
	f.Add(`no-cache="Set-Cookie", max-age=5`, "", 200, true)
	f.Add("max-age=1;a=?1, private", "max-stale", 404, false)
	f.Fuzz(func(t *testing.T, cc, reqCC string, status int, cookie bool) {
		if status < 200 || status > 599 || !abi.ValidHeaderValue(cc) || !abi.ValidHeaderValue(reqCC) {
			return
		}
		sc := settleCase{method: "GET", reqCC: reqCC, status: status, fields: []string{"Cache-Control", cc, "Wedge-Cache-Control", cc}}
		if cookie {
			sc.fields = append(sc.fields, "Set-Cookie", "a=1")
		}
		got, _ := respond(t, sc, true)
		want, _ := respond(t, sc, false)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v:\nsettled  %v\nplugin's %v", sc, got, want)
		}
	})
}

// TestLookupReadsNothing: a GET or HEAD is looked up with cache_request
// alone, which refuses other methods itself; the plugin reads the method
// only then, to tell a safe one from one that invalidates.
func TestLookupReadsNothing(t *testing.T) {
	for _, method := range []string{"GET", "HEAD", "POST"} {
		c := &cache{}
		h := sdktest.New(t, c, nil)
		var call host.Call
		acc := &abi.CountingHost{Host: &call}
		prev := hostcall.SetHost(acc)
		x := &host.MemExchange{Req: host.Request{Method: method, Scheme: "https", Host: "example.com", Path: "/lookup"}}
		call.Reset(h.Env, abi.PhaseRequest, x)
		if act := c.OnRequest(sdk.Request{}, sdk.Response{}); act != sdk.Continue {
			t.Fatalf("%s: action %d: %s", method, act, call.ErrorMessage())
		}
		call.Release()
		hostcall.SetHost(prev)
		if n := acc.Count(exchangeCalls...); (method != "POST") != (n == 0) {
			t.Errorf("%s: the plugin read the exchange %d times", method, n)
		}
	}
}
