package edge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
)

// TestHTTP3FullChain sends HTTP/3 requests with quic-go's client through
// the node's TLS port over UDP, its plugin chain, a real origin service
// and the application: the plugin answers, the origin path, the limits of
// HTTP/1.1; and the node's TLS responses over TCP advertise HTTP/3.
func TestHTTP3FullChain(t *testing.T) {
	s := startTLSStack(t, "", "  http3: {enabled: true}\n")
	tr := &http3.Transport{TLSClientConfig: s.tlsConfig()}
	defer tr.Close()
	h3 := &http.Client{Timeout: time.Minute, Transport: tr}
	base := "https://" + s.addr

	resp, body := fetch(t, h3, "GET", base+"/hello?name=h3", nil)
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 || body != "Hi, h3!\n" {
		t.Fatalf("plugin answer: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	resp, body = fetch(t, h3, "POST", base+"/up", []byte("0123456789"))
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 || body != "app: POST /up body=10" {
		t.Fatalf("origin answer: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if app := s.seen(); len(app) != 1 || !seenAs(app[0], "POST /up|HTTP/3.0 https 127.0.0.1:", `|for=127.0.0.1;proto=https;host="`+s.addr+`"|10`) {
		t.Fatalf("the application saw %q", app)
	}
	if resp, _ := fetch(t, h3, "POST", base+"/up", bytes.Repeat([]byte("x"), 65537)); resp.StatusCode != 413 {
		t.Fatalf("a body over max_body_bytes: %d, want 413", resp.StatusCode)
	}
	if app := s.seen(); len(app) != 0 {
		t.Fatalf("a refused request reached the application: %q", app)
	}
	if got := testutil.MetricSum(t, s.n.Registry(), "wedge_edge_protocol_requests_total", map[string]string{"protocol": "h3"}); got != 3 {
		t.Errorf("protocol_requests_total{protocol=h3} = %v, want 3", got)
	}

	// HTTP/1.1 and HTTP/2 over TCP name the UDP port, the same number.
	_, port, _ := net.SplitHostPort(s.addr)
	want := `h3=":` + port + `"; ma=86400`
	for _, force := range []bool{false, true} {
		c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: force}}
		resp, _ := fetch(t, c, "GET", base+"/hello", nil)
		c.CloseIdleConnections()
		if got := resp.Header.Get("Alt-Svc"); got != want {
			t.Errorf("%s: Alt-Svc %q, want %q", resp.Proto, got, want)
		}
	}
}

// TestHTTP3ResetsInFlight cancels HTTP/3 requests the node is working on,
// a batch at a time, as TestHTTP2ResetsInFlight does over HTTP/2: the node
// closes the QUIC connection (H3_EXCESSIVE_LOAD) after max_resets of them.
func TestHTTP3ResetsInFlight(t *testing.T) {
	s := startTLSStack(t, "", "  http3: {enabled: true}\n")
	cfg := s.tlsConfig()
	cfg.NextProtos = []string{http3.NextProtoH3}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	conn, err := quic.DialAddr(ctx, s.addr, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(conn)
	closed := func() bool { return conn.Context().Err() != nil }
	const batch, rounds = 50, 20
	var wg sync.WaitGroup
	defer wg.Wait()
	n := 0
	round := 0
	for ; round < rounds && !closed(); round++ {
		var cancels []context.CancelFunc
		for range batch {
			rctx, rcancel := context.WithCancel(ctx)
			cancels = append(cancels, rcancel)
			req, _ := http.NewRequestWithContext(rctx, "GET", fmt.Sprintf("https://%s/hold/%d", s.addr, n), nil)
			n++
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, err := cc.RoundTrip(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		want := int64((round + 1) * batch)
		testutil.Eventually(t, time.Minute, "the batch reaching the application", func() bool {
			return s.held.Load() >= want || closed()
		})
		for _, c := range cancels {
			c()
		}
		testutil.Eventually(t, time.Minute, "the node seeing the resets", func() bool {
			return testutil.MetricSum(t, s.n.Registry(), "wedge_edge_early_resets_total", map[string]string{"protocol": "h3"}) >= float64(want) || closed()
		})
		for range batch {
			s.release <- struct{}{}
		}
	}
	testutil.Eventually(t, time.Minute, "the node closing the connection", closed)
	var ae *quic.ApplicationError
	if err := context.Cause(conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad) || !ae.Remote {
		t.Fatalf("the connection ended with %v, want the node's H3_EXCESSIVE_LOAD", err)
	}
	t.Logf("%d rounds of %d before the node closed the connection", round, batch)
	if round == rounds {
		t.Fatalf("the node served %d rounds of requests reset in flight", rounds)
	}
}

// TestHeadLengthOverH2H3: an answer to HEAD carries the Content-Length
// its GET would have over HTTP/2 and HTTP/3 as over HTTP/1.1 (RFC 9110
// §9.3.2); HTTP/3 sent "content-length: 0", which §8.6 forbids, and
// HTTP/2 none.
func TestHeadLengthOverH2H3(t *testing.T) {
	s := startTLSStack(t, "", "  http3: {enabled: true}\n")
	tr := &http3.Transport{TLSClientConfig: s.tlsConfig()}
	defer tr.Close()
	h2 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	want := int64(len("app: HEAD /x body=0")) // what the application's answer to HEAD says
	for _, c := range []*http.Client{h2, {Timeout: time.Minute, Transport: tr}} {
		resp, body := fetch(t, c, "HEAD", "https://"+s.addr+"/x", nil)
		if resp.StatusCode != 200 || resp.ContentLength != want || body != "" {
			t.Errorf("%s: %d, Content-Length %d, body %q; want 200, %d, none", resp.Proto, resp.StatusCode, resp.ContentLength, body, want)
		}
	}
}

// TestHTTP3CanarySplitByAddress: an HTTP/3 client falls on the side of a
// canary's address split that an HTTP/1.1 client from its address does.
// fasthttp's RemoteIP is 0.0.0.0 for a UDP address, and every HTTP/3
// client fell on the side of 0.0.0.0: at a 75% share, 127.0.0.1's bucket
// (7623 of 10,000 for hello) is on the stable side and 0.0.0.0's (7483)
// on the canary's.
func TestHTTP3CanarySplitByAddress(t *testing.T) {
	s := startTLSStack(t, "", "  http3: {enabled: true}\n")
	rel := map[string]*edge.Release{"hello": {Canary: &edge.Release{Config: []byte(`{"greeting":"Canary"}`), Version: "c1"}, Share: 75}}
	if err := s.n.SetReleases(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	tr := &http3.Transport{TLSClientConfig: s.tlsConfig()}
	defer tr.Close()
	h1 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig()}}
	defer h1.CloseIdleConnections()
	url := "https://" + s.addr + "/hello?name=x"
	if resp, body := fetch(t, h1, "GET", url, nil); resp.ProtoMajor != 1 || body != "Hi, x!\n" {
		t.Fatalf("HTTP/1.1 from 127.0.0.1: %s %q, want the stable side", resp.Proto, body)
	}
	for range 3 {
		if resp, body := fetch(t, &http.Client{Timeout: time.Minute, Transport: tr}, "GET", url, nil); resp.ProtoMajor != 3 || body != "Hi, x!\n" {
			t.Fatalf("HTTP/3 from 127.0.0.1: %s %q, want the stable side, as HTTP/1.1's", resp.Proto, body)
		}
	}
}
