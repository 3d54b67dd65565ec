// Package embedded runs Wedge's control plane server in this process: NATS
// with JetStream, its files in a directory, listening on a socket or for
// in-process connections only. `wedgectl up`, `wedgectl control
// --embedded` and tests start one; everything else reaches a control plane
// through deploy/controlplane, by URL or by the in-process connection
// Connect returns.
//
// A server may be one member of a NATS cluster (Options.Cluster: its
// routes to the other members, with JetStream clustered, so that the
// buckets and streams are replicated and losing one member loses nothing),
// or a region's leaf node (Options.Hub), which carries its clients'
// traffic to the cluster and keeps nothing itself. StartCluster runs a
// whole cluster in this process, for `wedgectl up --ha` and tests; a real
// fleet runs one member per machine (cluster.go).
//
// With Options.Auth every link is authenticated and encrypted: clients
// present a credential whose role's permissions the server enforces, over
// TLS; members route to each other over TLS with the CA's certificate; a
// leaf links with the leaf credential (deploy/controlplane/auth). wedgectl
// runs every server it starts so; tests of other things may run without.
// The server's certificate is read again when its files are renewed
// (auth.TLS): each handshake from then on presents the new one, and no
// link is dropped for it.
//
// # Why
//
// The server is a package of its own so that only the processes that run
// a control plane link it: the edge binary imports deploy/controlplane (the
// client) and must not carry nats-server (deploy/internal/importrules
// enforces it).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane/auth"
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
	// Name names the server; it must be unique in its cluster. "" is
	// "wedge".
	Name string
	// Cluster makes the server a member of a cluster; nil runs it alone.
	Cluster *ClusterOptions
	// Hub makes the server a leaf node of the cluster whose leaf node
	// URLs (nats-leaf://host:port) these are: the server for one region,
	// which the region's POPs connect to. A leaf runs no JetStream: its
	// clients' JetStream requests are carried to the cluster, which
	// answers them, so a POP behind a leaf sees the same buckets as one
	// connected to the cluster.
	Hub []string
	// LeafListen accepts leaf nodes (Hub of a region's server) on this
	// address; port 0 picks a free one; "" accepts none.
	LeafListen string
	// Auth, when set, makes every link authenticated and encrypted:
	// clients need a credential (deploy/controlplane/auth's roles) and
	// TLS, routes a certificate from the CA, a leaf's link the Leaf
	// credential (auth.go); a leaf node runs with auth.LoadLeaf's. nil
	// runs an open server, for tests of other things and in-process use
	// only.
	Auth *auth.Material
}

// ClusterOptions make a server a member of a NATS cluster with JetStream
// clustered.
type ClusterOptions struct {
	// Name is the cluster's, the same on every member; "" is "wedge".
	Name string
	// Listen is the address the other members route to, e.g.
	// 10.0.0.1:6222 (without Options.Auth routes are not authenticated:
	// a private network only); port 0 picks a free one.
	Listen string
	// Routes are the route URLs of every member, e.g.
	// nats-route://10.0.0.1:6222; a member's own is ignored, so every
	// member can be given the same list. JetStream sizes its cluster by
	// this list: it must name every member, three or more.
	Routes []string
}

// Domain is the JetStream domain of a cluster's members and of a server
// that accepts leaf nodes: a leaf's clients reach JetStream there under
// $JS.wedge.API.
const Domain = auth.Domain

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns   *server.Server
	opts Options // as run: Dir set, every port 0 resolved
	tmp  string  // removed on Shutdown
}

