package fleet

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/manifest"
)

// Module is module as a restore calls it: with no control plane.
func (a *Agent) Module(ctx context.Context, art *manifest.Artifact) ([]byte, error) {
	return a.module(ctx, art, nil)
}

// PeersAt is Peers as it would be at now.
func (a *Agent) PeersAt(now time.Time) []Peer { return a.peers(now) }

// LinkLost is the link's disconnect handler.
func (a *Agent) LinkLost(nc *nats.Conn, err error) { a.linkLost(nc, err) }
