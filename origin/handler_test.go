package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/wire"
)

func TestHTTPAdapter(t *testing.T) {
	var seen struct {
		method, uri, path, query, host, remote, body, ctype string
		accept, user, spoof, hop                            []string
		tls, hasDeadline                                    bool
		contentLength                                       int64
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.method, seen.uri, seen.path, seen.query = r.Method, r.RequestURI, r.PathValue("id"), r.URL.Query().Get("q")
		seen.host, seen.remote, seen.body, seen.ctype = r.Host, r.RemoteAddr, string(b), r.Header.Get("Content-Type")
		seen.accept = r.Header.Values("Accept")
		for k, v := range r.Header {
			// As a CGI-style gateway reads them: every spelling of
			// Wedge-Value-User is HTTP_WEDGE_VALUE_USER.
			switch k := strings.ToUpper(strings.ReplaceAll(k, "-", "_")); {
			case k == "WEDGE_VALUE_USER":
				seen.user = append(seen.user, v...)
			case strings.HasPrefix(k, "WEDGE_VALUE_"):
				seen.spoof = append(seen.spoof, v...)
			}
		}
		seen.hop = append(r.Header.Values("Connection"), r.Header.Values("X-Hop")...)
		seen.tls, seen.contentLength = r.TLS != nil, r.ContentLength
		_, seen.hasDeadline = r.Context().Deadline()
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Surrogate-Key", "item-7 items")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "999") // the envelope's body length wins
		w.Header()["Bad Name"] = []string{"dropped"}
		w.Header().Set("X-Split", "a\r\nSet-Cookie: evil=1")
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Too-Late", "1") // after WriteHeader: not sent, as in net/http
		fmt.Fprintf(w, `{"id":%q}`, r.PathValue("id"))
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html><p>hi")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	o := startOrigin(t, HTTP(mux), nil)

	req := getReq("/items/7")
	req.Method = wire.Bytes("PUT")
	req.Query = wire.Bytes("q=a%20b")
	req.AddHeader([]byte("accept"), []byte("text/a"))
	req.AddHeader([]byte("Accept"), []byte("text/b"))
	req.AddHeader([]byte("Content-Type"), []byte("text/plain"))
	req.AddHeader([]byte("Wedge-Value-Admin"), []byte("yes"))
	req.AddHeader([]byte("Wedge_Value_User"), []byte("mallory"))
	req.AddHeader([]byte("wedge_value_admin"), []byte("yes"))
	req.AddHeader([]byte("Content-Length"), []byte("1"))
	req.AddHeader([]byte("Connection"), []byte("X-Hop"))
	req.AddHeader([]byte("X-Hop"), []byte("1"))
	req.AddValue([]byte("User"), []byte("alice"))
	req.Body = wire.Bytes("payload")
	resp := exchange(t, o.addr, o.codec, req)

	if seen.method != "PUT" || seen.uri != "/items/7?q=a%20b" || seen.path != "7" || seen.query != "a b" ||
		seen.host != "app.example" || seen.remote != "192.0.2.7:0" || seen.body != "payload" || seen.contentLength != 7 ||
		seen.ctype != "text/plain" || !seen.tls || !seen.hasDeadline {
		t.Errorf("application saw %+v", seen)
	}
	if !slices.Equal(seen.accept, []string{"text/a", "text/b"}) || !slices.Equal(seen.user, []string{"alice"}) || seen.spoof != nil || seen.hop != nil {
		t.Errorf("application saw Accept %q, user %q, spoofed %q, hop-by-hop %q", seen.accept, seen.user, seen.spoof, seen.hop)
	}
	want := []wire.Field{
		{Name: wire.Bytes("Content-Type"), Value: wire.Bytes("application/json")},
		{Name: wire.Bytes("Set-Cookie"), Value: wire.Bytes("a=1")},
		{Name: wire.Bytes("Set-Cookie"), Value: wire.Bytes("b=2")},
		{Name: wire.Bytes("Surrogate-Key"), Value: wire.Bytes("item-7 items")},
		{Name: wire.Bytes("X-Split"), Value: wire.Bytes("a  Set-Cookie: evil=1")},
	}
	if resp.Status != 201 || string(resp.Body) != `{"id":"7"}` || !wire.Equal(resp.Header, want) {
		t.Errorf("got %d %q %q", resp.Status, resp.Header, resp.Body)
	}
	if len(resp.Cache.Tags) != 2 || string(resp.Cache.Tags[0]) != "item-7" || string(resp.Cache.Tags[1]) != "items" {
		t.Errorf("tags %q", resp.Cache.Tags)
	}

	resp = exchange(t, o.addr, o.codec, getReq("/plain"))
	if ct, _ := wire.Get(resp.Header, "content-type"); resp.Status != 200 || !strings.HasPrefix(string(ct), "text/html") {
		t.Errorf("/plain: %d, sniffed Content-Type %q", resp.Status, ct)
	}
	head := getReq("/plain")
	head.Method = wire.Bytes("HEAD")
	resp = exchange(t, o.addr, o.codec, head)
	if ct, _ := wire.Get(resp.Header, "content-type"); resp.Status != 200 || len(resp.Body) != 0 || !strings.HasPrefix(string(ct), "text/html") {
		t.Errorf("HEAD /plain: %d %q, Content-Type %q", resp.Status, resp.Body, ct)
	}
	resp = exchange(t, o.addr, o.codec, getReq("/empty"))
	if resp.Status != 200 || len(resp.Body) != 0 || len(resp.Header) != 0 {
		t.Errorf("/empty: %+v", resp)
	}
	resp = exchange(t, o.addr, o.codec, getReq("/missing"))
	if resp.Status != 404 {
		t.Errorf("/missing: %d", resp.Status)
	}
}

// TestHTTPAdapterForwarded: an application in the origin's process sees the
// forwarding fields as one behind Proxy does, the edge's scheme, host and
// client in place of what the client claimed; it saw the client's own
// X-Forwarded-Proto, X-Forwarded-Host and X-Real-Ip, which frameworks
// trusting one proxy hop take for the scheme, host and address.
func TestHTTPAdapterForwarded(t *testing.T) {
	var seen http.Header
	o := startOrigin(t, HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	})), nil)
	req := getReq("/who")
	req.ID = wire.Bytes("edge-42")
	for _, f := range [][2]string{
		{"X-Real-IP", "6.6.6.6"},
		{"X-Forwarded-Proto", "http"},
		{"x-forwarded-host", "evil.example"},
		{"X-Forwarded-For", "198.51.100.1"},
		{"Forwarded", "for=198.51.100.1"},
		{"X-Request-ID", "chosen-by-the-client"},
	} {
		req.AddHeader([]byte(f[0]), []byte(f[1]))
	}
	if resp := exchange(t, o.addr, o.codec, req); resp.Status != 200 {
		t.Fatalf("got %d %q", resp.Status, resp.Body)
	}
	want := http.Header{
		"X-Real-Ip":         {"192.0.2.7"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"app.example"},
		"X-Forwarded-For":   {"198.51.100.1, 192.0.2.7"},
		"Forwarded":         {"for=198.51.100.1, for=192.0.2.7;proto=https;host=app.example"},
		"X-Request-Id":      {"edge-42"},
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("application saw\n%v\nwant (as behind Proxy)\n%v", seen, want)
	}
}

