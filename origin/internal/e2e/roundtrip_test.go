package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/wire"
	"github.com/valyala/fasthttp"
)

// seen is what the echo upstream received, as it reports it.
type seen struct {
	Method, URI string
	Header      [][2]string // in the order received, names as sent
	BodyLen     int
}

// echoUpstream reports what it received. With X-Echo-Body it answers the
// request body itself instead (binary bodies). Either way it sends repeated
// response fields whose order must survive the trip.
func echoUpstream(tb testing.TB) string {
	ln := listen(tb)
	s := &fasthttp.Server{DisableHeaderNamesNormalizing: true, NoDefaultServerHeader: true,
		MaxRequestBodySize: 64 << 20, ReadBufferSize: 64 << 10, Handler: func(ctx *fasthttp.RequestCtx) {
			if st := ctx.Request.Header.Peek("X-Want-Status"); st != nil {
				n, _ := strconv.Atoi(string(st))
				ctx.SetStatusCode(n)
			}
			ctx.Response.Header.Add("Set-Cookie", "a=1; Path=/")
			ctx.Response.Header.Add("X-Multi", "one")
			ctx.Response.Header.Add("Set-Cookie", "b=2; Path=/")
			ctx.Response.Header.Add("X-Multi", "two")
			if ctx.Request.Header.Peek("X-Echo-Body") != nil {
				ctx.SetContentType("application/octet-stream")
				ctx.SetBody(ctx.Request.Body())
				return
			}
			rep := seen{Method: string(ctx.Method()), URI: string(ctx.RequestURI()), BodyLen: len(ctx.Request.Body())}
			for line := range strings.SplitSeq(string(ctx.Request.Header.RawHeaders()), "\r\n") {
				if name, value, ok := strings.Cut(line, ":"); ok {
					rep.Header = append(rep.Header, [2]string{name, strings.TrimSpace(value)})
				}
			}
			ctx.SetContentType("application/json")
			json.NewEncoder(ctx).Encode(rep)
		}}
	go s.Serve(ln)
	tb.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String()
}

func decodeSeen(tb testing.TB, resp *wire.Response) seen {
	tb.Helper()
	var s seen
	if err := json.Unmarshal(resp.Body, &s); err != nil {
		tb.Fatalf("upstream report: %v in %q (status %d, error %q)", err, resp.Body, resp.Status, resp.Error)
	}
	return s
}

// TestRoundTrip sends each method through edge client -> origin service ->
// upstream and checks what the upstream saw and what came back.
func TestRoundTrip(t *testing.T) {
	s := newStack(t, stackOpts{proxy: origin.ProxyConfig{Upstreams: []string{echoUpstream(t)}}})
	for _, method := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"} {
		t.Run(method, func(t *testing.T) {
			req := newRequest(method, "/api/items/7?q=a%20b&q=c")
			req.AddHeader([]byte("Accept"), []byte("application/json"))
			req.AddHeader([]byte("X-Repeat"), []byte("first"))
			req.AddHeader([]byte("x-lower-case"), []byte("kept as sent"))
			req.AddHeader([]byte("X-Repeat"), []byte("second"))
			req.AddValue([]byte("Sub"), []byte("user-42"))
			if method == "POST" || method == "PUT" || method == "PATCH" {
				req.Body = wire.Bytes(`{"n":1}`)
				req.AddHeader([]byte("Content-Type"), []byte("application/json"))
			}
			resp := s.do(t, 5*time.Second, req)
			if resp.Status != 200 || len(resp.Error) != 0 {
				t.Fatalf("status %d error %q", resp.Status, resp.Error)
			}
			// Only the order within one name carries meaning (RFC 9110
			// §5.3); the upstream's fasthttp writes cookies last anyway.
			for name, want := range map[string]string{"Set-Cookie": "[a=1; Path=/ b=2; Path=/]", "X-Multi": "[one two]"} {
				var got []string
				for _, f := range resp.Header {
					if strings.EqualFold(string(f.Name), name) {
						got = append(got, string(f.Value))
					}
				}
				if fmt.Sprint(got) != want {
					t.Errorf("response %s fields = %q, want %s in that order", name, got, want)
				}
			}
			if method == "HEAD" {
				if len(resp.Body) != 0 {
					t.Errorf("HEAD answered %d body bytes", len(resp.Body))
				}
				return
			}
			rep := decodeSeen(t, resp)
			if rep.Method != method || rep.URI != "/api/items/7?q=a%20b&q=c" {
				t.Errorf("upstream saw %s %s", rep.Method, rep.URI)
			}
			var repeats []string
			for _, h := range rep.Header {
				switch h[0] {
				case "X-Repeat", "x-lower-case":
					repeats = append(repeats, h[0]+"="+h[1])
				}
			}
			if want := []string{"X-Repeat=first", "x-lower-case=kept as sent", "X-Repeat=second"}; fmt.Sprint(repeats) != fmt.Sprint(want) {
				t.Errorf("upstream got fields %q, want %q in that order and case", repeats, want)
			}
			if v := header(rep.Header, "Wedge-Value-Sub"); v != "user-42" {
				t.Errorf("forwarded identity reached the upstream as %q", v)
			}
			if v := header(rep.Header, "Host"); v != "shop.example.com" {
				t.Errorf("Host = %q", v)
			}
			if v := header(rep.Header, "X-Forwarded-For"); v != "203.0.113.9" {
				t.Errorf("X-Forwarded-For = %q", v)
			}
			if rep.BodyLen != len(req.Body) {
				t.Errorf("upstream got %d body bytes, want %d", rep.BodyLen, len(req.Body))
			}
		})
	}
}