// Start runs an embedded server and waits until it accepts connections.
// The buckets are not created: controlplane.Ensure does that. A cluster
// member returns before the cluster has formed: JetStream answers once a
// majority of the members are up (Cluster.WaitReady waits for it).
func Start(opts Options) (*Server, error) {
	if opts.Auth != nil {
		// Every client would refuse it, each with an x509 error of its
		// own, far from the cause.
		if err := opts.Auth.TLS.Check(); err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
	}
	s := &Server{}
	if opts.Dir == "" {
		var err error
		if s.tmp, err = os.MkdirTemp("", "wedge-nats-"); err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		opts.Dir = s.tmp
	}
	so, err := serverOptions(&opts)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.opts = opts
	ns, err := server.NewServer(so)
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	s.ns = ns
	if len(opts.Hub) > 0 {
		// The leaf's clients use the JetStream API and the buckets'
		// subjects as if JetStream were here: the cluster's answers them
		// under its domain, for which NATS carries them across (it keeps
		// the plain ones on their side of a leaf connection).
		acc := ns.GlobalAccount()
		if opts.Auth != nil {
			if acc, err = ns.LookupAccount(opts.Auth.Account); err != nil {
				s.cleanup()
				return nil, fmt.Errorf("controlplane: %w", err)
			}
		}
		for src, dest := range map[string]string{
			"$JS.API.>": "$JS." + Domain + ".API.>",
			"$KV.>":     "$JS." + Domain + ".API.$KV.>",
			"$O.>":      "$JS." + Domain + ".API.$O.>",
		} {
			if err := acc.AddMapping(src, dest); err != nil {
				s.cleanup()
				return nil, fmt.Errorf("controlplane: %w", err)
			}
		}
	}
	fatal := &fatalLog{}
	ns.SetLoggerV2(fatal, false, false, false)
	go ns.Start()
	for deadline := time.Now().Add(10 * time.Second); !ns.ReadyForConnections(25 * time.Millisecond); {
		if err := fatal.failed(); err != nil {
			s.Shutdown()
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, errors.New("controlplane: embedded NATS server did not start within 10s")
		}
	}
	if opts.Auth != nil {
		// Loaded now, the account is one a claims update reaches
		// (auth.PushAccount, which withdraws credentials): a server
		// that had not loaded it yet would skip the update and load it
		// later as it started, without the revocations.
		if _, err := ns.LookupAccount(opts.Auth.Account); err != nil {
			s.Shutdown()
			return nil, fmt.Errorf("controlplane: %w", err)
		}
	}
	if opts.Listen != "" {
		s.opts.Listen = ns.Addr().String() // port 0 resolved, for a restart
	}
	return s, nil
}

// serverOptions translates opts, resolving the cluster's and the leaf
// listener's port 0 to free ports first: a member restarted with the
// options it ran with must come back where its peers route to.
func serverOptions(opts *Options) (*server.Options, error) {
	so := &server.Options{
		ServerName: opts.Name,
		JetStream:  len(opts.Hub) == 0,
		StoreDir:   opts.Dir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: opts.Listen == "",
		// A module is one message per 128 KiB chunk; records are small.
		MaxPayload: 1 << 20,
	}
	if so.ServerName == "" {
		so.ServerName = "wedge"
	}
	var err error
	if opts.Listen != "" {
		if so.Host, so.Port, err = hostPort("listen", opts.Listen); err != nil {
			return nil, err
		}
		if so.Port == 0 {
			so.Port = server.RANDOM_PORT
		}
	}
	if opts.Cluster != nil {
		c := *opts.Cluster // resolved below, not in the caller's copy
		opts.Cluster = &c
		if len(c.Routes) < 3 {
			return nil, fmt.Errorf("controlplane: a cluster member needs the routes of every member, three or more (a cluster of %d could not lose one): got %q", len(c.Routes), c.Routes)
		}
		if c.Listen, err = resolvePort(c.Listen); err != nil {
			return nil, fmt.Errorf("controlplane: cluster listen: %w", err)
		}
		so.Cluster.Name = c.Name
		if so.Cluster.Name == "" {
			so.Cluster.Name = "wedge"
		}
		if so.Cluster.Host, so.Cluster.Port, err = hostPort("cluster listen", c.Listen); err != nil {
			return nil, err
		}
		if so.Routes, err = parseURLs("route", c.Routes, "nats-route"); err != nil {
			return nil, err
		}
	}
	if opts.Cluster != nil || opts.LeafListen != "" {
		// Every member of a cluster has the same, whether it takes leaf
		// nodes or not.
		so.JetStreamDomain = Domain
	}
	if opts.LeafListen != "" {
		if opts.LeafListen, err = resolvePort(opts.LeafListen); err != nil {
			return nil, fmt.Errorf("controlplane: leaf listen: %w", err)
		}
		if so.LeafNode.Host, so.LeafNode.Port, err = hostPort("leaf listen", opts.LeafListen); err != nil {
			return nil, err
		}
	}
	if len(opts.Hub) > 0 {
		urls, err := parseURLs("hub", opts.Hub, "nats-leaf")
		if err != nil {
			return nil, err
		}
		so.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: urls}}
		// A leaf dials the hub again at once when a member goes: the
		// default waits a second.
		so.LeafNode.ReconnectInterval = 250 * time.Millisecond
	}
	if opts.Auth != nil {
		secure(so, opts.Auth)
	}
	return so, nil
}

