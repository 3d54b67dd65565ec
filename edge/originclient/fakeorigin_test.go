package originclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/valyala/fasthttp"
)

// wrongKey has the ID of the key the edge and the fake origin share
// (origintest.Key) and another secret.
var wrongKey = wire.Key{ID: origintest.Key.ID, Secret: bytes.Repeat([]byte{0xa5}, 32)}

// fakeOrigin is a real fasthttp server on 127.0.0.1 that speaks the
// transport contract through its own wire.Codec, as the origin service
// does, and misbehaves when its handler says so.
type fakeOrigin struct {
	addr    string
	codec   *wire.Codec
	handler func(o *fakeOrigin, ctx *fasthttp.RequestCtx)
	// requests counts requests that reached the handler; conns counts
	// accepted connections, including those dropped at accept.
	requests atomic.Int64
	conns    atomic.Int64
	closed   atomic.Int64 // connections the server closed
	// dropConns makes the listener close that many accepted connections
	// before the server sees them.
	dropConns atomic.Int64
	// stop is closed when the test ends, releasing handlers that stall.
	stop chan struct{}

	mu       sync.Mutex
	timeouts []uint64 // Request.Timeout of every decoded request
}

type originOpts struct {
	codec *wire.Codec
	tls   bool
	// idle is how long the server keeps an idle keep-alive connection.
	idle time.Duration
}

func newFakeOrigin(t testing.TB, h func(o *fakeOrigin, ctx *fasthttp.RequestCtx)) *fakeOrigin {
	return newFakeOriginOpts(t, h, originOpts{})
}

func newFakeOriginOpts(t testing.TB, h func(o *fakeOrigin, ctx *fasthttp.RequestCtx), opts originOpts) *fakeOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &fakeOrigin{addr: ln.Addr().String(), codec: opts.codec, handler: h, stop: make(chan struct{})}
	if o.codec == nil {
		o.codec = origintest.NewCodec(t, wire.Config{})
	}
	srv := &fasthttp.Server{
		Handler:               func(ctx *fasthttp.RequestCtx) { o.requests.Add(1); o.handler(o, ctx) },
		MaxRequestBodySize:    64 << 20,
		NoDefaultDate:         true,
		NoDefaultServerHeader: true,
		Logger:                quietLogger{},
		IdleTimeout:           opts.idle,
		ConnState: func(_ net.Conn, st fasthttp.ConnState) {
			if st == fasthttp.StateClosed {
				o.closed.Add(1)
			}
		},
	}
	dl := &dropListener{Listener: ln, o: o}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if opts.tls {
			certPEM, keyPEM := selfSigned(t)
			_ = srv.ServeTLSEmbed(dl, certPEM, keyPEM)
			return
		}
		_ = srv.Serve(dl)
	}()
	t.Cleanup(func() {
		close(o.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
		// Shutdown misses a listener that Serve has not registered yet.
		_ = ln.Close()
		<-done
	})
	return o
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

type dropListener struct {
	net.Listener
	o *fakeOrigin
}

func (l *dropListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.o.conns.Add(1)
		if l.o.dropConns.Load() > 0 {
			l.o.dropConns.Add(-1)
			c.Close()
			continue
		}
		return c, nil
	}
}

// decode opens the request frame, recording its Timeout. On failure it
// answers the way the origin service does and returns false.
func (o *fakeOrigin) decode(ctx *fasthttp.RequestCtx, req *wire.Request) (wire.Exchange, bool) {
	if string(ctx.Path()) != wire.Path {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return wire.Exchange{}, false
	}
	if !ctx.IsPost() {
		ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
		return wire.Exchange{}, false
	}
	x, err := o.codec.DecodeRequest(ctx.PostBody(), req)
	if err != nil {
		code := fasthttp.StatusBadRequest
		switch wire.Kind(err) {
		case "auth":
			code = fasthttp.StatusUnauthorized
		case "too_large":
			code = fasthttp.StatusRequestEntityTooLarge
		}
		ctx.Error(err.Error(), code)
		return x, false
	}
	o.mu.Lock()
	o.timeouts = append(o.timeouts, req.Timeout)
	o.mu.Unlock()
	return x, true
}

func (o *fakeOrigin) seenTimeouts() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]uint64(nil), o.timeouts...)
}

