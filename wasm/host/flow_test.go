package host

import (
	"slices"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
)

// fieldNames lists the names of h's fields, in order.
func fieldNames(h *Header) []string {
	var names []string
	for _, f := range h.Fields {
		names = append(names, f.Name)
	}
	return names
}

// TestRunChainPending: fields a plugin leaves on its answer when it
// continues reach the client's response at that plugin's position in the
// response phase, whoever produced the response (ABI section 4): plugins
// behind it never see them, so a cache behind it cannot store them, and
// plugins before it do. Status and body of such an answer are dropped.
func TestRunChainPending(t *testing.T) {
	stored := &StoredResponse{Status: 200, Header: []HeaderField{{"Cache-Control", "max-age=60"}}, Body: []byte("stored")}
	for _, hit := range []bool{false, true} {
		var seen [3][]string // header names each plugin's response phase saw
		var cached *StoredResponse
		phase := func(i int) func(Exchange) error {
			return func(ex Exchange) error {
				seen[i] = fieldNames(&ex.(*MemExchange).Resp.Header)
				if i == 2 && !hit {
					cached = ex.StoreResponse()
				}
				return nil
			}
		}
		chain := []Stage{
			{func(ex Exchange) (abi.Action, error) { // an outer plugin adding a field
				ex.HeaderAdd(abi.MsgResponse, []byte("X-Outer"), []byte("o"))
				return abi.ActionContinue, nil
			}, phase(0)},
			{func(ex Exchange) (abi.Action, error) { // a rate limiter
				if ex.Status() != 0 {
					t.Errorf("the answer the rate limiter starts from has status %d", ex.Status())
				}
				ex.HeaderAdd(abi.MsgResponse, []byte("RateLimit"), []byte(`"u";r=4;t=12`))
				ex.SetStatus(418) // dropped: it continues
				ex.SetBody(abi.MsgResponse, []byte("dropped"))
				return abi.ActionContinue, nil
			}, phase(1)},
			{func(ex Exchange) (abi.Action, error) { // a cache
				if names := fieldNames(&ex.(*MemExchange).Resp.Header); len(names) != 0 || ex.Status() != 0 {
					t.Errorf("the cache's request phase sees an answer: %d %v", ex.Status(), names)
				}
				if !hit {
					return abi.ActionContinue, nil
				}
				ex.LoadResponse(stored)
				return abi.ActionAnswer, nil
			}, phase(2)},
		}
		origin := func(*Request) Response {
			r := Response{Status: 200, Body: []byte("origin")}
			r.Header.Add("Cache-Control", "max-age=60")
			return r
		}
		res := RunChain(Request{Method: "GET", Path: "/"}, chain, origin)
		want := []string{"Cache-Control", "RateLimit", "X-Outer"}
		if got := fieldNames(&res.Resp.Header); !slices.Equal(got, want) || res.Resp.Status != 200 || res.Answered != hit {
			t.Errorf("hit %t: client got %d %v (answered %t), want 200 %v", hit, res.Resp.Status, got, res.Answered, want)
		}
		for i, w := range [][]string{{"Cache-Control", "RateLimit", "X-Outer"}, {"Cache-Control", "RateLimit"}, {"Cache-Control"}} {
			if !slices.Equal(seen[i], w) {
				t.Errorf("hit %t: plugin %d's response phase saw %v, want %v", hit, i, seen[i], w)
			}
		}
		if !hit && (cached == nil || len(cached.Header) != 1 || string(cached.Body) != "origin") {
			t.Errorf("the cache stored %+v, want the origin's response alone", cached)
		}
	}
}

// TestExchangeResetKeepsStored: header fields plugins set live in storage
// the exchange reuses after Reset; what outlives the request (a stored
// response, a revalidation's copy of the request) must not change with it.
func TestExchangeResetKeepsStored(t *testing.T) {
	var x MemExchange
	x.HeaderAdd(abi.MsgResponse, []byte("X-Set"), []byte("first"))
	x.HeaderAdd(abi.MsgRequest, []byte("If-None-Match"), []byte(`"v1"`))
	stored := x.StoreResponse()
	if !x.Revalidate([]byte("k"), func() {}) {
		t.Fatal("no revalidation kept")
	}
	rv := x.TakeRevalidation()
	defer rv.Done()
	x.Reset()
	x.HeaderAdd(abi.MsgResponse, []byte("X-Other"), []byte("secnd"))
	x.HeaderAdd(abi.MsgRequest, []byte("If-None-Match"), []byte(`"v2"`))
	if f := stored.Header[0]; f.Name != "X-Set" || f.Value != "first" {
		t.Errorf("stored response changed with the next request: %q: %q", f.Name, f.Value)
	}
	if v, _ := rv.Exchange().Req.Header.Get("If-None-Match"); v != `"v1"` {
		t.Errorf("the revalidation's request changed with the next request: %q", v)
	}
}

