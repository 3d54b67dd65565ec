package edge_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/wasm/wasmbuild"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// misbehave is the test guest that fails on request, built to a .wasm file.
func misbehave(t *testing.T) string {
	return wasmtest.BuildFile(t, "../wasm/internal/testguests/misbehave")
}

// TestNoSecretInLogs plants distinctive credentials in Authorization,
// Cookie, the API-key header and the query of requests that go every way a
// request can through a real edge, origin service and application: admitted
// by a bearer token or an API key, refused by auth, counted by a shadow
// rate-limit policy keyed on each credential header, rate limited, failed
// by a plugin, failed by the application (500, a dropped connection, a
// timeout), sent to an origin that is down, and malformed in the ways
// fasthttp and the edge refuse. Every logger (the edge node's, which
// plugins and fasthttp log through, and the origin service's and its
// proxy's, which its fasthttp logs through) writes to buffers at debug
// level; no planted value may appear in them, nor in either /metrics.
func TestNoSecretInLogs(t *testing.T) {
	const (
		apiKey   = "PLANTEDAPIKEY0001"
		badKey   = "PLANTEDAPIKEY0002"
		cookie   = "PLANTEDCOOKIE0003"
		query    = "PLANTEDQUERY0004"
		badToken = "PLANTEDBEARER0005"
		subject  = "PLANTEDSUBJECT0006"
	)
	goodToken := jwstest.UserToken(jwtSecret, subject)
	planted := []string{"PLANTED", goodToken, goodToken[strings.LastIndexByte(goodToken, '.')+1:]}

	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The application: echoes nothing secret itself, and fails on demand.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "/reset":
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		case "/slow":
			<-r.Context().Done()
		default:
			io.WriteString(w, "ok\n")
		}
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })

	originReg := prometheus.NewRegistry()
	om := origin.NewMetrics(originReg)
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()},
		HealthInterval: -1, Metrics: om, Logger: logger.With("side", "proxy")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: proxy, Metrics: om, Logger: logger.With("side", "origin")}, nil)
	down, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close()

	p := plugins(t)
	sum := sha256.Sum256([]byte(apiKey))
	shadow := func(name, key string) string {
		return fmt.Sprintf(`{name: %s, key: %q, limit: 1, period: 1h, burst: 1, shadow: true, missing: skip}`, name, key)
	}
	cfg := fmt.Sprintf(`
limits: {max_header_bytes: 4096}
origins:
  app: {addr: %q, key: %q, timeout: 2s}
  down: {addr: %q, key: %q}
routes:
  - name: main
    path: /
    origin: app
    chain:
      - {file: %q, config: {policies: [%s, %s, %s, %s, {name: perip, key: ip, limit: 1000, period: 1h, burst: 1000}]}}
      - {file: %q, config: {strip_credentials: false, jwks: {keys: [{kty: oct, alg: HS256, k: %q}]},
          api_keys: [{name: ci, sha256: %q}]}}
  - name: misbehaving
    path: /mis/
    origin: app
    chain:
      - {file: %q, failure: open}
  - name: down
    path: /down/
    origin: down
`, o.Addr, origintest.Key.Text(), downAddr, origintest.Key.Text(),
		p["ratelimit"], shadow("by_key", "header:X-Api-Key"), shadow("by_authz", "header:Authorization"),
		shadow("by_cookie", "header:Cookie"), shadow("by_user", "value:identity-sub"),
		p["auth"], base64.RawURLEncoding.EncodeToString(jwtSecret), hex.EncodeToString(sum[:]), misbehave(t))
	c, err := edge.ParseConfig([]byte(cfg), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	node, err := edge.New(context.Background(), c, edge.Options{Logger: logger.With("side", "edge"), CompilationCache: wasmbuild.CompilationCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	eln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go node.Serve(eln)
	t.Cleanup(func() { node.Shutdown(context.Background()) })
	admin := httptest.NewServer(node.AdminHandler(nil))
	t.Cleanup(admin.Close)
	addr := eln.Addr().String()

	creds := "Cookie: session=" + cookie + "\r\n"
	statuses := map[string]int{}
	send := func(name, path string, header string) {
		t.Helper()
		req := "GET " + path + "?token=" + query + " HTTP/1.1\r\nHost: x\r\n" + header + creds + "Connection: close\r\n\r\n"
		resp, _, _, _ := exchange(t, addr, req, time.Second)
		statuses[name] = resp.StatusCode
	}
	bearer := "Authorization: Bearer " + goodToken + "\r\n"
	// Three of each: the shadow policies refuse from the second on.
	for i := range 3 {
		send(fmt.Sprint("token ", i), "/ok", bearer)
		send(fmt.Sprint("api key ", i), "/ok", "X-Api-Key: "+apiKey+"\r\n")
		send(fmt.Sprint("bad token ", i), "/ok", "Authorization: Bearer "+badToken+"\r\n")
		send(fmt.Sprint("bad key ", i), "/ok", "X-Api-Key: "+badKey+"\r\n")
		send(fmt.Sprint("two credentials ", i), "/ok", bearer+"X-Api-Key: "+apiKey+"\r\n")
		send(fmt.Sprint("basic ", i), "/ok", "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("u:"+badToken))+"\r\n")
	}
	for _, path := range []string{"/fail", "/reset", "/slow", "/down/x"} {
		send(path, path, bearer)
	}
	for _, mode := range []string{"fail", "panic", "trap"} {
		for _, phase := range []string{"request", "response"} {
			send("plugin "+phase+":"+mode, "/mis/x", "X-Misbehave: "+phase+":"+mode+"\r\n"+bearer+"X-Api-Key: "+apiKey+"\r\n")
		}
	}
	// Refused before or by fasthttp: the values are in what it could not parse.
	for name, req := range map[string]string{
		"control in Authorization": "GET /ok HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + badToken + "\x01\r\n\r\n",
		"control in Cookie":        "GET /ok HTTP/1.1\r\nHost: x\r\nCookie: s=" + cookie + "\x01\r\n\r\n",
		"NUL in the API key":       "GET /ok HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + apiKey + "\x00\r\n\r\n",
		"space in a name":          "GET /ok HTTP/1.1\r\nHost: x\r\nX-Api Key: " + apiKey + "\r\n\r\n",
		"bare LF":                  "GET /ok?token=" + query + " HTTP/1.1\nHost: x\nAuthorization: Bearer " + badToken + "\n",
		"oversized":                "GET /ok?token=" + query + " HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + strings.Repeat("c", 5000) + "\r\n\r\n",
		"bad request line":         "GET /ok?token=" + query + " HTTP/1.1 x\r\nHost: x\r\nCookie: " + cookie + "\r\n\r\n",
		"no Host":                  "GET /ok?token=" + query + " HTTP/1.1\r\nAuthorization: Bearer " + badToken + "\r\n\r\n",
		"bad Content-Length":       "POST /ok HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + "\r\nContent-Length: -1\r\n\r\n",
		"bad chunk":                "POST /ok HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + apiKey + "\r\n",
		"backslash":                "GET /a\\b?token=" + query + " HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + "\r\n\r\n",
	} {
		resp, _, _, _ := exchange(t, addr, req, time.Second)
		statuses[name] = resp.StatusCode
	}
	t.Logf("statuses: %v", statuses)
	// The requests took the paths meant for them.
	for name, want := range map[string]int{"token 0": 200, "api key 0": 200, "bad token 0": 401, "bad key 0": 401,
		"two credentials 0": 400, "/fail": 500, "/reset": 502, "/slow": 504, "/down/x": 502,
		"plugin request:fail": 200, "plugin response:trap": 204, "control in Authorization": 400, "bare LF": 400, "oversized": 431} {
		if statuses[name] != want {
			t.Errorf("%s: %d, want %d", name, statuses[name], want)
		}
	}

	resp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	edgeMetrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(originReg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := logs.String()
	for _, want := range []string{"shadow policy would refuse", "plugin failed", "origin failed", "key_kind=header"} {
		if !strings.Contains(out, want) {
			t.Errorf("the logs lack %q: the test did not reach that path", want)
		}
	}
	for what, text := range map[string]string{"logs": out, "edge /metrics": string(edgeMetrics), "origin /metrics": rec.Body.String()} {
		for _, s := range planted {
			if i := strings.Index(text, s); i >= 0 {
				start := strings.LastIndexByte(text[:i], '\n') + 1
				end := strings.IndexByte(text[i:], '\n')
				if end < 0 {
					end = len(text) - i
				}
				t.Errorf("%s hold a planted credential:\n%s", what, text[start:i+end])
			}
		}
	}
}
