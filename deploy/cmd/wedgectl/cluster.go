// The control plane on a NATS cluster: `control --cluster` (one member per
// machine), `up --ha` (three members in this process) and `control leaf`
// (a region's leaf node).

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/monitoring"
	"github.com/talowa/wedge/internal/listeners"
)

// controlPlane is the embedded server or cluster that `up` and `control
// --embedded` run.
type controlPlane interface {
	URL() string
	Connect(name string) (*nats.Conn, error)
	Shutdown()
}

// memberFlags are `control --embedded`'s flags for the server it runs.
type memberFlags struct {
	listen, name, cluster, clusterListen, leafListen, authDir, tlsHosts *string
}

func addMemberFlags(fs *flag.FlagSet) *memberFlags {
	host, _ := os.Hostname()
	return &memberFlags{
		listen: fs.String("listen", "127.0.0.1:4222", "with --embedded: the client `ADDR` POPs and wedgectl connect to"),
		name:   fs.String("name", host, "with --cluster: this member's `NAME`, unique in the cluster"),
		cluster: fs.String("cluster", "", "with --embedded: be a member of the cluster whose members' route URLs are `ROUTES`, "+
			"e.g. nats-route://cp-1:6222,nats-route://cp-2:6222,nats-route://cp-3:6222 (the same list on every member)"),
		// Loopback unless told: a member is only as safe as the auth
		// directory every member shares (routes need its CA's certificate).
		clusterListen: fs.String("cluster-listen", "127.0.0.1:6222", "with --cluster: the `ADDR` the other members route to"),
		leafListen:    fs.String("leaf-listen", "", "with --embedded: accept regions' leaf nodes (control leaf) on `ADDR`, e.g. 0.0.0.0:7422"),
		authDir: fs.String("auth", "", "with --embedded: the auth `DIR` (keys, CA, credentials), created on first start; "+
			"the same on every member of a cluster: copy it (default DIR/auth of --embedded)"),
		tlsHosts: fs.String("tls-hosts", "", "with --embedded: `HOSTS` (comma-separated) the servers' certificate names besides localhost and 127.0.0.1, "+
			"when the auth directory is created: every member's (a leaf's go in its leaf bundle)"),
	}
}

// check refuses the server's flags without --embedded DIR, where there
// is no server for them.
func (m *memberFlags) check(fs *flag.FlagSet, embeddedDir string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen", "name", "cluster", "cluster-listen", "leaf-listen", "auth", "tls-hosts":
			if embeddedDir == "" {
				err = fmt.Errorf("control: --%s needs --embedded DIR", f.Name)
			}
		}
	})
	return err
}

// options are the embedded server's, keeping its files in dir, with its
// auth directory loaded (and created, on first start).
func (m *memberFlags) options(dir string, stdout io.Writer) (embedded.Options, error) {
	o := embedded.Options{Dir: dir, Listen: *m.listen, LeafListen: *m.leafListen}
	if *m.cluster != "" {
		o.Name = *m.name
		o.Cluster = &embedded.ClusterOptions{Listen: *m.clusterListen, Routes: splitList(*m.cluster)}
	}
	authDir := *m.authDir
	if authDir == "" {
		authDir = filepath.Join(dir, "auth")
	}
	var err error
	o.Auth, err = initAuth(authDir, *m.tlsHosts, stdout)
	return o, err
}

// splitList splits a comma-separated list of URLs, trimming the spaces
// around each ("a, b" as "a,b").
func splitList(s string) []string {
	out := strings.Split(s, ",")
	for i, u := range out {
		out[i] = strings.TrimSpace(u)
	}
	return out
}

// haListen is the client addresses of `up --ha`'s three members: addr and
// the next two ports (all port 0 when addr's is).
func haListen(addr string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--nats %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65533 {
		return nil, fmt.Errorf("--nats %q: bad port", addr)
	}
	out := make([]string, 3)
	for i := range out {
		if p != 0 {
			port = strconv.Itoa(p + i)
		}
		out[i] = net.JoinHostPort(host, port)
	}
	return out, nil
}

