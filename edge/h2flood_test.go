package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/talowa/wedge/internal/testutil"
)

// attacker is a raw HTTP/2 client on one TLS connection, built on
// x/net/http2's Framer, that writes frames no well-behaved client writes.
// A goroutine reads what the node sends back (unless the attack is not to
// read) and records how the connection ended.
type attacker struct {
	t    *testing.T
	conn *tls.Conn
	bw   *bufio.Writer
	fr   *http2.Framer
	hb   bytes.Buffer
	enc  *hpack.Encoder

	ended chan struct{}
	mu    sync.Mutex
	end   string // "GOAWAY <code>" or the read error
}

func newAttacker(t *testing.T, s *tlsStack, read bool) *attacker {
	t.Helper()
	cfg := s.tlsConfig()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp4", s.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	a := &attacker{t: t, conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), ended: make(chan struct{})}
	a.fr = http2.NewFramer(a.bw, conn)
	a.enc = hpack.NewEncoder(&a.hb)
	a.bw.WriteString(http2.ClientPreface)
	if err := a.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	a.flush()
	if read {
		go a.read()
	}
	return a
}

// read reads frames until the connection ends, recording a GOAWAY.
func (a *attacker) read() {
	defer close(a.ended)
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			a.setEnd(err.Error())
			return
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			a.setEnd("GOAWAY " + g.ErrCode.String())
			// The node closes the connection after its GOAWAY; keep
			// reading until it does.
		}
	}
}

func (a *attacker) setEnd(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.end == "" {
		a.end = s
	}
}

// headers is a request's header block: GET path.
func (a *attacker) headers(path string, extra ...string) []byte {
	a.hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "edge.test"}, {":path", path}} {
		a.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		a.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return a.hb.Bytes()
}

// flush sends what is buffered; false once the node closed the
// connection.
func (a *attacker) flush() bool {
	a.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return a.bw.Flush() == nil
}

// status reads frames until the response to stream id and returns its
// :status.
func (a *attacker) status(id uint32) string {
	a.t.Helper()
	a.conn.SetReadDeadline(time.Now().Add(time.Minute)) // a hang guard
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			a.t.Fatalf("reading the response to stream %d: %v", id, err)
		}
		if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == id {
			fields, err := dec.DecodeFull(h.HeaderBlockFragment())
			if err != nil {
				a.t.Fatal(err)
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					return hf.Value
				}
			}
		}
	}
}

// waitEnd waits for the node to end the connection and returns how.
func (a *attacker) waitEnd() string {
	a.t.Helper()
	select {
	case <-a.ended:
	case <-time.After(time.Minute): // a hang guard
		a.t.Fatal("the node kept the attacker's connection open")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.end
}

// h2Requests is how many HTTP/2 requests reached the node's core.
func (s *tlsStack) h2Requests(t *testing.T) float64 {
	return testutil.MetricSum(t, s.n.Registry(), "wedge_edge_protocol_requests_total", map[string]string{"protocol": "h2"})
}

// checkServing sends an HTTP/2 request from another client through the
// origin path and fails unless it is answered.
func (s *tlsStack) checkServing(t *testing.T) {
	t.Helper()
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	resp, body := fetch(t, c, "GET", "https://"+s.addr+"/still", nil)
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || body != "app: GET /still body=0" {
		t.Fatalf("another client: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
}

// TestHTTP2RapidReset opens streams and resets each at once
// (CVE-2023-44487) on requests that go to the origin: the node ends the
// connection, has run a bounded number of them, and serves other clients
// throughout.
func TestHTTP2RapidReset(t *testing.T) {
	s := startTLSStack(t, "", "")
	a := newAttacker(t, s, true)
	const attempts = 20000
	sent := 0
	var others sync.WaitGroup
	others.Add(1)
	go func() {
		defer others.Done()
		s.checkServing(t) // while the flood runs
	}()
	for sent < attempts {
		id := uint32(2*sent + 1)
		a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.headers("/flood"), EndStream: true, EndHeaders: true})
		a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		sent++
		if sent%100 == 0 && !a.flush() {
			break
		}
	}
	a.flush()
	end := a.waitEnd()
	others.Wait()
	ran := s.h2Requests(t) - 1 // the other client's
	t.Logf("sent %d HEADERS+RST_STREAM before the end (%s); %v reached the core", sent, end, ran)
	if sent == attempts && !strings.HasPrefix(end, "GOAWAY") && !isClosed(end) {
		t.Fatalf("the attacker's connection did not end: %s", end)
	}
	if ran > 1000 {
		t.Fatalf("%v reset streams reached the core, want the node to stop the connection well before", ran)
	}
	s.checkServing(t)
}

// isClosed reports whether a read error is the connection's end.
func isClosed(end string) bool {
	return end == io.EOF.Error() || end == io.ErrUnexpectedEOF.Error() || strings.Contains(end, "connection reset") || strings.Contains(end, "closed")
}

// TestHTTP2ContinuationFlood sends one request's header block as an
// endless run of CONTINUATION frames (CVE-2023-45288): the node ends the
// connection once the block passes the header limit, the request never
// reaches the core, and other clients are served.
func TestHTTP2ContinuationFlood(t *testing.T) {
	s := startTLSStack(t, "", "")
	a := newAttacker(t, s, true)
	before := s.h2Requests(t)
	a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headers("/flood"), EndStream: true})
	// Each fragment is a new literal field of 1 KiB.
	a.hb.Reset()
	a.enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("f", 1024)})
	frag := bytes.Clone(a.hb.Bytes())
	sent := 0
	for ; sent < 100000 && a.fr.WriteContinuation(1, false, frag) == nil; sent++ {
		if sent%64 == 0 && !a.flush() {
			break
		}
	}
	end := a.waitEnd()
	t.Logf("sent %d KiB of CONTINUATION before the end (%s)", sent, end)
	if sent == 100000 {
		t.Fatalf("the node read 100 MiB of one header block: %s", end)
	}
	if ran := s.h2Requests(t) - before; ran != 0 {
		t.Fatalf("the flooded request reached the core (%v)", ran)
	}
	s.checkServing(t)
}