// tlsTimeout bounds a TLS handshake: the default, half a second, is
// short for a loaded machine.
const tlsTimeout = 5

// secure turns on operator-mode authentication and TLS on every link it
// serves: clients and leaf nodes present a credential signed by the
// account key (their permissions are in it), routes a certificate from
// the CA, and a leaf's link to its hub the Leaf credential.
func secure(so *server.Options, a *auth.Material) {
	so.TrustedOperators = []*jwt.OperatorClaims{a.Operator}
	so.SystemAccount = a.System
	res := &server.MemAccResolver{}
	for _, accounts := range []map[string]string{a.AccountJWT, a.SystemJWT} {
		for pub, tok := range accounts {
			res.Store(pub, tok)
		}
	}
	so.AccountResolver = res
	so.TLSConfig, so.TLSTimeout = a.TLS.Server(), tlsTimeout
	if so.Cluster.Port != 0 {
		so.Cluster.TLSConfig, so.Cluster.TLSTimeout = a.TLS.Route(), tlsTimeout
	}
	if so.LeafNode.Port != 0 {
		so.LeafNode.TLSConfig, so.LeafNode.TLSTimeout = a.TLS.Server(), tlsTimeout
	}
	for _, r := range so.LeafNode.Remotes {
		r.Credentials = auth.CredsFile(a.Dir, auth.Leaf)
		r.LocalAccount = a.Account
		r.TLS, r.TLSConfig, r.TLSTimeout = true, a.TLS.Client(), tlsTimeout
	}
}

func hostPort(what, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("controlplane: %s %q: %w", what, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("controlplane: %s %q: bad port", what, addr)
	}
	return host, n, nil
}

// resolvePort turns host:0 into host:<a port free just now>; any other
// address is returned as it is.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// parseURLs parses route or leaf URLs; a bare host:port gets scheme.
func parseURLs(what string, list []string, scheme string) ([]*url.URL, error) {
	out := make([]*url.URL, 0, len(list))
	for _, s := range list {
		if !strings.Contains(s, "://") {
			s = scheme + "://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" || u.Port() == "" {
			return nil, fmt.Errorf("controlplane: %s %q: want %s://HOST:PORT", what, s, scheme)
		}
		out = append(out, u)
	}
	return out, nil
}

func (s *Server) cleanup() {
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}

// Name is the server's name, as its cluster and JetStream know it.
func (s *Server) Name() string { return s.ns.Name() }

// URL is the address clients in other processes connect to ("" when the
// server listens in-process only).
func (s *Server) URL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// WaitReady waits until the server's JetStream answers, or ctx ends: at
// once on a server alone, and on a cluster member once a majority of the
// members have elected a leader and this one is current with it.
func (s *Server) WaitReady(ctx context.Context) error {
	return poll(ctx, "JetStream on "+s.Name(), s.ns.JetStreamIsCurrent)
}

// Leader reports whether the server leads its cluster's JetStream (the
// group that creates and places every stream); a server alone leads its
// own.
func (s *Server) Leader() bool { return s.ns.JetStreamIsLeader() }

// poll waits until ready says so, or ctx ends.
func poll(ctx context.Context, what string, ready func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("controlplane: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Connect opens an in-process connection, which needs no socket: with
// Auth, as the controller.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.InProcessServer(s.ns), nats.Name(name)}
	if s.opts.Auth != nil {
		opts = append(opts, nats.UserCredentials(auth.CredsFile(s.opts.Auth.Dir, auth.Controller)))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("controlplane: connect: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits for it. To a cluster it is a lost
// member: nothing is handed over first.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.cleanup()
}
