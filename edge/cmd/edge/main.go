// Command edge runs a Wedge edge node (a POP) from a YAML config:
//
//	edge -config edge.yaml
//
// SIGHUP, or POST /reload on the admin listener, reloads the routes, plugin
// chains and origins from the same file without dropping requests; SIGINT or
// SIGTERM drains and stops. See package edge for the config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/talowa/wedge/edge/pop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := pop.Main(ctx, os.Args[1:], os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}
