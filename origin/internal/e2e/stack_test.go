package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// stack is one edge client talking to one origin service that proxies to
// upstream HTTP servers: the whole origin link, on real loopback sockets.
type stack struct {
	client     *originclient.Client
	edgeCodec  *wire.Codec
	origin     *origin.Server
	originAddr string
	originReg  *prometheus.Registry
	edgeReg    *prometheus.Registry
	link       *counter // bytes between the edge client and the origin
}

type stackOpts struct {
	dicts     [][]byte
	dict      uint32
	proxy     origin.ProxyConfig
	handler   origin.Handler // instead of a Proxy
	client    func(*originclient.Config)
	maxFrame  int
	originCfg func(*origin.ServerConfig)
	listener  func(net.Listener) net.Listener // wraps the origin's listener
}

func newStack(tb testing.TB, o stackOpts) *stack {
	tb.Helper()
	s := &stack{originReg: prometheus.NewRegistry(), edgeReg: prometheus.NewRegistry(), link: new(counter)}
	originCodec := origintest.NewCodec(tb, wire.Config{Dicts: o.dicts, MaxEnvelope: o.maxFrame})
	s.edgeCodec = origintest.NewCodec(tb, wire.Config{Dicts: o.dicts, Dict: o.dict, MaxEnvelope: o.maxFrame})
	om := origin.NewMetrics(s.originReg)
	h := o.handler
	if h == nil {
		o.proxy.Metrics = om
		p, err := origin.NewProxy(o.proxy)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(p.Close)
		h = p
	}
	cfg := origin.ServerConfig{Codec: originCodec, Handler: h, Metrics: om}
	if o.originCfg != nil {
		o.originCfg(&cfg)
	}
	ln := listen(tb)
	var l net.Listener = countingListener{ln, s.link}
	if o.listener != nil {
		l = o.listener(l)
	}
	s.origin, s.originAddr = origintest.StartConfig(tb, cfg, l).Server, ln.Addr().String()
	ccfg := originclient.Config{Addr: s.originAddr, Codec: s.edgeCodec, Metrics: originclient.NewMetrics(s.edgeReg)}
	if o.client != nil {
		o.client(&ccfg)
	}
	client, err := originclient.New(ccfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.client = client
	tb.Cleanup(s.client.Close)
	return s
}

// do sends req with a budget and fails the test on error.
func (s *stack) do(tb testing.TB, budget time.Duration, req *wire.Request) *wire.Response {
	tb.Helper()
	resp := new(wire.Response)
	if err := s.client.Do(time.Now().Add(budget), req, resp); err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	return resp
}

func newRequest(method, path string) *wire.Request {
	path, query, _ := strings.Cut(path, "?")
	return &wire.Request{Method: wire.Bytes(method), Scheme: wire.Bytes("https"), Host: wire.Bytes("shop.example.com"),
		Path: wire.Bytes(path), Query: wire.Bytes(query), Client: wire.Bytes("203.0.113.9"), POP: wire.Bytes("fra1"),
		Region: wire.Bytes("eu-west")}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type originProxy = origin.ProxyConfig

func dialRaw(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
