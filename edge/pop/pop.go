// Package pop is an edge node's process: it loads the config, serves the
// HTTP, HTTPS and admin listeners, reloads on SIGHUP and the admin call,
// joins the control plane when the config has a fleet section, and drains
// on shutdown. edge/cmd/edge and `wedgectl edge` both run it, so the POP
// an operator deploys and the one `wedgectl up` starts are the same code.
package pop

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

// Run starts the node and serves until ctx ends. The line "edge: serving"
// in the log names the addresses actually bound, so tests can use port 0.
func Run(ctx context.Context, args []string, logOut io.Writer) error {
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
	// The agent stops before the node shuts down, so it cannot apply a
	// state to a node that is closing.
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		if agent == nil {
			return
		}
		if err := agent.Run(agentCtx); err != nil {
			log.Error("edge: fleet agent stopped; serving the current plugins", "err", err)
		}
	}()
	defer func() { stopAgent(); <-agentDone }()
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
			stopAgent()
			<-agentDone
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if admin != nil {
				admin.Shutdown(sctx)
			}
			return n.Shutdown(sctx)
		}
	}
}
