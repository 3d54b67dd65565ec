package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// accessLine is one line of the access log as a reader decodes it.
type accessLine struct {
	Time       time.Time `json:"time"`
	ID         string    `json:"id"`
	TraceID    string    `json:"trace_id"`
	Client     string    `json:"client"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Query      bool      `json:"query"`
	Status     int       `json:"status"`
	Bytes      *int      `json:"bytes"`
	DurationUS *int64    `json:"duration_us"`
	Route      string    `json:"route"`
	Phases     *struct {
		Request, Origin, Response, Write *int64
	} `json:"phases_us"`
	Plugins []struct {
		Plugin     string `json:"plugin"`
		RequestUS  *int64 `json:"request_us"`
		ResponseUS *int64 `json:"response_us"`
		Failed     bool   `json:"failed"`
	} `json:"plugins"`
	Answered    *bool  `json:"answered"`
	Failed      bool   `json:"failed"`
	Shed        bool   `json:"shed"`
	CacheStatus string `json:"cache_status"`
	UserAgent   string `json:"user_agent"`
	Referer     string `json:"referer"`
}

// readAccessLog decodes every line of the log at path; each must be one
// JSON object with no field the reader does not know.
func readAccessLog(t *testing.T, path string) []accessLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []accessLine
	for l := range bytes.Lines(b) {
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		var a accessLine
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, a)
	}
	return lines
}

// waitAccessLog waits until the log at path has n lines and returns them.
func waitAccessLog(t *testing.T, path string, n int) []accessLine {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d lines in the access log", n), func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Count(b, []byte{'\n'}) >= n
	})
	return readAccessLog(t, path)
}

// rawExchange sends req, as written, on a new connection to addr and
// reads the response; local is the client's address.
func rawExchange(t *testing.T, addr, req string) (resp *http.Response, body, local string) {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang guard
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b), c.LocalAddr().String()
}

// seen is what the application behind a test node got: each request's
// envelope ID and traceparent, by path.
type seen struct {
	mu      sync.Mutex
	id, tp  map[string]string
	setCook string
}

func (s *seen) get(path string) (id, tp string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id[path], s.tp[path]
}

// accessLogStack starts the full chain (auth by HS256 token, ratelimit by
// subject, cache) on host full, with served_header on and the access log
// block given, in front of an application that answers every path with a
// cacheable body, and the Set-Cookie setCookie if not "".
func accessLogStack(t *testing.T, accessLog, setCookie string) (*edgetest.Node, *seen) {
	t.Helper()
	s := &seen{id: map[string]string{}, tp: map[string]string{}}
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		tp, _ := wire.Get(req.Header, "traceparent")
		s.mu.Lock()
		s.id[string(req.Path)], s.tp[string(req.Path)] = string(req.ID), string(tp)
		s.mu.Unlock()
		resp.Status = 200
		resp.AddHeader([]byte("Cache-Control"), []byte("public, max-age=3600"))
		if setCookie != "" {
			resp.AddHeader([]byte("Set-Cookie"), []byte(setCookie))
		}
		resp.Body = append(resp.Body, "hello from "...)
		resp.Body = append(resp.Body, req.Path...)
	})).Addr
	p := plugins(t)
	n := edgetest.Start(t, fmt.Sprintf(`
served_header: true
access_log: %s
origins:
  app: {addr: %q, key: %q}
routes:
  - name: full
    host: full
    origin: app
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}
      - {file: %q, config: {policies: [{name: per_user, key: "value:identity-sub", limit: 1000000, period: 1s}]}}
      - {file: %q}
