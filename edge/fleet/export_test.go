package fleet

import (
	"context"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// Module is module as a restore calls it: with no control plane.
func (a *Agent) Module(ctx context.Context, art *manifest.Artifact) ([]byte, error) {
	return a.module(ctx, art, nil)
}

// PeersAt is Peers as it would be at now.
func (a *Agent) PeersAt(now time.Time) []Peer { return a.peers(now) }
