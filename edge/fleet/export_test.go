package fleet

import (
	"context"

	"github.com/talowa/wedge/deploy/manifest"
)

// Module is module as a restore calls it: with no control plane.
func (a *Agent) Module(ctx context.Context, art *manifest.Artifact) ([]byte, error) {
	return a.module(ctx, art, nil)
}