// TestRunChainBodiless: a 204 or 304 a plugin answers with a body, and
// the answer to a HEAD, reach the test as the client gets them, without
// the body: the harnesses showed one the edge never sends.
func TestRunChainBodiless(t *testing.T) {
	for _, c := range []struct {
		method string
		status int
		body   bool
	}{{"GET", 204, false}, {"GET", 304, false}, {"HEAD", 200, false}, {"GET", 200, true}} {
		answer := func(ex Exchange) (abi.Action, error) {
			ex.SetStatus(c.status)
			ex.SetBody(abi.MsgResponse, []byte("body"))
			return abi.ActionAnswer, nil
		}
		res := RunChain(Request{Method: c.method, Path: "/"}, []Stage{{answer, func(Exchange) error { return nil }}}, nil)
		if got := len(res.Resp.Body) > 0; got != c.body || res.Resp.Status != c.status {
			t.Errorf("%s answered %d: status %d, body %q", c.method, c.status, res.Resp.Status, res.Resp.Body)
		}
	}
}

// TestPendingSingleFields: a field a response has one of, left by a plugin
// that continued, replaces the response's own, as the edge's writer does;
// other fields are added beside the response's.
func TestPendingSingleFields(t *testing.T) {
	var x MemExchange
	var p pending
	x.HeaderAdd(abi.MsgResponse, []byte("content-type"), []byte("application/x-plugin"))
	x.HeaderAdd(abi.MsgResponse, []byte("Server"), []byte("plugin"))
	x.HeaderAdd(abi.MsgResponse, []byte("Vary"), []byte("X-Plugin"))
	p.Continued(0, &x.Resp)
	x.Resp = Response{Status: 200}
	x.Resp.Header.Add("Content-Type", "text/plain")
	x.Resp.Header.Add("Vary", "Accept")
	x.Resp.Header.Add("Server", "app")
	p.Apply(0, &x.Resp)
	for name, want := range map[string][]string{
		"Content-Type": {"application/x-plugin"}, "Server": {"plugin"}, "Vary": {"Accept", "X-Plugin"},
	} {
		if got := x.Resp.Header.Values(name); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// TestPendingAllocs: carrying fields aside allocates nothing once warm,
// and neither does setting them on a reset exchange.
func TestPendingAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var x MemExchange
	var p pending
	request := func() {
		x.Reset()
		p.Reset()
		x.HeaderAdd(abi.MsgResponse, []byte("RateLimit-Policy"), []byte(`"u";q=5;w=60`))
		x.HeaderAdd(abi.MsgResponse, []byte("RateLimit"), []byte(`"u";r=4;t=12`))
		p.Continued(0, &x.Resp)
		x.Resp.Status = 200
		p.Apply(0, &x.Resp)
	}
	request()
	if n := testing.AllocsPerRun(100, request); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}

// TestRunChainLeavesCallersFields: what plugins change of the request's
// and the origin's header fields, and a cached answer loaded over the
// origin's, stays in the exchange: the caller's request and the origin's
// fields are as they were, so a request run twice (sdktest's Host.Do,
// wasmtest's Plugin.Do, `wedgectl plugin run -n 2`) runs as the same
// request twice. The request's fields were shared, and the second run saw
// the first one's edits: X-Tag "client+seen+seen", Accept twice.
func TestRunChainLeavesCallersFields(t *testing.T) {
	req := Request{Method: "GET", Path: "/", Header: Header{Fields: []HeaderField{
		{"X-Tag", "client"}, {"Accept", "*/*"}, {"X-Drop", "1"}, {"X-Keep", "1"}}}}
	fromOrigin := []HeaderField{{"Server", "origin"}, {"X-Origin", "1"}}
	stage := Stage{
		OnRequest: func(ex Exchange) (abi.Action, error) {
			tag, _ := ex.HeaderGet(abi.MsgRequest, []byte("X-Tag"))
			ex.HeaderSet(abi.MsgRequest, []byte("X-Tag"), append(slices.Clone(tag), "+seen"...))
			ex.HeaderAdd(abi.MsgRequest, []byte("Accept"), []byte("text/html"))
			ex.HeaderDel(abi.MsgRequest, []byte("X-Drop"))
			return abi.ActionContinue, nil
		},
		OnResponse: func(ex Exchange) error {
			ex.HeaderSet(abi.MsgResponse, []byte("Server"), []byte("edge"))
			ex.HeaderDel(abi.MsgResponse, []byte("X-Origin"))
			ex.LoadResponse(&StoredResponse{Status: 200, Header: []HeaderField{{"X-Cached", "1"}, {"Age", "3"}}})
			return nil
		},
	}
	origin := func(*Request) Response { return Response{Status: 200, Header: Header{Fields: fromOrigin}} }
	want := slices.Clone(req.Header.Fields)
	wantOrigin := slices.Clone(fromOrigin)
	for i := range 2 {
		res := RunChain(req, []Stage{stage}, origin)
		if got, _ := res.Req.Header.Get("X-Tag"); got != "client+seen" {
			t.Fatalf("run %d: X-Tag %q reached the origin, want client+seen", i+1, got)
		}
		if got := res.Req.Header.Values("Accept"); !slices.Equal(got, []string{"*/*", "text/html"}) {
			t.Fatalf("run %d: Accept %q", i+1, got)
		}
		if !slices.Equal(req.Header.Fields, want) {
			t.Fatalf("run %d: the caller's request became %q, want %q", i+1, req.Header.Fields, want)
		}
		if !slices.Equal(fromOrigin, wantOrigin) {
			t.Fatalf("run %d: the origin's fields became %q, want %q", i+1, fromOrigin, wantOrigin)
		}
	}
}
