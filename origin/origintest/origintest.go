// Package origintest runs an origin service for one test, in the manner of
// net/http/httptest: a real origin.Server on a loopback port, sealing its
// answers under a key the test's edge shares, stopped when the test ends.
//
// Edges reach it as they reach any origin: put [Key] in the edge's config
// (`key: Key.Text()`) and the server's Addr in its `addr`.
package origintest

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/wire"
)

// Key is the key a codec of this package signs under when the test names
// none: what an origin started here and the test's edge share.
var Key = wire.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)}

// NewCodec returns a codec for cfg, closed when the test ends. A cfg
// without keys gets [Key].
func NewCodec(t testing.TB, cfg wire.Config) *wire.Codec {
	t.Helper()
	if len(cfg.Keys) == 0 {
		cfg.Keys = []wire.Key{Key}
	}
	c, err := wire.NewCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// OK answers every request with an empty 200: the origin of a test whose
// subject is in front of it.
var OK origin.Handler = origin.HandlerFunc(func(_ context.Context, _ *wire.Request, resp *wire.Response) { resp.Status = 200 })

// shutdownGuard bounds the wait for exchanges in progress when a server
// closes: only a handler that never returns reaches it.
const shutdownGuard = time.Minute

// Server is an origin service that [Start] or [StartConfig] started.
type Server struct {
	*origin.Server
	// Addr is the host:port it listens on, on 127.0.0.1.
	Addr string
	// Codec is the codec it opens requests and seals answers with.
	Codec *wire.Codec

	close func()
}

// Start serves h with a codec under [Key] on a new loopback port until
// the test ends.
func Start(t testing.TB, h origin.Handler) *Server {
	t.Helper()
	return StartConfig(t, origin.ServerConfig{Handler: h}, nil)
}

// StartConfig serves cfg on ln until the test ends. A nil cfg.Codec is
// one under [Key]; a nil ln is a new loopback port. A test that stops the
// origin before it ends (an origin that goes away) calls Close.
func StartConfig(t testing.TB, cfg origin.ServerConfig, ln net.Listener) *Server {
	t.Helper()
	if cfg.Codec == nil {
		cfg.Codec = NewCodec(t, wire.Config{})
	}
	srv, err := origin.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s := &Server{Server: srv, Addr: ln.Addr().String(), Codec: cfg.Codec}
	s.close = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGuard)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("origintest: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("origintest: %v", err)
		}
	})
	t.Cleanup(s.close)
	return s
}

// Close stops the server: it stops accepting, closes idle connections and
// waits for the exchanges in progress to be answered. It may be called
// more than once.
func (s *Server) Close() { s.close() }