func header(h [][2]string, name string) string {
	for _, f := range h {
		if strings.EqualFold(f[0], name) {
			return f[1]
		}
	}
	return ""
}

// TestRoundTripBodies sends binary and large bodies both ways: every byte
// value, and 8 MiB of random bytes, echoed by the upstream.
func TestRoundTripBodies(t *testing.T) {
	s := newStack(t, stackOpts{proxy: origin.ProxyConfig{Upstreams: []string{echoUpstream(t)}}})
	all := make([]byte, 256*4)
	for i := range all {
		all[i] = byte(i)
	}
	large := make([]byte, 8<<20)
	rand.Read(large)
	for name, body := range map[string][]byte{"every-byte": all, "8MiB-random": large, "empty": nil} {
		t.Run(name, func(t *testing.T) {
			req := newRequest("PUT", "/blob")
			req.AddHeader([]byte("X-Echo-Body"), []byte("1"))
			req.AddHeader([]byte("Content-Type"), []byte("application/octet-stream"))
			req.Body = body
			resp := s.do(t, 20*time.Second, req)
			if resp.Status != 200 || !bytes.Equal(resp.Body, body) {
				t.Fatalf("status %d, %d bytes back of %d sent (equal: %t), error %q",
					resp.Status, len(resp.Body), len(body), bytes.Equal(resp.Body, body), resp.Error)
			}
		})
	}
}

// TestRoundTripManyHeaders sends 300 header fields, 100 of them sharing one
// name, and wants them all at the upstream in order.
func TestRoundTripManyHeaders(t *testing.T) {
	s := newStack(t, stackOpts{proxy: origin.ProxyConfig{Upstreams: []string{echoUpstream(t)}}})
	req := newRequest("GET", "/many")
	var want []string
	for i := range 300 {
		name := "X-Field-" + strconv.Itoa(i)
		if i%3 == 0 {
			name = "X-Same"
		}
		v := "value-" + strconv.Itoa(i)
		req.AddHeader([]byte(name), []byte(v))
		want = append(want, name+"="+v)
	}
	rep := decodeSeen(t, s.do(t, 5*time.Second, req))
	var got []string
	for _, h := range rep.Header {
		if strings.HasPrefix(h[0], "X-Field-") || h[0] == "X-Same" {
			got = append(got, h[0]+"="+h[1])
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("upstream got %d X- fields, want %d in order; first difference near %v", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("#%d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

// TestRoundTripStatuses passes the application's own statuses through
// untouched and unmarked: they are answers, not origin failures.
func TestRoundTripStatuses(t *testing.T) {
	s := newStack(t, stackOpts{proxy: origin.ProxyConfig{Upstreams: []string{echoUpstream(t)}}})
	for _, st := range []int{201, 204, 301, 404, 418, 500, 503} {
		req := newRequest("GET", "/status")
		req.AddHeader([]byte("X-Want-Status"), []byte(strconv.Itoa(st)))
		resp := s.do(t, 5*time.Second, req)
		if int(resp.Status) != st || len(resp.Error) != 0 {
			t.Errorf("upstream %d came back as %d (error %q)", st, resp.Status, resp.Error)
		}
	}
	if st := s.client.State(); st != "closed" {
		t.Errorf("application 5xx moved the breaker to %s", st)
	}
}
