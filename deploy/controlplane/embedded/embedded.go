// Package embedded runs Wedge's control plane server in this process: NATS
// with JetStream, its files in a directory, listening on a socket or for
// in-process connections only. `wedgectl up`, `wedgectl control
// --embedded` and tests start one; everything else reaches a control plane
// through deploy/controlplane, by URL or by the in-process connection
// Connect returns.
//
// # Why
//
// The server is a package of its own so that only the processes that run
// a control plane link it: the edge binary imports deploy/controlplane (the
// client) and must not carry nats-server (deploy/internal/importrules
// enforces it).
package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure an embedded server.
type Options struct {
	// Dir keeps JetStream's files; "" uses a temporary directory that
	// Shutdown removes.
	Dir string
	// Listen is the client address edges and wedgectl connect to, e.g.
	// 127.0.0.1:4222; port 0 picks a free one; "" accepts in-process
	// connections only.
	Listen string
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns  *server.Server
	tmp string // removed on Shutdown
}

// Start runs an embedded server and waits until it accepts connections.
// The buckets are not created: controlplane.Ensure does that.
func Start(opts Options) (*Server, error) {
	s := &Server{}
	if opts.Dir == "" {
		var err error
		if s.tmp, err = os.MkdirTemp("", "wedge-nats-"); err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		opts.Dir = s.tmp
	}
	so := &server.Options{
		ServerName: "wedge",
		JetStream:  true,
		StoreDir:   opts.Dir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: opts.Listen == "",
		// A module is one message per 128 KiB chunk; records are small.
		MaxPayload: 1 << 20,
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			s.cleanup()
			return nil, fmt.Errorf("controlplane: listen %q: %w", opts.Listen, err)
		}
		so.Host = host
		if so.Port, err = strconv.Atoi(port); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("controlplane: listen %q: bad port", opts.Listen)
		}
		if so.Port == 0 {
			so.Port = server.RANDOM_PORT
		}
	}
	ns, err := server.NewServer(so)
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	s.ns = ns
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("controlplane: embedded NATS server did not start within 10s")
	}
	return s, nil
}

func (s *Server) cleanup() {
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}

// URL is the address clients in other processes connect to ("" when the
// server listens in-process only).
func (s *Server) URL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Connect opens an in-process connection, which needs no socket.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s.ns), nats.Name(name))
	if err != nil {
		return nil, fmt.Errorf("controlplane: connect: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.cleanup()
}
