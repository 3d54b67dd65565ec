package origin

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/wire"
)

// fieldValueCases are field values as the origin receives them, from an
// envelope or from an application, and whether they may be passed on.
// RFC 9110 §5.5: a field value is VCHARs, obs-text, SP and HTAB; CR, LF
// and NUL turn a value into header injection, and the other controls (and
// DEL) are invalid too. The origin is the last hop before the application
// and the edge's first after it, so it judges by the rule the edge and
// the plugin ABI use (abi.ValidHeaderValue), not by a looser one of its
// own: a field one side drops, the other must not pass.
var fieldValueCases = []struct {
	name, value string
	valid       bool
}{
	{"X-Plain", "a b", true},
	{"X-Tab", "a\tb", true},
	{"X-Obs", "caf\xe9", true}, // obs-text
	{"X-Soh", "a\x01b", false},
	{"X-Esc", "a\x1b[2Jb", false}, // a terminal escape, for whoever logs it
	{"X-Del", "a\x7fb", false},
}

// TestFieldValueGrammar: each field value goes on, or not, by RFC 9110
// §5.5, in the request to the application (as written on the wire, and as
// an http.Handler sees it) and in the response back to the edge.
func TestFieldValueGrammar(t *testing.T) {
	req := &wire.Request{Method: wire.Bytes("GET"), Scheme: wire.Bytes("https"), Host: wire.Bytes("app.example"),
		Path: wire.Bytes("/"), Timeout: 5_000_000}
	for _, c := range fieldValueCases {
		req.AddHeader([]byte(c.name), []byte(c.value))
		req.AddValue([]byte("v"+c.name[2:]), []byte(c.value))
	}
	// want reports whether the header block head holds name: value.
	want := func(t *testing.T, where string, has func(name, value string) bool) {
		t.Helper()
		for _, c := range fieldValueCases {
			for _, name := range []string{c.name, wire.ValuePrefix + "v" + c.name[2:]} {
				if got := has(name, c.value); got != c.valid {
					t.Errorf("%s: %s: %q passed on = %t, want %t", where, name, c.value, got, c.valid)
				}
			}
		}
	}

	t.Run("proxy", func(t *testing.T) {
		// A raw application: it records the request head as written and
		// answers with the same fields.
		heads := make(chan string, 1)
		ln, err := netListen()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if head.WriteString(line); line == "\r\n" {
					break
				}
			}
			heads <- head.String()
			// The fields go in a 103, which the origin parses itself: a
			// final response with an invalid value fasthttp refuses whole
			// (a 502), before the origin reads its fields.
			resp := "HTTP/1.1 103 Early Hints\r\n"
			for _, f := range fieldValueCases {
				resp += f.name + ": " + f.value + "\r\n"
				resp += wire.ValuePrefix + "v" + f.name[2:] + ": " + f.value + "\r\n"
			}
			c.Write([]byte(resp + "\r\nHTTP/1.1 204 No Content\r\n\r\n"))
		}()
		p := newProxy(t, ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1})
		resp := serve(p, req, 5*time.Second)
		var head string
		select {
		case head = <-heads:
		default:
			t.Fatalf("the application got no request; the origin answered %d %q", resp.Status, resp.Error)
		}
		want(t, "request to the application", func(name, value string) bool {
			return strings.Contains(head, "\r\n"+name+": "+value+"\r\n")
		})
		if resp.Status != 204 || len(resp.Interim) != 1 {
			t.Fatalf("answered %d %q with %d interim responses, want 204 after a 103", resp.Status, resp.Error, len(resp.Interim))
		}
		want(t, "103 to the edge", func(name, value string) bool {
			return hasField(resp.Interim[0].Header, name, value)
		})
	})

	t.Run("http.Handler", func(t *testing.T) {
		var seen http.Header
		h := HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Header.Clone()
			for _, c := range fieldValueCases {
				w.Header().Add(c.name, c.value)
				w.Header().Add(wire.ValuePrefix+"v"+c.name[2:], c.value)
			}
		}))
		resp := new(wire.Response)
		h.ServeOrigin(context.Background(), req, resp)
		want(t, "request to the handler", func(name, value string) bool {
			return seen.Get(name) == value
		})
		want(t, "response to the edge", func(name, value string) bool {
			return hasField(resp.Header, http.CanonicalHeaderKey(name), value)
		})
	})
}

// hasField reports whether fs holds the field name: value.
func hasField(fs []wire.Field, name, value string) bool {
	return slices.ContainsFunc(fs, func(f wire.Field) bool {
		return string(f.Name) == name && bytes.Equal(f.Value, []byte(value))
	})
}
