// A whole cluster in one process, for `wedgectl up --ha` and tests.
//
// A real fleet runs one member per machine, each a `wedgectl control
// --embedded DIR --cluster ROUTES` process given the same list of the
// members' route URLs: three processes in one place survive nothing the
// place does not.

package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane/auth"
)

// Cluster is a NATS cluster whose members run in this process.
type Cluster struct {
	auth    *auth.Material // every member's Options.Auth
	mu      sync.Mutex
	opts    []Options // each member's, as it ran: restarts reuse them
	members []*Server // nil while stopped
}

// StartCluster runs a cluster of one member per client address in
// listen (port 0 picks a free one), each keeping its files in
// dir/wedge-<n> and accepting leaf nodes on a free port of its host,
// and waits until JetStream has a leader and every member is current. It
// takes three members or more: a cluster of two could not lose one. a
// (nil: none) is every member's Options.Auth.
func StartCluster(dir string, a *auth.Material, listen ...string) (*Cluster, error) {
	return startCluster(dir, a, listen, freePorts)
}

// startAttempts bounds StartCluster's tries: each loses only if another
// process takes one of the ports it picked before a member binds it.
const startAttempts = 5

// startCluster is StartCluster, picking the route and leaf ports with
// ports. They are fixed before any member starts, since every member's
// routes name every member (JetStream sizes the cluster by that list, so
// members cannot bind port 0 and learn of each other afterwards); a port
// taken in between fails the member's start with "address in use", and
// the cluster is started again on new ports.
func startCluster(dir string, a *auth.Material, listen []string, ports func(hosts []string) ([]string, error)) (*Cluster, error) {
	if len(listen) < 3 {
		return nil, fmt.Errorf("controlplane: a cluster of %d: it takes three members or more", len(listen))
	}
	hosts := make([]string, 0, 2*len(listen))
	for _, l := range listen {
		host, _, err := net.SplitHostPort(l)
		if err != nil {
			return nil, fmt.Errorf("controlplane: listen %q: %w", l, err)
		}
		hosts = append(hosts, host, host) // its route and leaf ports
	}
	for attempt := 1; ; attempt++ {
		addrs, err := ports(hosts)
		if err != nil {
			return nil, err
		}
		c, err := startMembers(dir, a, listen, addrs)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || attempt == startAttempts {
			return c, err
		}
	}
}

// startMembers starts the cluster whose members' route and leaf
// addresses are addrs, two a member.
func startMembers(dir string, a *auth.Material, listen, addrs []string) (*Cluster, error) {
	c := &Cluster{auth: a, opts: make([]Options, len(listen)), members: make([]*Server, len(listen))}
	routes := make([]string, len(listen))
	for i := range listen {
		routes[i] = "nats-route://" + addrs[2*i]
	}
	for i, l := range listen {
		name := fmt.Sprintf("wedge-%d", i+1)
		c.opts[i] = Options{Dir: filepath.Join(dir, name), Listen: l, Name: name,
			LeafListen: addrs[2*i+1], Cluster: &ClusterOptions{Listen: addrs[2*i], Routes: routes}, Auth: a}
	}
	for i := range c.opts {
		if err := c.Restart(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// freePorts returns a port free just now on each of hosts, all different:
// each is held until all are picked.
func freePorts(hosts []string) ([]string, error) {
	out := make([]string, len(hosts))
	for i, host := range hosts {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		defer ln.Close()
		out[i] = ln.Addr().String()
	}
	return out, nil
}

// Members are the cluster's servers, by index; a stopped one is nil.
func (c *Cluster) Members() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Server(nil), c.members...)
}

// URL is every member's client URL, comma-separated: what POPs and
// wedgectl are given, so that they reach the cluster through whichever
// member is up.
func (c *Cluster) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	scheme := "nats://"
	if c.auth != nil {
		scheme = "tls://"
	}
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = scheme + o.Listen
	}
	return strings.Join(urls, ",")
}

// LeafURLs are the members' leaf node URLs, a region's leaf server's Hub.
func (c *Cluster) LeafURLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = "nats-leaf://" + o.LeafListen
	}
	return urls
}

// Index is the index of the member named name, or -1.
func (c *Cluster) Index(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.opts {
		if o.Name == name {
			return i
		}
	}
	return -1
}

// Stop shuts member i down, as losing its machine would (its files stay).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
	}
}

// Restart starts member i, stopped, again on its addresses and files.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members[i] != nil {
		return fmt.Errorf("controlplane: %s is running", c.opts[i].Name)
	}
	s, err := Start(c.opts[i])
	if err != nil {
		return fmt.Errorf("controlplane: %s: %w", c.opts[i].Name, err)
	}
	c.opts[i] = s.opts // with the client port it bound, for the next restart
	c.members[i] = s
	return nil
}

// WaitReady waits until JetStream has a leader among the running members,
// every one of them is current with it, and the leader counts each of them
// as a place for a stream's copy, or ctx ends.
func (c *Cluster) WaitReady(ctx context.Context) error {
	return poll(ctx, "the cluster's JetStream leader, with every member current", c.ready)
}

func (c *Cluster) ready() bool {
	running, places := 0, 0
	for _, s := range c.Members() {
		if s == nil {
			continue
		}
		if !s.ns.JetStreamIsCurrent() {
			return false
		}
		running++
		if s.ns.JetStreamIsLeader() {
			places = len(s.ns.JetStreamClusterPeers())
		}
	}
	return running > 0 && places >= running
}

// Connect dials the cluster by URL, reconnecting to whichever member is
// up for as long as the connection is open: with Auth, as the controller.
func (c *Cluster) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if c.auth != nil {
		opts = append(opts, nats.UserCredentials(auth.CredsFile(c.auth.Dir, auth.Controller)),
			nats.Secure(c.auth.TLS.Client()))
	}
	nc, err := nats.Connect(c.URL(), opts...)
	if err != nil {
		return nil, fmt.Errorf("controlplane: connect: %w", err)
	}
	return nc, nil
}

// Shutdown stops every member.
func (c *Cluster) Shutdown() {
	for i := range c.Members() {
		c.Stop(i)
	}
}
