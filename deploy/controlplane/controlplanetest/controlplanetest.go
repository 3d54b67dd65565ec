// Package controlplanetest runs a control plane for one test, in the
// manner of net/http/httptest: an embedded NATS JetStream server with the
// buckets and the audit stream created, or a cluster of three, stopped
// when the test ends.
package controlplanetest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
)

// Start runs an embedded control plane with opts (the zero Options: a
// temporary directory, in-process connections only), creates its buckets
// and returns the server and the buckets, opened over an in-process
// connection (s.JS.Conn()). The test's cleanup closes the connection, then
// shuts the server down.
func Start(t testing.TB, opts embedded.Options) (*embedded.Server, *controlplane.Stores) {
	t.Helper()
	srv, err := embedded.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// Bounds a hang, not a measure: creating the buckets takes
	// milliseconds.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := controlplane.Ensure(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	return srv, s
}

// Auth creates an auth directory (deploy/controlplane/auth) in a
// temporary directory, for Options.Auth: servers given it take only
// credentials it minted, over TLS.
func Auth(t testing.TB) *auth.Material {
	t.Helper()
	m, err := auth.Init(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// StartCluster runs a cluster of three embedded servers on loopback (the
// buckets are not created) and returns it with a connection to it, which
// moves to another member when its own stops. The test's cleanup closes
// the connection, then shuts the cluster down.
func StartCluster(t testing.TB) (*embedded.Cluster, *nats.Conn) {
	t.Helper()
	c, err := embedded.StartCluster(t.TempDir(), nil, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	nc, err := c.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return c, nc
}
