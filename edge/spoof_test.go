package edge_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
)

// cgiApp is an application that reads its request fields the way a CGI
// gateway hands them over (RFC 3875 §4.1.18; WSGI, Rack and PHP do the
// same): HTTP_ + the name upper-cased with '-' turned into '_'. It answers
// with every HTTP_* variable as JSON, each with all the values of every
// field that maps to it, so two fields spelt differently but read as one
// variable both show.
func cgiApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := map[string][]string{}
		for name, values := range r.Header {
			v := "HTTP_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			env[v] = append(env[v], values...)
		}
		for _, vs := range env {
			slices.Sort(vs)
		}
		json.NewEncoder(w).Encode(env)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

// TestSpoofedIdentity: a client that sends the verified-identity field in
// a spelling a CGI-style gateway folds into the same variable does not get
// its value to the application, which sees only what the edge set. The
// chain is the real auth plugin; the application sits behind the origin
// service's proxy, over 127.0.0.1.
func TestSpoofedIdentity(t *testing.T) {
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{cgiApp(t)}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	n := startNode(t, fmt.Sprintf(`
origins:
  app: {addr: %q, key: %q}
routes:
  - path: /
    origin: app
    chain:
      - {file: %q, config: {jwks: {keys: [{kty: oct, alg: HS256, k: %q}]}}}
`, origintest.Start(t, proxy).Addr, origintest.Key.Text(), plugins(t)["auth"], base64.RawURLEncoding.EncodeToString(jwtSecret)))

	alice := "Bearer " + jwstest.UserToken(jwtSecret, "alice")
	for _, spoof := range []string{
		"Wedge-Value-Identity-Sub", // the edge's own spelling
		"Wedge_Value_Identity_Sub",
		"WEDGE_VALUE_IDENTITY_SUB",
		"wedge_value_identity_sub",
		"wEdGe-VaLuE_iDeNtItY-sUb",
		"Wedge-Value-Identity_Sub", // only the last separator differs
		"Wedge_Value-Identity-Sub", // only the first
	} {
		// Raw, so the names go out exactly as spelt.
		resp, body := n.raw(t, "GET /who HTTP/1.1\r\nHost: x\r\n"+spoof+": admin\r\nAuthorization: "+alice+"\r\n"+
			spoof+": root\r\nWedge_Value_Identity_Method: api-key\r\nProxy: http://evil.example\r\nX_Custom: kept\r\n\r\n")
		var env map[string][]string
		if err := json.Unmarshal([]byte(body), &env); resp.StatusCode != 200 || err != nil {
			t.Fatalf("%s: %d %q", spoof, resp.StatusCode, body)
		}
		if got := env["HTTP_WEDGE_VALUE_IDENTITY_SUB"]; !slices.Equal(got, []string{"alice"}) {
			t.Errorf("%s: the application read HTTP_WEDGE_VALUE_IDENTITY_SUB=%q, want only the verified alice", spoof, got)
		}
		if got := env["HTTP_WEDGE_VALUE_IDENTITY_METHOD"]; !slices.Equal(got, []string{"jwt"}) {
			t.Errorf("%s: HTTP_WEDGE_VALUE_IDENTITY_METHOD=%q, want jwt", spoof, got)
		}
		if got, ok := env["HTTP_PROXY"]; ok {
			t.Errorf("%s: HTTP_PROXY=%q reached the application", spoof, got)
		}
		if got := env["HTTP_X_CUSTOM"]; !slices.Equal(got, []string{"kept"}) {
			t.Errorf("%s: an ordinary field with '_' was lost: HTTP_X_CUSTOM=%q", spoof, got)
		}
	}
}

// TestReservedFieldsDropped: the edge itself drops the client's reserved
// fields, so neither plugins nor the envelope carry them.
func TestReservedFieldsDropped(t *testing.T) {
	n, _ := startAbused(t, "")
	resp, body := n.raw(t, "GET /api/x HTTP/1.1\r\nHost: api.example.com\r\nWedge_Value_Identity_Sub: admin\r\n"+
		"wedge-value-identity-sub: admin\r\nProxy: http://evil.example\r\nX_Custom: kept\r\n\r\n")
	if resp.StatusCode != 200 || strings.Contains(body, "admin") || strings.Contains(body, "evil") || !strings.Contains(body, `X_Custom="kept"`) {
		t.Fatalf("%d %q: the origin got a reserved field, or lost an ordinary one", resp.StatusCode, body)
	}
}