// answer seals resp with codec (the origin's own unless another is given)
// and writes it as a 200.
func (o *fakeOrigin) answer(ctx *fasthttp.RequestCtx, codec *wire.Codec, x wire.Exchange, resp *wire.Response) {
	if codec == nil {
		codec = o.codec
	}
	frame, _, err := codec.AppendResponse(nil, x, resp)
	if err != nil {
		ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType(contentType)
	ctx.SetBody(frame)
}

// echo answers with the request mirrored: its body, its header fields,
// then its values as Wedge-Value-* fields, and the method and target in
// fields of their own.
func echo(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
	echoStatus(o, ctx, 200, "")
}

func echoStatus(o *fakeOrigin, ctx *fasthttp.RequestCtx, status uint64, reason string) {
	var req wire.Request
	x, ok := o.decode(ctx, &req)
	if !ok {
		return
	}
	resp := wire.Response{Status: status, Body: req.Body, Error: wire.Bytes(reason)}
	resp.AddHeader([]byte("X-Method"), req.Method)
	resp.AddHeader([]byte("X-Target"), append(append(append(append([]byte(nil), req.Scheme...), req.Host...), req.Path...), "?"+string(req.Query)...))
	resp.AddHeader([]byte("X-Timeout"), strconv.AppendUint(nil, req.Timeout, 10))
	resp.Header = append(resp.Header, req.Header...)
	for _, v := range req.Values {
		resp.AddHeader(append([]byte("Wedge-Value-"), v.Name...), v.Value)
	}
	o.answer(ctx, nil, x, &resp)
}

// failing answers with a failure envelope the origin made itself: status,
// reason and scope (0: a sender that predates scopes).
func failing(status uint64, reason string, scope uint64) func(*fakeOrigin, *fasthttp.RequestCtx) {
	return func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		var req wire.Request
		if x, ok := o.decode(ctx, &req); ok {
			o.answer(ctx, nil, x, &wire.Response{Status: status, Error: wire.Bytes(reason), Scope: scope,
				Body: wire.Bytes(reason + "\n")})
		}
	}
}

// hangup closes the connection without answering, after the request was
// read: what an origin that crashed mid-request looks like.
func hangup(_ *fakeOrigin, ctx *fasthttp.RequestCtx) {
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {})
}

// rawReply answers with bytes written straight to the connection, then
// closes it (or, with stall, holds it open until the test ends).
func rawReply(b string, stall bool) func(*fakeOrigin, *fasthttp.RequestCtx) {
	return func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) {
			_, _ = c.Write([]byte(b))
			if stall {
				<-o.stop
			}
		})
	}
}

// stall holds the request until d passes or the test ends, then echoes.
func stall(d time.Duration) func(*fakeOrigin, *fasthttp.RequestCtx) {
	return func(o *fakeOrigin, ctx *fasthttp.RequestCtx) {
		select {
		case <-time.After(d):
		case <-o.stop:
		}
		echo(o, ctx)
	}
}

// selfSigned makes a certificate for 127.0.0.1.
func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := makeCert()
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

var certOnce = sync.OnceValues(func() ([2][]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return [2][]byte{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "origin.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return [2][]byte{}, err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return [2][]byte{}, err
	}
	return [2][]byte{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})}, nil
})

func makeCert() ([]byte, []byte, error) {
	p, err := certOnce()
	return p[0], p[1], err
}

func clientTLS(t testing.TB) *tls.Config {
	certPEM, _ := selfSigned(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad test certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// countingDialer counts dials and the bytes that cross the socket.
type countingDialer struct {
	dials         atomic.Int64
	sent, recvd   atomic.Int64
	fail          atomic.Int64 // dials left to refuse
	refusedTarget string       // a closed port that refuses connections
}

func (d *countingDialer) Dial(addr string) (net.Conn, error) {
	d.dials.Add(1)
	if d.fail.Load() > 0 {
		d.fail.Add(-1)
		addr = d.refusedTarget
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, d: d}, nil
}

type countingConn struct {
	net.Conn
	d *countingDialer
}

// SyscallConn lets the client peek at the socket under the count.
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.d.recvd.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.d.sent.Add(int64(n))
	return n, err
}

// closedAddr returns an address on 127.0.0.1 nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