`, accessLog, addr, origintest.Key.Text(), p["auth"], base64.RawURLEncoding.EncodeToString(jwtSecret), p["ratelimit"], p["cache"]))
	return n, s
}

// TestAccessLog: a miss and a hit through the full chain each make one
// line whose fields are what the client and the application saw: the
// envelope's ID the application got, the trace id of the traceparent it
// got, the client's address, what was asked (the path without its query),
// the status, body length and Cache-Status the client got, the versions
// that ran as Wedge-Served names them with their times, and whether one
// answered.
func TestAccessLog(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	n, app := accessLogStack(t, fmt.Sprintf("{path: %q}", logFile), "")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := "GET /fresh?x=1 HTTP/1.1\r\nHost: full\r\nUser-Agent: al-test/1.0\r\n" +
		"Referer: https://ref.example/page?utm=1\r\n" +
		"Traceparent: 00-" + traceID + "-00f067aa0ba902b7-01\r\n" +
		"Authorization: Bearer " + jwstest.UserToken(jwtSecret, "ada") + "\r\n\r\n"

	type sent struct {
		resp         *http.Response
		body, client string
	}
	var got []sent
	for range 2 { // the miss, then the hit
		resp, body, local := rawExchange(t, n.Addr, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got = append(got, sent{resp, body, local})
	}
	lines := waitAccessLog(t, logFile, 2)
	if len(lines) != 2 {
		t.Fatalf("%d lines for 2 requests", len(lines))
	}
	id, tp := app.get("/fresh")
	if id == "" || tp == "" {
		t.Fatalf("the application got ID %q and traceparent %q", id, tp)
	}
	for i, l := range lines {
		c := got[i]
		if i == 0 && l.ID != id {
			t.Errorf("miss: id %q, the application got %q", l.ID, id)
		}
		if l.ID == "" || i == 1 && l.ID == lines[0].ID {
			t.Errorf("line %d: id %q, want one of its own", i, l.ID)
		}
		if l.TraceID != traceID || !strings.HasPrefix(tp, "00-"+traceID) {
			t.Errorf("line %d: trace_id %q; sent %s, the application got %q", i, l.TraceID, traceID, tp)
		}
		if time.Since(l.Time) > time.Hour || time.Since(l.Time) < 0 {
			t.Errorf("line %d: time %v", i, l.Time)
		}
		if l.Client != c.client || l.Method != "GET" || l.Host != "full" || l.Path != "/fresh" || !l.Query || l.Route != "full" {
			t.Errorf("line %d: client %q method %q host %q path %q query %t route %q; want %s GET full /fresh true full",
				i, l.Client, l.Method, l.Host, l.Path, l.Query, l.Route, c.client)
		}
		if l.Status != c.resp.StatusCode || l.Bytes == nil || *l.Bytes != len(c.body) {
			t.Errorf("line %d: status %d bytes %v; the client got %d and %d bytes", i, l.Status, l.Bytes, c.resp.StatusCode, len(c.body))
		}
		if cs := c.resp.Header.Get("Cache-Status"); l.CacheStatus != cs || cs == "" {
			t.Errorf("line %d: cache_status %q, the client got %q", i, l.CacheStatus, cs)
		}
		if l.UserAgent != "al-test/1.0" || l.Referer != "https://ref.example/page" {
			t.Errorf("line %d: user_agent %q referer %q", i, l.UserAgent, l.Referer)
		}
		var ran []string
		for _, p := range l.Plugins {
			ran = append(ran, p.Plugin)
			if p.RequestUS == nil || p.ResponseUS == nil || p.Failed {
				t.Errorf("line %d: plugin %+v", i, p)
			}
		}
		if served := c.resp.Header.Get(edge.ServedHeader); strings.Join(ran, ", ") != served || len(ran) != 3 {
			t.Errorf("line %d: plugins %q, %s %q", i, ran, edge.ServedHeader, served)
		}
		if l.DurationUS == nil || l.Phases == nil || l.Phases.Request == nil || l.Phases.Origin == nil || l.Phases.Response == nil || l.Phases.Write == nil {
			t.Fatalf("line %d: duration or a phase missing: %+v", i, l)
		}
		if sum := *l.Phases.Request + *l.Phases.Origin + *l.Phases.Response + *l.Phases.Write; sum > *l.DurationUS {
			t.Errorf("line %d: phases add up to %d µs, more than the whole, %d", i, sum, *l.DurationUS)
		}
		if l.Failed || l.Shed {
			t.Errorf("line %d: failed %t shed %t", i, l.Failed, l.Shed)
		}
	}
	// The miss went to the origin; the cache answered the hit.
	if *lines[0].Answered || *lines[0].Phases.Origin <= 0 || !strings.Contains(lines[0].CacheStatus, "fwd=") {
		t.Errorf("miss: answered %t, origin %d µs, cache_status %q", *lines[0].Answered, *lines[0].Phases.Origin, lines[0].CacheStatus)
	}
	if !*lines[1].Answered || *lines[1].Phases.Origin != 0 || !strings.Contains(lines[1].CacheStatus, "hit") {
		t.Errorf("hit: answered %t, origin %d µs, cache_status %q", *lines[1].Answered, *lines[1].Phases.Origin, lines[1].CacheStatus)
	}
}

// TestAccessLogNoCredentials is the planted-secret test: a secret in
// every place a client or the application puts credentials (a valid
// bearer token, a cookie, a query parameter, an API-key header,
// Proxy-Authorization, userinfo in an absolute-form target, in a
// CONNECT's authority-form target, in a path beginning "//" and in the
// Referer, absolute or scheme-relative, the Referer's query and fragment,
// a Set-Cookie the application answers with, a refused token) appears
// nowhere in the access log, while each request's line is otherwise
// complete.
func TestAccessLogNoCredentials(t *testing.T) {
	const secret = "PLANTEDSECRET7f3a"
	logFile := filepath.Join(t.TempDir(), "access.log")
	n, app := accessLogStack(t, fmt.Sprintf("{path: %q}", logFile), "session="+secret+"-setcookie; HttpOnly")
	token := jwstest.UserToken(jwtSecret, secret+"-subject")
	planted := []string{secret, token, token[strings.LastIndexByte(token, '.')+1:]}

	reqs := []struct {
		req    string
		status int
	}{
		{"GET http://full/admitted?access_token=" + secret + "-query&" + secret + "-name HTTP/1.1\r\n" +
			"Host: full\r\n" +
			"Authorization: Bearer " + token + "\r\n" +
			"Cookie: session=" + secret + "-cookie\r\n" +
			"X-Api-Key: " + secret + "-apikey\r\n" +
			"Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+secret)) + "\r\n" +
			"User-Agent: al-test\r\n" +
			"Referer: https://u:" + secret + "-refuser@ref.example/p?token=" + secret + "-refquery#" + secret + "\r\n\r\n", 200},
		{"GET /refused?access_token=" + secret + " HTTP/1.1\r\nHost: full\r\n" +
			"Referer: //u:" + secret + "-schemerel@ref.example/q\r\n" +
			"Authorization: Bearer " + secret + "-bad.token.here\r\n\r\n", 401},
		{"CONNECT user:" + secret + "-connect@h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n", 400},
		{"GET //user:" + secret + "-slashes@h.example/p HTTP/1.1\r\nHost: full\r\n\r\n", 400},
		{"GET http://user:" + secret + "-userinfo@full/p HTTP/1.1\r\nHost: full\r\n\r\n", 400},
	}
	for _, r := range reqs {
		if resp, body, _ := rawExchange(t, n.Addr, r.req); resp.StatusCode != r.status {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, r.status, body)
		}
	}
	lines := waitAccessLog(t, logFile, len(reqs))
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range planted {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the access log holds planted %q:\n%s", s, raw)
		}
	}
	if id, _ := app.get("/admitted"); id == "" {
		t.Fatal("the admitted request did not reach the application")
	}
	admitted, refused := lines[0], lines[1]
	if id, _ := app.get("/admitted"); admitted.ID != id || admitted.Host != "full" || admitted.Path != "/admitted" || !admitted.Query ||
		admitted.Status != 200 || len(admitted.Plugins) != 3 || admitted.UserAgent != "al-test" || admitted.Referer != "https://ref.example/p" {
		t.Errorf("admitted: %+v", admitted)
	}
	if refused.Status != 401 || refused.Path != "/refused" || !refused.Query || len(refused.Plugins) != 1 || !*refused.Answered ||
		refused.Referer != "//ref.example/q" {
		t.Errorf("refused: %+v", refused)
	}
	// Not an origin-form path: logged without one.
	for i, method := range []string{"CONNECT", "GET"} {
		if l := lines[2+i]; l.Method != method || l.Status != 400 || l.Path != "" {
			t.Errorf("%s with userinfo in the target: %+v", method, l)
		}
	}
	if l := lines[4]; l.Status != 400 {
		t.Errorf("an absolute-form target with userinfo: %+v", l)
	}
}

// heldNode starts a node with the access_log members given besides path
// (logging to the file it returns) and a concurrency limit of one, in
// front of an application that answers each request with status once
// shed (which it returns) is called. shed sends /held, which the
// application holds, and meanwhile /shed, which the limit turns away,
// then lets /held be answered.
func heldNode(t *testing.T, accessLog string, status int) (n *edgetest.Node, logFile string, shed func()) {
	t.Helper()
	reached, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	addr := origintest.Start(t, origin.HandlerFunc(func(ctx context.Context, _ *wire.Request, resp *wire.Response) {
		reached <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		resp.Status = uint64(status)
	})).Addr
	logFile = filepath.Join(t.TempDir(), "access.log")
	n = edgetest.Start(t, fmt.Sprintf(`
