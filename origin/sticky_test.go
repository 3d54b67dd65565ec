package origin

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
)

// engineIOApp is an application instance as engine.io is to a proxy: a
// handshake (EIO without sid) opens a session in this instance's memory,
// and a request naming a session it did not open gets 400.
type engineIOApp struct {
	name string
	mu   sync.Mutex
	open map[string]bool
	n    int
}

func (a *engineIOApp) serve(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	if !args.Has("EIO") {
		ctx.SetBodyString("not engine.io")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	sid := string(args.Peek("sid"))
	if sid == "" {
		a.n++
		sid = fmt.Sprintf("%s-%d_x", a.name, a.n)
		a.open[sid] = true
		fmt.Fprintf(ctx, `0{"sid":%q,"upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`, sid)
		return
	}
	if !a.open[sid] {
		ctx.SetStatusCode(400)
		ctx.SetBodyString(`{"code":1,"message":"Session ID unknown"}`)
		return
	}
	ctx.SetBodyString("ok " + a.name)
}

func startEngineIO(t *testing.T, name string) (*engineIOApp, *testUpstream) {
	a := &engineIOApp{name: name, open: map[string]bool{}}
	return a, startUpstream(t, a.serve)
}

func engineIOReq(method, query string) *wire.Request {
	req := getReq("/socket.io/")
	req.Method = wire.Bytes(method)
	req.Query = wire.Bytes(query)
	if method == "POST" {
		req.Body = wire.Bytes("4hello")
	}
	return req
}

// handshake opens a session through p and returns its ID.
func handshake(t *testing.T, p *Proxy) string {
	t.Helper()
	resp := serve(p, engineIOReq("GET", "EIO=4&transport=polling&t=x"), 5*time.Second)
	sid, err := openSessionID(resp.Body)
	if resp.Status != 200 || err != nil {
		t.Fatalf("handshake: %d %q: %v", resp.Status, resp.Body, err)
	}
	return sid
}

// TestProxyStickySessions: with two instances of an engine.io application
// behind the proxy, every request of a session reaches the instance that
// opened it, whatever the balancing would have chosen; when that instance
// dies, its sessions fail over (the other answers 400, as engine.io does,
// and the client's new session sticks to the live one).
func TestProxyStickySessions(t *testing.T) {
	a, ua := startEngineIO(t, "a")
	_, ub := startEngineIO(t, "b")
	p := newProxy(t, ProxyConfig{Upstreams: []string{ua.url, ub.url}, HealthInterval: -1})

	var sids []string
	for range 8 {
		sids = append(sids, handshake(t, p))
	}
	on := map[string]int{}
	for _, sid := range sids {
		on[sid[:1]]++
	}
	if on["a"] == 0 || on["b"] == 0 {
		t.Fatalf("sessions opened on %v: the balancer should spread handshakes over both", on)
	}
	for round := range 5 {
		for _, sid := range sids {
			for _, method := range []string{"GET", "POST"} {
				resp := serve(p, engineIOReq(method, "EIO=4&transport=polling&t=y&sid="+sid), 5*time.Second)
				if want := "ok " + sid[:1]; resp.Status != 200 || string(resp.Body) != want {
					t.Fatalf("round %d, %s of session %s: %d %q, want %q", round, method, sid, resp.Status, resp.Body, want)
				}
			}
		}
	}

	// a dies: its sessions go to b, which does not know them.
	ua.close()
	var lost string
	for _, sid := range sids {
		if sid[0] == 'a' {
			lost = sid
		}
	}
	if resp := serve(p, engineIOReq("GET", "EIO=4&transport=polling&sid="+lost), 5*time.Second); resp.Status != 400 {
		t.Fatalf("a session of the dead instance: %d %q, want b's 400", resp.Status, resp.Body)
	}
	// The client opens a new session, which sticks to b.
	sid := handshake(t, p)
	if sid[0] != 'b' {
		t.Fatalf("new session %s, want one of b", sid)
	}
	for i := range 4 {
		if resp := serve(p, engineIOReq("GET", "EIO=4&transport=polling&sid="+sid), 5*time.Second); resp.Status != 200 {
			t.Fatalf("request %d of the new session: %d %q", i, resp.Status, resp.Body)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n != on["a"] {
		t.Errorf("a opened %d sessions, want %d", a.n, on["a"])
	}
}

// TestSessionsForget: a session is kept at least sessionIdle after its
// last request, forgotten within twice that, and a full period makes room
// by dropping the one before.
func TestSessionsForget(t *testing.T) {
	var s sessions
	t0 := time.Unix(1_000_000, 0)
	s.learn("s1", 1, t0)
	s.learn("s2", 2, t0)
	if got := s.lookup([]byte("s1"), t0.Add(sessionIdle+time.Second)); got != 1 {
		t.Fatalf("s1 after a period: %d", got)
	}
	// s1 was used in the second period, s2 was not.
	at := t0.Add(2*sessionIdle + 2*time.Second)
	if got := s.lookup([]byte("s2"), at); got != -1 {
		t.Errorf("s2, idle for two periods: %d, want forgotten", got)
	}
	if got := s.lookup([]byte("s1"), at); got != 1 {
		t.Errorf("s1, used a period ago: %d", got)
	}
	if got := s.lookup([]byte("s1"), at.Add(3*sessionIdle)); got != -1 {
		t.Errorf("s1 after a long silence: %d, want forgotten", got)
	}

	for i := range maxSessions + 1 {
		s.learn(fmt.Sprint(i), 0, at)
	}
	if len(s.cur) > maxSessions || len(s.old)+len(s.cur) != maxSessions+1 {
		t.Errorf("after %d sessions: %d current, %d old", maxSessions+1, len(s.cur), len(s.old))
	}
	if got := s.lookup([]byte("0"), at); got != 0 {
		t.Errorf("the first session of a full period: %d, want still known", got)
	}
}

func TestEngineIOQuery(t *testing.T) {
	for _, c := range []struct {
		query, sid string
		ok         bool
	}{
		{"EIO=4&transport=polling&t=PXc", "", true},
		{"EIO=4&transport=polling&t=PXc&sid=Ab-9_x", "Ab-9_x", true},
		{"sid=Ab&EIO=3", "Ab", true},
		{"transport=polling&sid=Ab", "Ab", false},
		{"EIO=4&sid=a%2Fb", "", true},
		{"EIO=4&sid=" + strings.Repeat("a", maxSessionID+1), "", true},
		{"", "", false},
	} {
		sid, ok := engineIO([]byte(c.query))
		if string(sid) != c.sid || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.query, sid, ok, c.sid, c.ok)
		}
	}
}

func TestOpenSessionID(t *testing.T) {
	for _, c := range []struct{ body, sid, err string }{
		{`0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000}`, "lv_VI97HAXpY6yYWAAAC", ""},
		{"0{\"sid\":\"s1\"}\x1e40", "s1", ""},
		{`23:0{"sid":"s1","x":12345}2:40`, "s1", ""},
		{`40{"sid":"s1"}`, "", "not an open packet"},
		{`0{"sid":12}`, "", "open packet: json"},
		{`0{"sid":"a/b"}`, "", `session ID "a/b" not valid`},
		{`0{"upgrades":[]}`, "", `session ID "" not valid`},
		{`99:0{"sid":"s1"}`, "", "packet of 99 bytes in 13"},
		{``, "", "not an open packet"},
	} {
		sid, err := openSessionID([]byte(c.body))
		if sid != c.sid || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %q %v, want %q %q", c.body, sid, err, c.sid, c.err)
		}
	}
}

