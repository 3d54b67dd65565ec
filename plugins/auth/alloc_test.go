//go:build !race

package main

import (
	"testing"
	"time"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// bodyExchange keeps the body it is given in a buffer it reuses, so that
// the test counts the plugin's allocations only: MemExchange, the edge's
// too, copies each body afresh (the edge hands it to fasthttp uncopied,
// to be written after the exchange is back in its pool), one allocation
// per answer that is the host's, not the plugin's.
type bodyExchange struct {
	*host.MemExchange
	body []byte
}

func (x *bodyExchange) SetBody(m abi.Msg, b []byte) {
	if m != abi.MsgResponse {
		x.MemExchange.SetBody(m, b)
		return
	}
	x.body = append(x.body[:0], b...)
	x.Resp.Body = x.body
}

// TestRequestPathCost holds the admitted and the refused paths to no
// allocation in the plugin (natively; the guest allocates the same as Wasm,
// where an allocation is guest GC time) and to the host calls they need:
// a valid token is read, verified with its identity forwarded by the host,
// counted, and its header stripped; a refusal reads the credential
// headers, counts, and sends an answer built at configure time. A token in
// a cookie is read, checked and cut out of Cookie, which is written back.
func TestRequestPathCost(t *testing.T) {
	k := mustKeys(t)
	a, withCookie := &auth{}, &auth{}
	h := sdktest.New(t, a, baseConfig(t, nil))
	h.Env.Now = func() time.Time { return now }
	sdktest.New(t, withCookie, baseConfig(t, cookieConfig)).Env.Now = h.Env.Now
	hs := sign(t, "HS256", k.hmac, "hs256", claims(map[string]any{"scope": "orders:read"}))
	es := sign(t, "ES256", k.p256, "es256", claims(nil))
	for _, c := range []struct {
		name  string
		req   host.Request
		act   sdk.Action
		calls int // path, two credential headers, then the decision's
		// cookie: the plugin takes tokens in the cookie "session".
		cookie bool
	}{
		{"HS256", bearerReq(hs), sdk.Continue, 3 + 3, false},
		{"ES256", bearerReq(es), sdk.Continue, 3 + 3, false},
		{"no credentials", get("/orders"), sdk.Answer, 3 + 1 + 5, false}, // the method: a preflight?
		{"preflight", preflight("/orders"), sdk.Continue, 3 + 3 + 1, false},
		{"bad signature", bearerReq(hs[:len(hs)-2] + "AA"), sdk.Answer, 3 + 6, false},
		{"expired", bearerReq(sign(t, "HS256", k.hmac, "hs256", claims(map[string]any{"exp": now.Unix() - 1}))), sdk.Answer, 3 + 6, false},
		{"cookie", get("/orders", "Cookie", "theme=dark; session="+hs+", lang=en; flag", "Origin", "https://app.example"), sdk.Continue, 3 + 2 + 4, true}, // Cookie and Origin; Cookie deleted and added
		{"two cookies", get("/orders", "Cookie", "session="+hs+"; session ="+es), sdk.Continue, 3 + 2 + 3, true},
		{"cookie in a value", get("/orders", "Cookie", "a=John Smith; session="+hs+"; b=1 session="+es), sdk.Continue, 3 + 2 + 4, true}, // the first checked, both cut: nothing added
	} {
		t.Run(c.name, func(t *testing.T) {
			call := new(host.Call)
			ch := &abi.CountingHost{Host: call}
			prev := hostcall.SetHost(ch)
			defer hostcall.SetHost(prev)
			x := &bodyExchange{MemExchange: &host.MemExchange{}}
			request := func() {
				x.Reset()
				fields := x.Req.Header.Fields
				x.Req = c.req
				// The plugin strips the credential: give it a copy to strip.
				x.Req.Header.Fields = append(fields, c.req.Header.Fields...)
				ch.Calls = [len(ch.Calls)]int{}
				call.Reset(h.Env, abi.PhaseRequest, x)
				p := a
				if c.cookie {
					p = withCookie
				}
				if act := p.OnRequest(sdk.Request{}, sdk.Response{}); act != c.act {
					t.Fatalf("action %d, want %d: %s (status %d, body %q)", act, c.act, call.ErrorMessage(), x.Resp.Status, x.Resp.Body)
				}
				call.Release()
			}
			request() // warm: buffers, and the host's verified-token cache
			if n := testing.AllocsPerRun(200, request); n != 0 {
				t.Errorf("%v allocations per request, want 0", n)
			}
			if n := ch.Count(); n != c.calls {
				t.Errorf("%d host calls, want %d", n, c.calls)
			}
		})
	}
}