access_log: {path: %q, %s}
overload: {min_limit: 1, initial_limit: 1, max_limit: 1}
origins:
  app: {addr: %q, key: %q}
routes:
  - {host: held, origin: app}
`, logFile, accessLog, addr, origintest.Key.Text()))
	return n, logFile, func() {
		t.Helper()
		held := make(chan error, 1)
		go func() {
			c, err := net.Dial("tcp4", n.Addr)
			if err != nil {
				held <- err
				return
			}
			defer c.Close()
			io.WriteString(c, "GET /held HTTP/1.1\r\nHost: held\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil && resp.StatusCode != status {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			held <- err
		}()
		<-reached
		// While it waits on the origin, the limit of one sheds the next.
		if resp, body, _ := rawExchange(t, n.Addr, "GET /shed HTTP/1.1\r\nHost: held\r\n\r\n"); resp.StatusCode != 503 {
			t.Fatalf("past the limit: %d %s", resp.StatusCode, body)
		}
		free()
		if err := <-held; err != nil {
			t.Fatalf("the held request: %v", err)
		}
	}
}

// TestAccessLogUnrouted: requests answered before a chain runs get their
// line too, with no route: unrouted (404), refused as malformed (400), and
// shed by the concurrency limit (503, marked shed) while the one request
// it admits waits on the origin.
func TestAccessLogUnrouted(t *testing.T) {
	n, logFile, shed := heldNode(t, "sample: 1", 200)
	for req, status := range map[string]int{
		"GET /x HTTP/1.1\r\nHost: elsewhere\r\n\r\n":      404,
		"GET /a/../b HTTP/1.1\r\nHost: held\r\n\r\n":      400,
		"GET /x HTTP/1.1\r\nHost: held\r\nX A: b\r\n\r\n": 400,
		// fasthttp's own refusals (transportError): framing it cannot
		// trust, a header past max_header_bytes.
		"POST /dup HTTP/1.1\r\nHost: held\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab": 400,
		"GET /big HTTP/1.1\r\nHost: held\r\nX-Big: " + strings.Repeat("b", 20000) + "\r\n\r\n": 431,
	} {
		if resp, body, _ := rawExchange(t, n.Addr, req); resp.StatusCode != status {
			t.Fatalf("%q: %d %s, want %d", req, resp.StatusCode, body, status)
		}
	}
	shed()
	lines := waitAccessLog(t, logFile, 7)
	byPath := map[string][]accessLine{}
	for _, l := range lines {
		byPath[l.Path] = append(byPath[l.Path], l)
		if l.Path != "/held" && (l.Route != "" || l.Plugins != nil || l.Phases != nil || l.ID != "") {
			t.Errorf("%s: a line with chain fields for a request that ran none: %+v", l.Path, l)
		}
	}
	if l := byPath["/x"]; len(l) != 2 || l[0].Status+l[1].Status != 404+400 {
		t.Errorf("/x: %+v, want a 404 and a 400", l)
	}
	if l := byPath["/a/../b"]; len(l) != 1 || l[0].Status != 400 || l[0].Host != "held" {
		t.Errorf("/a/../b: %+v", l)
	}
	statuses := map[int]int{}
	for _, l := range lines {
		statuses[l.Status]++
	}
	if statuses[400] != 3 || statuses[431] != 1 {
		t.Errorf("statuses %v: want the two 400s and the 431 fasthttp answered logged too", statuses)
	}
	if l := byPath["/held"]; len(l) != 1 || l[0].Status != 200 || l[0].Route != "held/" || l[0].Shed {
		t.Errorf("/held: %+v", l)
	}
	if l := byPath["/shed"]; len(l) != 1 || l[0].Status != 503 || !l[0].Shed {
		t.Errorf("/shed: %+v, want a 503 marked shed", l)
	}
}

// TestAccessLogShedSampled: a request the limit sheds is logged by the
// sample, not always as a server error is, so that a shedding node does
// not write a line per 503: at sample 0 the shed request gets no line
// (wedge_edge_shed_total counts it), and the 500 after it does.
func TestAccessLogShedSampled(t *testing.T) {
	n, logFile, shed := heldNode(t, "sample: 0", 500)
	shed()
	// Lines go in the order requests are answered: the shed one's would
	// come before the held one's.
	if lines := waitAccessLog(t, logFile, 1); len(lines) != 1 || lines[0].Path != "/held" || lines[0].Status != 500 {
		t.Errorf("lines %+v, want only the held request's 500", lines)
	}
	if got := testutil.MetricSum(t, n.Registry(), "wedge_edge_shed_total", nil); got != 1 {
		t.Errorf("wedge_edge_shed_total %v, want 1", got)
	}
}

// TestAccessLogSample: sample 1 logs every request; 0 only server errors
// and requests on which a plugin failed (a failure closed answers 503,
// one open lets the origin answer 200); 0.5 some, not all.
func TestAccessLogSample(t *testing.T) {
	const n = 100
	for _, tc := range []struct {
		sample         string
		least, most    int // lines for the n requests that succeed
		failuresLogged bool
	}{
		{"1.0", n, n, true},
		{"0", 0, 0, true},
		{"0.5", 1, n - 1, true},
	} {
		t.Run("sample="+tc.sample, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "access.log")
			node := startNode(t, fmt.Sprintf(`
