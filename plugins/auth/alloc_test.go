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

// countingHost counts the host calls a request makes: every function a
// request phase may call passes through it to the real host.
type countingHost struct {
	*host.Call
	n int
}

func (c *countingHost) FieldGet(f int32, buf []byte) int32 { c.n++; return c.Call.FieldGet(f, buf) }
func (c *countingHost) FieldSet(f int32, v []byte) int32   { c.n++; return c.Call.FieldSet(f, v) }
func (c *countingHost) StatusGet() int32                   { c.n++; return c.Call.StatusGet() }
func (c *countingHost) StatusSet(code int32) int32         { c.n++; return c.Call.StatusSet(code) }
func (c *countingHost) HeaderGet(m int32, name, buf []byte) int32 {
	c.n++
	return c.Call.HeaderGet(m, name, buf)
}
func (c *countingHost) HeaderValues(m int32, name, buf []byte) int32 {
	c.n++
	return c.Call.HeaderValues(m, name, buf)
}
func (c *countingHost) HeaderNames(m int32, buf []byte) int32 {
	c.n++
	return c.Call.HeaderNames(m, buf)
}
func (c *countingHost) HeaderSet(m int32, name, v []byte) int32 {
	c.n++
	return c.Call.HeaderSet(m, name, v)
}
func (c *countingHost) HeaderAdd(m int32, name, v []byte) int32 {
	c.n++
	return c.Call.HeaderAdd(m, name, v)
}
func (c *countingHost) HeaderRemove(m int32, name []byte) int32 {
	c.n++
	return c.Call.HeaderRemove(m, name)
}
func (c *countingHost) BodyRead(m, off int32, buf []byte) int32 {
	c.n++
	return c.Call.BodyRead(m, off, buf)
}
func (c *countingHost) BodySet(m int32, b []byte) int32     { c.n++; return c.Call.BodySet(m, b) }
func (c *countingHost) ValueGet(k, buf []byte) int32        { c.n++; return c.Call.ValueGet(k, buf) }
func (c *countingHost) ValueSet(k, v []byte, f int32) int32 { c.n++; return c.Call.ValueSet(k, v, f) }
func (c *countingHost) Verify(k int32, msg, sig []byte) int32 {
	c.n++
	return c.Call.Verify(k, msg, sig)
}
func (c *countingHost) Digest(alg int32, msg, buf []byte) int32 {
	c.n++
	return c.Call.Digest(alg, msg, buf)
}
func (c *countingHost) TokenVerify(p int32, tok, buf []byte) int32 {
	c.n++
	return c.Call.TokenVerify(p, tok, buf)
}
func (c *countingHost) TimeNow() int64              { c.n++; return c.Call.TimeNow() }
func (c *countingHost) RandomFill(buf []byte) int32 { c.n++; return c.Call.RandomFill(buf) }
func (c *countingHost) MetricRecord(m int32, v float64) int32 {
	c.n++
	return c.Call.MetricRecord(m, v)
}
func (c *countingHost) Log(l int32, msg, attrs []byte) int32 {
	c.n++
	return c.Call.Log(l, msg, attrs)
}
func (c *countingHost) ErrorSet(msg []byte) int32 { c.n++; return c.Call.ErrorSet(msg) }

// bodyExchange keeps the body it is given in a buffer it reuses, as the
// edge's fasthttp exchange does (MemExchange copies each body afresh,
// since it may hold a cached one).
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
// headers, counts, and sends an answer built at configure time.
func TestRequestPathCost(t *testing.T) {
	k := mustKeys(t)
	a := &auth{}
	h := sdktest.New(t, a, baseConfig(t, nil))
	h.Env.Now = func() time.Time { return now }
	hs := sign(t, "HS256", k.hmac, "hs256", claims(map[string]any{"scope": "orders:read"}))
	es := sign(t, "ES256", k.p256, "es256", claims(nil))
	for _, c := range []struct {
		name  string
		req   host.Request
		act   sdk.Action
		calls int // path, two credential headers, then the decision's
	}{
		{"HS256", bearerReq(hs), sdk.Continue, 3 + 3},
		{"ES256", bearerReq(es), sdk.Continue, 3 + 3},
		{"no credentials", get("/orders"), sdk.Answer, 3 + 5},
		{"bad signature", bearerReq(hs[:len(hs)-2] + "AA"), sdk.Answer, 3 + 6},
		{"expired", bearerReq(sign(t, "HS256", k.hmac, "hs256", claims(map[string]any{"exp": now.Unix() - 1}))), sdk.Answer, 3 + 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := &countingHost{Call: new(host.Call)}
			prev := hostcall.SetHost(ch)
			defer hostcall.SetHost(prev)
			x := &bodyExchange{MemExchange: &host.MemExchange{}}
			request := func() {
				x.Reset()
				fields := x.Req.Header.Fields
				x.Req = c.req
				// The plugin strips the credential: give it a copy to strip.
				x.Req.Header.Fields = append(fields, c.req.Header.Fields...)
				ch.n = 0
				ch.Reset(h.Env, abi.PhaseRequest, x)
				if act := a.OnRequest(sdk.Request{}, sdk.Response{}); act != c.act {
					t.Fatalf("action %d, want %d: %s (status %d, body %q)", act, c.act, ch.ErrorMessage(), x.Resp.Status, x.Resp.Body)
				}
				ch.Release()
			}
			request() // warm: buffers, and the host's verified-token cache
			if n := testing.AllocsPerRun(200, request); n != 0 {
				t.Errorf("%v allocations per request, want 0", n)
			}
			if ch.n != c.calls {
				t.Errorf("%d host calls, want %d", ch.n, c.calls)
			}
		})
	}
}