// FuzzOpenSessionID: whatever an upstream answers a handshake with, the
// session ID taken from it is a valid one or none.
func FuzzOpenSessionID(f *testing.F) {
	for _, s := range []string{`0{"sid":"abc","pingInterval":25000}`, "0{\"sid\":\"a\"}\x1e4x", `12:0{"sid":"a"}`, `0{`, `9999999:0`, `0{"sid":"\u0041"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sid, err := openSessionID(body)
		if (err == nil) != validSessionID([]byte(sid)) {
			t.Fatalf("%q: %q %v", body, sid, err)
		}
	})
}

// FuzzEngineIOQuery: a sid taken from a query is a valid session ID.
func FuzzEngineIOQuery(f *testing.F) {
	for _, s := range []string{"EIO=4&transport=polling&sid=abc", "sid=&EIO", "&&sid=a=b&EIO=4", "sid=x%20y&EIO=4"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, query []byte) {
		if sid, _ := engineIO(query); len(sid) > 0 && !validSessionID(sid) {
			t.Fatalf("%q: sid %q", query, sid)
		}
	})
}

// TestChooseAllocs: choosing an upstream allocates nothing, for a session
// request as for any other.
func TestChooseAllocs(t *testing.T) {
	p := newProxy(t, ProxyConfig{Upstreams: []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}, HealthInterval: -1})
	p.sessions.learn("s1", 1, time.Now())
	plain, session := getReq("/x"), engineIOReq("GET", "EIO=4&transport=polling&sid=s1")
	if u := p.choose(session, 0, 0); u == nil || u.idx != 1 {
		t.Fatalf("the session's upstream: %v", u)
	}
	for _, req := range []*wire.Request{plain, session} {
		if n := testing.AllocsPerRun(100, func() { p.choose(req, 0, 0) }); n != 0 {
			t.Errorf("%s?%s: %v allocations", req.Path, req.Query, n)
		}
	}
}

// TestProxyHandshakesNotCollapsed: two identical handshakes at once (a
// client that sends no cache-busting t parameter) each open a session of
// their own; collapsed, they would share one.
func TestProxyHandshakesNotCollapsed(t *testing.T) {
	var arrived atomic.Int32
	both := make(chan struct{})
	up := startUpstream(t, func(ctx *fasthttp.RequestCtx) {
		n := arrived.Add(1)
		if n == 2 {
			close(both)
		}
		// Answer once both are here, or, when only one came, at a bound.
		select {
		case <-both:
		case <-time.After(5 * time.Second):
		}
		fmt.Fprintf(ctx, `0{"sid":"s%d"}`, n)
	})
	p := newProxy(t, ProxyConfig{Upstreams: []string{up.url}, HealthInterval: -1})
	sids := make(chan string, 2)
	for range 2 {
		go func() {
			resp := serve(p, engineIOReq("GET", "EIO=4&transport=polling"), 10*time.Second)
			sids <- string(resp.Body)
		}()
	}
	if a, b := <-sids, <-sids; a == b {
		t.Fatalf("both handshakes got %q", a)
	}
}