access_log: {path: %q, sample: %s}
origins:
  app: {addr: %q, key: %q}
routes:
  - {name: hello, path: /, origin: app, chain: [{file: %q, config: {greeting: Hi}}]}
  - {name: closed, path: /closed/, origin: app, chain: [{name: misbehave, file: %q}]}
  - {name: open, path: /open/, origin: app, chain: [{name: misbehave, file: %q, failure: open}]}
`, logFile, tc.sample, startOrigin(t, "o"), origintest.Key.Text(), hello(t), misbehave(t), misbehave(t)))
			for range n {
				if st, _, body := node.do(t, "GET", "h", "/hello?name=Ada", nil); st != 200 {
					t.Fatalf("hello: %d %s", st, body)
				}
			}
			if st, _, _ := node.do(t, "GET", "h", "/closed/", nil, "X-Misbehave", "request:panic"); st != 503 {
				t.Fatalf("failure closed: %d", st)
			}
			if st, _, _ := node.do(t, "GET", "h", "/open/", nil, "X-Misbehave", "request:panic"); st != 200 {
				t.Fatalf("failure open: %d", st)
			}
			// Lines are queued in the order the requests were answered:
			// once the last is there, all are.
			var lines []accessLine
			testutil.Eventually(t, 10*time.Second, "the failure open's line", func() bool {
				if _, err := os.Stat(logFile); err != nil {
					return false
				}
				lines = readAccessLog(t, logFile)
				return len(lines) > 0 && lines[len(lines)-1].Path == "/open/"
			})
			hellos := len(lines) - 2
			if hellos < tc.least || hellos > tc.most {
				t.Errorf("%d lines for %d requests that succeeded, want %d to %d", hellos, n, tc.least, tc.most)
			}
			closed, open := lines[len(lines)-2], lines[len(lines)-1]
			if closed.Path != "/closed/" || closed.Status != 503 || !closed.Failed || len(closed.Plugins) != 1 || !closed.Plugins[0].Failed {
				t.Errorf("failure closed: %+v", closed)
			}
			if open.Status != 200 || !open.Failed || !open.Plugins[0].Failed {
				t.Errorf("failure open: %+v", open)
			}
		})
	}
}

// TestAccessLogConfig: a log that cannot be opened fails the node's start
// with an error that says so, and a sample outside 0 to 1 the config; a
// relative path is the config file directory's, "-" standard output.
func TestAccessLogConfig(t *testing.T) {
	addr := startOrigin(t, "o")
	yaml := func(accessLog string) string {
		return fmt.Sprintf(`