// TestHTTP2PingFlood sends PINGs without reading the acknowledgements:
// the node stops queueing them and ends the connection, and serves other
// clients.
func TestHTTP2PingFlood(t *testing.T) {
	s := startTLSStack(t, "", "")
	a := newAttacker(t, s, false)
	const attempts = 4 << 20
	sent := 0
	var data [8]byte
	for ; sent < attempts; sent++ {
		a.fr.WritePing(false, data)
		if sent%1024 == 0 && !a.flush() {
			break
		}
	}
	t.Logf("sent %d PINGs before the node stopped reading them", sent)
	if sent == attempts {
		t.Fatalf("the node took %d PINGs it could not acknowledge", attempts)
	}
	// Now read: the connection has ended.
	go a.read()
	end := a.waitEnd()
	if !strings.HasPrefix(end, "GOAWAY") && !isClosed(end) {
		t.Fatalf("the attacker's connection: %s", end)
	}
	s.checkServing(t)
}

// TestHTTP2ResetsInFlight resets requests the node is working on, a batch
// at a time, letting each batch finish before the next (the pattern Go's
// own defence, which counts streams waiting for a handler, does not
// see): the node ends the connection after max_resets of them, so the
// work it throws away is bounded.
func TestHTTP2ResetsInFlight(t *testing.T) {
	s := startTLSStack(t, "", "")
	a := newAttacker(t, s, true)
	const batch, rounds = 50, 20
	id := uint32(1)
	round := 0
	for ; round < rounds; round++ {
		first := id
		for range batch {
			path := fmt.Sprintf("/hold/%d", id) // not collapsed into one by the origin
			a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.headers(path), EndStream: true, EndHeaders: true})
			id += 2
		}
		if !a.flush() {
			break
		}
		want := int64((round + 1) * batch)
		ended := false
		testutil.Eventually(t, time.Minute, "the batch reaching the application", func() bool {
			select {
			case <-a.ended:
				ended = true
				return true
			default:
				return s.held.Load() >= want
			}
		})
		if ended {
			break
		}
		for i := first; i < id; i += 2 {
			a.fr.WriteRSTStream(i, http2.ErrCodeCancel)
		}
		if !a.flush() {
			break
		}
		testutil.Eventually(t, time.Minute, "the node seeing the resets", func() bool {
			return s.resets(t) >= float64(want) || isDone(a.ended)
		})
		for range batch {
			s.release <- struct{}{}
		}
	}
	end := a.waitEnd()
	t.Logf("%d rounds of %d before the end (%s); %v resets counted", round, batch, end, s.resets(t))
	if round == rounds {
		t.Fatalf("the node served %d rounds of requests reset in flight", rounds)
	}
	s.checkServing(t)
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// resets is the node's count of HTTP/2 streams reset before their answer.
func (s *tlsStack) resets(t *testing.T) float64 {
	return testutil.MetricSum(t, s.n.Registry(), "wedge_edge_early_resets_total", map[string]string{"protocol": "h2"})
}