// controlLeaf runs a region's leaf node until interrupted: the server the
// region's POPs connect to, which carries their traffic to the cluster.
func controlLeaf(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control leaf", flag.ContinueOnError)
	hub := fs.String("hub", "", "the cluster members' leaf URLs, `URLS`, e.g. nats-leaf://cp-1:7422,nats-leaf://cp-2:7422,nats-leaf://cp-3:7422")
	listen := fs.String("listen", "127.0.0.1:4222", "the client `ADDR` the region's POPs connect to")
	host, _ := os.Hostname()
	name := fs.String("name", host+"-leaf", "the leaf server's `NAME`")
	authDir := fs.String("auth", "", "the leaf bundle `DIR` (control leaf-bundle): the leaf checks its clients' credentials and links with its leaf credential")
	httpAddr := fs.String("http", "", "serve /metrics on `ADDR`, e.g. 127.0.0.1:9090: when the leaf's certificate expires (the leaf holds no buckets)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *hub == "" || *authDir == "" {
		return fmt.Errorf("control leaf: want --hub URLS, --auth DIR and no arguments")
	}
	m, err := auth.LoadLeaf(*authDir)
	if err != nil {
		return fmt.Errorf("control leaf: %w", err)
	}
	srv, err := embedded.Start(embedded.Options{Listen: *listen, Name: *name, Hub: splitList(*hub), Auth: m})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	if *httpAddr != "" {
		// Bind first: a busy port is an error now, not a log line later.
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("control leaf: --http %s: %w", *httpAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", monitoring.Handler(nil, m.TLS))
		hs := listeners.SideServer(mux)
		go hs.Serve(listeners.SideListener(ln))
		defer hs.Close()
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", ln.Addr())
	}
	fmt.Fprintf(stdout, "leaf node on %s, linked to %s; interrupt to stop\n", srv.URL(), *hub)
	<-ctx.Done()
	return nil
}

// ensure creates the buckets, or updates their configs. On a cluster (srv
// is the member this process runs, nil otherwise) only the JetStream
// leader creates and updates them, and the other members open them once
// they exist: members started together would otherwise create each bucket
// at the same moment, and JetStream (nats-server 2.15) leaves such
// concurrent requests for one stream unanswered. Each try is bounded and
// tried again, for as long as ctx lasts: until three members run there is
// nowhere to place three copies, and a request made while a leader is
// being elected may go unanswered.
func ensure(ctx context.Context, srv *embedded.Server, nc *nats.Conn, stdout io.Writer) (*controlplane.Stores, error) {
	if srv == nil {
		return controlplane.Ensure(ctx, nc)
	}
	fmt.Fprintf(stdout, "%s: waiting for the cluster\n", srv.Name())
	if err := srv.WaitReady(ctx); err != nil {
		return nil, err
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var s *controlplane.Stores
		var err error
		if srv.Leader() {
			s, err = controlplane.Ensure(tctx, nc)
		} else if s, err = controlplane.Open(tctx, nc); err == nil && s.Purges == nil {
			err = errors.New("the purge stream is not created yet")
		}
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("control: the cluster's buckets: %w (last try: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// startControlPlane runs `up`'s control plane, keeping its files in dir:
// one server on listen or, with ha, a cluster of three on listen and the
// next two ports, all with the auth directory a.
func startControlPlane(dir, listen string, ha bool, a *auth.Material) (controlPlane, error) {
	if !ha {
		srv, err := embedded.Start(embedded.Options{Dir: dir, Listen: listen, Auth: a})
		if err != nil {
			return nil, err
		}
		return srv, nil
	}
	addrs, err := haListen(listen)
	if err != nil {
		return nil, err
	}
	c, err := embedded.StartCluster(dir, a, addrs...)
	if err != nil {
		return nil, err
	}
	return c, nil
}