// TestHTTPAdapterForwardedPeer: an envelope whose client the edge took
// from a trusted proxy's X-Forwarded-For (wire.Request.Peer set) reaches
// the application with that proxy, not the client again, appended to the
// chain, and the client in X-Real-Ip and Forwarded.
func TestHTTPAdapterForwardedPeer(t *testing.T) {
	var seen http.Header
	o := startOrigin(t, HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	})), nil)
	req := getReq("/who")
	req.Client = wire.Bytes("198.51.100.1")
	req.Peer = wire.Bytes("10.0.0.9")
	req.AddHeader([]byte("X-Forwarded-For"), []byte("198.51.100.1, 10.0.0.5"))
	if resp := exchange(t, o.addr, o.codec, req); resp.Status != 200 {
		t.Fatalf("got %d %q", resp.Status, resp.Body)
	}
	for name, want := range map[string]string{
		"X-Forwarded-For": "198.51.100.1, 10.0.0.5, 10.0.0.9",
		"X-Real-Ip":       "198.51.100.1",
		"Forwarded":       "for=198.51.100.1;proto=https;host=app.example",
	} {
		if got := seen.Get(name); got != want {
			t.Errorf("%s: application saw %q, want %q", name, got, want)
		}
	}
}

func TestHTTPAdapterContext(t *testing.T) {
	h := HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			w.WriteHeader(http.StatusGatewayTimeout)
			io.WriteString(w, r.Context().Err().Error())
		case <-time.After(10 * time.Second):
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var resp wire.Response
	start := time.Now()
	h.ServeOrigin(ctx, getReq("/"), &resp)
	if resp.Status != 504 || string(resp.Body) != context.DeadlineExceeded.Error() || time.Since(start) > 5*time.Second {
		t.Fatalf("got %d %q after %v", resp.Status, resp.Body, time.Since(start))
	}
}