// TestTLSHandshakesBounded holds max_conns connections in their TLS
// handshake: the node closes the next one at once, and takes new ones
// again when those end.
func TestTLSHandshakesBounded(t *testing.T) {
	s := startTLSStack(t, "max_header_bytes: 4096, max_body_bytes: 65536, max_conns: 2", "")
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp4", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()
	// The node has taken both into a handshake once a third is refused;
	// until then a third may still be among them.
	testutil.Eventually(t, time.Minute, "a connection past max_conns closed", func() bool {
		c := dial()
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 1))
		c.Close()
		return errors.Is(err, io.EOF)
	})
	a.Close()
	b.Close()
	testutil.Eventually(t, time.Minute, "a TLS client served again", func() bool {
		c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig()}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + s.addr + "/hello")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestHTTP2CancelAfterAnswer: a client that cancels answers it has begun
// to read (a player seeking away from a download), more of them than
// max_resets, is no rapid reset: none counts, and its connection and the
// other streams on it go on. Counting them cut the connection.
func TestHTTP2CancelAfterAnswer(t *testing.T) {
	s := startTLSStack(t, "", "  http2: {max_resets: 10}\n")
	h2 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+s.addr+"/events", nil)
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		buf := make([]byte, len("data: 1\n\n"))
		if _, err := io.ReadFull(resp.Body, buf); err != nil || resp.ProtoMajor != 2 {
			t.Fatalf("request %d: %s %q %v", i, resp.Proto, buf, err)
		}
		cancel() // the answer begun, the rest held by the application
		resp.Body.Close()
	}
	// The reset of the last one reached the node before this request's
	// answer, on the same connection.
	if resp, _ := fetch(t, h2, "GET", "https://"+s.addr+"/hello", nil); resp.StatusCode != 200 {
		t.Fatalf("after the cancels: %d", resp.StatusCode)
	}
	if r := s.resets(t); r != 0 {
		t.Fatalf("%v cancels of answers begun counted as early resets", r)
	}
}

// TestHTTP2GoAwayAtShutdown: Shutdown sends HTTP/2 clients their GOAWAY
// at once, while an HTTP/1.1 request is still being drained, so that they
// move their new requests elsewhere; it came only after the HTTP/1.1
// drain, and streams opened meanwhile were cut at the deadline.
func TestHTTP2GoAwayAtShutdown(t *testing.T) {
	s := startTLSStack(t, "", "")
	h1 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig()}}
	defer h1.CloseIdleConnections()
	// An event stream over HTTP/1.1, its second event held by the
	// application: the drain waits for it.
	resp, err := h1.Get("https://" + s.addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("data: 1\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || resp.ProtoMajor != 1 {
		t.Fatalf("the first event: %s %q %v", resp.Proto, first, err)
	}
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body)
		rest <- string(b)
	}()
	a := newAttacker(t, s, true)
	// A stream answered first: the connection is the HTTP/2 server's.
	a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headers("/hello"), EndStream: true, EndHeaders: true})
	a.flush()
	testutil.Eventually(t, time.Minute, "the HTTP/2 request served", func() bool {
		return testutil.MetricSum(t, s.n.Registry(), "wedge_edge_protocol_requests_total", map[string]string{"protocol": "h2"}) >= 1
	})
	done := make(chan error, 1)
	go func() { done <- s.n.Shutdown(context.Background()) }()
	testutil.Eventually(t, time.Minute, "a GOAWAY with the HTTP/1.1 request still held", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.end != "" && !strings.HasPrefix(a.end, "GOAWAY") {
			t.Fatalf("the HTTP/2 connection ended without a GOAWAY: %s", a.end)
		}
		return a.end != ""
	})
	select {
	case b := <-rest:
		t.Fatalf("the GOAWAY came only once the HTTP/1.1 stream had ended (%q)", b)
	default:
	}
	s.release <- struct{}{}
	if b := <-rest; b != "data: 2\n\n" {
		t.Fatalf("the HTTP/1.1 stream drained: %q, want its second event", b)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