access_log: %s
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
`, accessLog, addr, origintest.Key.Text())
	}
	missing := filepath.Join(t.TempDir(), "no-such-dir", "access.log")
	cfg, err := edge.ParseConfig([]byte(yaml(fmt.Sprintf("{path: %q}", missing))), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := edge.New(context.Background(), cfg, edge.Options{})
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatal("a node started with an access log it cannot open")
	}
	if !strings.Contains(err.Error(), "access log") || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q, want it to name the access log and %s", err, missing)
	}
	dir := t.TempDir()
	for path, want := range map[string]string{"-": "-", "access.log": filepath.Join(dir, "access.log"), "/abs.log": "/abs.log"} {
		cfg, err := edge.ParseConfig([]byte(yaml(fmt.Sprintf("{path: %q}", path))), dir)
		if err != nil || cfg.AccessLog.Path != want {
			t.Errorf("path %q: %v, %+v, want %q", path, err, cfg, want)
		}
	}
	for _, s := range []string{"-0.1", "1.5", ".nan"} {
		_, err := edge.ParseConfig([]byte(yaml("{path: -, sample: "+s+"}")), "")
		if err == nil || !strings.Contains(err.Error(), "access_log: sample") {
			t.Errorf("sample %s: error %v", s, err)
		}
	}
}

// TestAccessLogReopen: after the log file is renamed (rotated), a reload
// makes the node write to a new file at the configured path.
func TestAccessLogReopen(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	yaml := fmt.Sprintf(`
access_log: {path: %q}
origins:
  app: {addr: %q, key: %q}
