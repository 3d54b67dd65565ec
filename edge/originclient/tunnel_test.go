package originclient_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// startSwitchingApp is an application that answers each connection's
// request with a 101 to websocket and then echoes what comes.
func startSwitchingApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: x\r\n\r\n")
				io.Copy(c, br)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestTunnelTLS opens a tunnel over TLS, as an edge whose origin link is
// TLS does, and carries bytes both ways on it.
func TestTunnelTLS(t *testing.T) {
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{startSwitchingApp(t)}, HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	// httptest's certificate, for 127.0.0.1 and example.com.
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	hs.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: proxy},
		tls.NewListener(ln, &tls.Config{Certificates: hs.TLS.Certificates}))
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	c, err := originclient.New(originclient.Config{Addr: o.Addr, Codec: origintest.NewCodec(t, wire.Config{}),
		TLS: &tls.Config{RootCAs: roots, ServerName: "example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	req := &wire.Request{Method: []byte("GET"), Path: []byte("/ws")}
	req.AddHeader([]byte("Sec-WebSocket-Key"), []byte("dGhlIHNhbXBsZSBub25jZQ=="))
	var resp wire.Response
	conn, err := c.Tunnel(time.Now().Add(time.Minute), req, &resp)
	if err != nil || resp.Status != 101 || conn == nil {
		t.Fatalf("tunnel: %v, status %d", err, resp.Status)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("over tls")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("over tls"))
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "over tls" {
		t.Fatalf("echo: %q %v", got, err)
	}
}

// TestTunnelRefusedFrame: an origin that does not hold the key refuses
// the handshake's frame with 401, which the client reports as a refusal.
func TestTunnelRefusedFrame(t *testing.T) {
	other := origintest.NewCodec(t, wire.Config{Keys: []wire.Key{{ID: 1, Secret: []byte(strings.Repeat("k", 32))}}})
	o := origintest.StartConfig(t, origin.ServerConfig{Handler: origintest.OK, Codec: other}, nil)
	c, err := originclient.New(originclient.Config{Addr: o.Addr, Codec: origintest.NewCodec(t, wire.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var resp wire.Response
	conn, err := c.Tunnel(time.Now().Add(time.Minute), &wire.Request{Method: []byte("GET"), Path: []byte("/ws")}, &resp)
	var re *originclient.RefusedError
	if conn != nil || !errors.As(err, &re) || re.Status != 401 {
		t.Fatalf("tunnel to an origin without the key: %v %v, want a 401 refusal", conn, err)
	}
}

// TestTunnelSealedAsHandshake: the frame Tunnel sends is sealed as a
// tunnel's handshake, which opens only as one: a request frame the client
// sends is no handshake, and a handshake is no request, so neither can be
// replayed as the other.
func TestTunnelSealedAsHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			frames <- nil
			return
		}
		body, _ := io.ReadAll(r.Body)
		frames <- body
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\nConnection: close\r\n\r\nseen")
	}()
	codec := origintest.NewCodec(t, wire.Config{})
	c, err := originclient.New(originclient.Config{Addr: ln.Addr().String(), Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	req := &wire.Request{Method: []byte("GET"), Path: []byte("/ws")}
	req.AddHeader([]byte("Sec-WebSocket-Key"), []byte("dGhlIHNhbXBsZSBub25jZQ=="))
	var resp wire.Response
	if conn, err := c.Tunnel(time.Now().Add(time.Minute), req, &resp); conn != nil || err == nil {
		t.Fatalf("tunnel answered 400: %v %v", conn, err)
	}
	frame := <-frames
	var got wire.Request
	if _, err := codec.DecodeTunnelRequest(frame, &got); err != nil || string(got.Path) != "/ws" {
		t.Fatalf("the handshake's frame does not open as a handshake: %v", err)
	}
	if _, err := codec.DecodeRequest(frame, &got); !errors.Is(err, wire.ErrAuth) {
		t.Fatalf("the handshake's frame opened as a request: %v, want ErrAuth", err)
	}
}
