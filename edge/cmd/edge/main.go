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
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

// run starts the node and serves until ctx ends. The line "edge: serving"
// in the log names the addresses actually bound, so tests can use port 0.
func run(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	path := fs.String("config", "edge.yaml", "config file")
	cacheDir := fs.String("compilation-cache", wasmbuild.CompilationCacheDir(), "directory for compiled plugins (\"\": none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	cfg, err := edge.LoadConfig(*path)
	if err != nil {
		return err
	}
	n, err := edge.New(ctx, cfg, edge.Options{Logger: log, CompilationCache: *cacheDir})
	if err != nil {
		return err
	}
	var agent *fleet.Agent
	if cfg.Fleet.NATS != "" {
		if agent, err = fleet.New(n, fleet.Options{URL: cfg.Fleet.NATS, Region: cfg.Region, POP: cfg.POP,
			Trust: cfg.Fleet.TrustStore(), Dir: cfg.Fleet.StateDir, Logger: log}); err != nil {
			return err
		}
		if err := agent.Restore(ctx); err != nil {
			return err
		}
	}
	reload := func() error {
		cfg, err := edge.LoadConfig(*path)
		if err != nil {
			return err
		}
		return n.Reload(ctx, cfg)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	errc := make(chan error, 2)
	go func() { errc <- n.Serve(ln) }()
	tlsAddr := "off"
	if cfg.TLS.Listen != "" {
		tln, err := net.Listen("tcp", cfg.TLS.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls listen: %w", err)
		}
		tlsAddr = tln.Addr().String()
		go func() { errc <- n.ServeTLS(tln) }()
	}
	adminAddr := "off"
	var admin *http.Server
	if cfg.Admin.Listen != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
		adminAddr = aln.Addr().String()
		admin = &http.Server{Handler: n.AdminHandler(reload), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- admin.Serve(aln) }()
	}
	if agent != nil {
		go agent.Run(ctx)
	}
	log.Info("edge: serving", "listen", ln.Addr().String(), "tls", tlsAddr, "admin", adminAddr, "pop", cfg.POP, "region", cfg.Region)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := reload(); err != nil {
				log.Error("edge: reload failed; still serving the previous config", "err", err)
			} else {
				log.Info("edge: reloaded", "config", *path)
			}
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if admin != nil {
				admin.Shutdown(sctx)
			}
			return n.Shutdown(sctx)
		}
	}
}