routes:
  - {path: /, origin: app}
`, logFile, startOrigin(t, "o"), origintest.Key.Text())
	n := startNode(t, yaml)
	n.do(t, "GET", "h", "/before", nil)
	waitAccessLog(t, logFile, 1)
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	cfg, err := edge.ParseConfig([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	n.do(t, "GET", "h", "/after", nil)
	if l := waitAccessLog(t, logFile, 1); len(l) != 1 || l[0].Path != "/after" {
		t.Errorf("new file: %+v", l)
	}
	if l := readAccessLog(t, logFile+".1"); len(l) != 1 || l[0].Path != "/before" {
		t.Errorf("rotated file: %+v", l)
	}
}

// TestAccessLogRefusedAtHeader: requests answered from their header
// alone, their body never read, get their line as others do: 413 past
// the route's max_body_bytes with Expect: 100-continue and, with
// stream_threshold, over HTTP/1.0 (which has no Expect); 503 marked shed
// when max_read_bytes is full, with and without Expect. They were
// answered outside serve and wrote none.
func TestAccessLogRefusedAtHeader(t *testing.T) {
	const announce = "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 65536\r\n"
	for _, tc := range []struct {
		name, limits string
		hold         bool // a client holding max_read_bytes first
		reqs         []string
		status       int
	}{
		{"past max_body_bytes", "max_body_bytes: 65536, stream_threshold: 1024}", false, []string{
			"POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
			"POST /api/x HTTP/1.0\r\nHost: api.example.com\r\nContent-Length: 100000\r\n\r\n",
		}, 413},
		{"max_read_bytes full", "max_body_bytes: 65536, max_read_bytes: 65536}", true, []string{
			announce + "Expect: 100-continue\r\n\r\n",
			announce + "\r\n",
		}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "access.log")
			cfg := strings.Replace(config(startOrigin(t, "origin-1"), hello(t), fmt.Sprintf("access_log: {path: %q, sample: 1}\n", logFile)),
				"max_body_bytes: 65536}", tc.limits, 1)
			n := startNode(t, cfg)
			if tc.hold {
				c, err := net.Dial("tcp4", n.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := io.WriteString(c, announce+"\r\n"); err != nil {
					t.Fatal(err)
				}
				waitMetric(t, n, atLeast(65536), "wedge_edge_read_bytes")
			}
			for _, req := range tc.reqs {
				if resp, body, _, _ := exchange(t, n.Addr, req, 5*time.Second); resp.StatusCode != tc.status {
					t.Fatalf("%q: %d %q, want %d", req, resp.StatusCode, body, tc.status)
				}
			}
			lines := waitAccessLog(t, logFile, len(tc.reqs))
			if len(lines) != len(tc.reqs) {
				t.Fatalf("%d lines, want %d: %+v", len(lines), len(tc.reqs), lines)
			}
			for _, l := range lines {
				if l.Status != tc.status || l.Path != "/api/x" || l.Method != "POST" || l.Shed != (tc.status == 503) {
					t.Errorf("line %+v: want POST /api/x %d, shed %t", l, tc.status, tc.status == 503)
				}
			}
		})
	}
}

// TestAccessLogWebSocket: a WebSocket handshake the origin accepted is
// logged with the 101 the client got (the metrics' 1xx), not the 200 of
// a response fasthttp never wrote (the tunnel writes its own).
func TestAccessLogWebSocket(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	n, _, _ := startWSConfig(t, "", "", fmt.Sprintf("access_log: {path: %q, sample: 1}\n", logFile))
	c := dial(t, n)
	c.Close(websocket.StatusNormalClosure, "")
	if l := waitAccessLog(t, logFile, 1); l[0].Path != "/ws" || l[0].Status != 101 {
		t.Errorf("handshake logged as %+v, want /ws with status 101", l[0])
	}
}

// TestAccessLogHTTP2Refused: a request the HTTP/2 front door refuses
// before serve (a body over max_body_bytes) gets its access-log line, as
// one over HTTP/1.1 does.
func TestAccessLogHTTP2Refused(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	s := startTLSStack(t, "", fmt.Sprintf("access_log: {path: %q, sample: 1}\n", logFile))
	h2 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	if resp, _ := fetch(t, h2, "POST", "https://"+s.addr+"/up", bytes.Repeat([]byte("x"), 65537)); resp.StatusCode != 413 || resp.ProtoMajor != 2 {
		t.Fatalf("a body over max_body_bytes: %s %d, want HTTP/2 413", resp.Proto, resp.StatusCode)
	}
	if l := waitAccessLog(t, logFile, 1); l[0].Path != "/up" || l[0].Status != 413 || l[0].Method != "POST" {
		t.Errorf("logged %+v, want POST /up 413", l[0])
	}
}
