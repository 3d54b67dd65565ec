// Package pop is an edge node's process: one POP wired from its config, the
// node, its fleet agent and its listeners, started and stopped in one order.
//
// New builds the node (edge), the agent that joins the control plane when
// the config has a fleet section (edge/fleet), and binds the HTTP, HTTPS
// and admin listeners; Run serves until its context ends and then shuts it
// all down. Main is the edge command on top of them: flags, the config
// file, and reloading on SIGHUP or the admin call. edge/cmd/edge and
// `wedgectl edge` run Main, `wedgectl up` and the fleet tests call New and
// Run, so the POP an operator deploys, the one `wedgectl up` starts and the
// ones the tests run are the same code.
//
// # Why this shutdown order
//
// The agent stops first, so it cannot apply a desired state to a node that
// is closing (and a prefetch it started finishes its compile before the
// node's runtime closes). The admin listener goes next, so no reload or
// purge it serves runs against a closing node. Last the node stops
// accepting, drains the requests in flight and closes its plugins. The
// drain is what clients feel, so the admin server's connections are closed
// rather than drained: that ends the context of a call in flight (a CPU
// profile stops early), and Run waits for such calls to return before it
// closes the node.
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
	"sync"
	"syscall"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/fleet"
	"github.com/talowa/wedge/internal/listeners"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// drainTimeout bounds how long Run waits for requests in flight once it
// stops; requests still running then finish on their own (edge.Node
// keeps what they hold open), without Run.
const drainTimeout = 30 * time.Second

// Options are what a POP needs besides its config.
type Options struct {
	// Logger receives the node's and the agent's logs; nil discards them.
	Logger *slog.Logger
	// CompilationCache is a directory for compiled plugins; "" keeps them
	// in memory only.
	CompilationCache string
	// Reload returns the config that SIGHUP and the admin listener's
	// POST /reload apply: the config file, read again. nil turns reloading
	// off and leaves SIGHUP alone, as a POP sharing its process with
	// others (`wedgectl up`, tests) must not take the process's signals.
	Reload func() (*edge.Config, error)
	// Report is how often the fleet agent reports the POP's status; 0
	// keeps the agent's default. Tests shorten it.
	Report time.Duration
}

// POP is one edge node with its agent and listeners. Run it once.
type POP struct {
	cfg   *edge.Config
	opts  Options
	log   *slog.Logger
	node  *edge.Node
	agent *fleet.Agent // nil without a fleet section
	// The listeners New bound; tls, admin and tier (the regional cache
	// tier's) are nil when the config turns them off.
	http, tls, admin, tier net.Listener
}

// New builds the POP of cfg and binds its listeners, so its addresses are
// known before it serves. With a fleet section it restores the state the
// control plane last set from disk first, so a restarted POP never serves
// older plugins than it did.
func New(ctx context.Context, cfg *edge.Config, opts Options) (_ *POP, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := edge.New(ctx, cfg, edge.Options{Logger: log, CompilationCache: opts.CompilationCache})
	if err != nil {
		return nil, err
	}
	p := &POP{cfg: cfg, opts: opts, log: log, node: n}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if cfg.Fleet.NATS != "" {
		if p.agent, err = fleet.New(n, fleet.Options{URL: cfg.Fleet.NATS, Region: cfg.Region, POP: cfg.POP,
			Trust: cfg.Fleet.TrustStore(), Control: cfg.Fleet.ControlStore(), Unsigned: cfg.Fleet.UnsignedDesired, Dir: cfg.Fleet.StateDir, Report: opts.Report, Logger: log,
			Security: controlplane.Security{Creds: cfg.Fleet.Creds, CA: cfg.Fleet.CA}}); err != nil {
			return nil, err
		}
		if err = p.agent.Restore(ctx); err != nil {
			return nil, err
		}
	}
	if p.http, err = listen("listen", cfg.Listen); err != nil {
		return nil, err
	}
	if cfg.Tier.Listen != "" {
		if p.tier, err = listen("tier listen", cfg.Tier.Listen); err != nil {
			return nil, err
		}
	}
	if p.agent != nil && p.tier != nil {
		// Peers reach a POP at its tier listener; one without reports
		// no address, and is no member of the tier.
		peer := peerAddr(cfg.Advertise, p.tier.Addr())
		if peer == "" {
			log.Warn("edge: the tier listener is on a wildcard address, which peers cannot dial; no peer address is reported: set advertise",
				"listen", p.tier.Addr().String())
		}
		p.agent.SetPeer(peer)
		// The tier owns keys over the POPs the agent sees reporting.
		p.agent.OnPeers(func(view []fleet.Peer) {
			peers := make([]edge.Peer, len(view))
			for i, v := range view {
				peers[i] = edge.Peer{POP: v.POP, Region: v.Region, Addr: v.Addr, Self: v.Self}
			}
			p.node.SetPeers(peers)
		})
	}
	if cfg.TLS.Listen != "" {
		if p.tls, err = listen("tls listen", cfg.TLS.Listen); err != nil {
			return nil, err
		}
	}
	if cfg.Admin.Listen != "" {
		if p.admin, err = listen("admin listen", cfg.Admin.Listen); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// peerAddr is the address the POP reports for its peers to reach it at:
// advertise if set, else the listener's as bound, but "" for a wildcard.
func peerAddr(advertise string, bound net.Addr) string {
	if advertise != "" {
		return advertise
	}
	if a, ok := bound.(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		return ""
	}
	return bound.String()
}

func listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pop: %s: %w", what, err)
	}
	return ln, nil
}

// close undoes a New that failed half way.
func (p *POP) close() {
	for _, ln := range []net.Listener{p.http, p.tls, p.admin, p.tier} {
		if ln != nil {
			ln.Close()
		}
	}
	p.node.Shutdown(context.Background())
}

// Node is the POP's edge node.
func (p *POP) Node() *edge.Node { return p.node }

// Addr is the HTTP listener's address.
func (p *POP) Addr() net.Addr { return p.http.Addr() }

// TierAddr is the tier listener's address, nil when it is off.
func (p *POP) TierAddr() net.Addr {
	if p.tier == nil {
		return nil
	}
	return p.tier.Addr()
}

// AdminAddr is the admin listener's address, nil when it is off.
func (p *POP) AdminAddr() net.Addr {
	if p.admin == nil {
		return nil
	}
	return p.admin.Addr()
}

// Run serves until ctx ends or a listener fails, then shuts the POP down
// in the order the package doc gives, within drainTimeout. It returns once
// everything it started has stopped: the error is a listener's failure or
// the shutdown's, nil after a clean stop. The line "edge: serving" in the
// log names the addresses bound, for whoever reads the log (a process
// that started this one, tests of Main).
func (p *POP) Run(ctx context.Context) error {
	errc := make(chan error, 4)
	serving := 0
	serve := func(f func() error) {
		serving++
		go func() { errc <- f() }()
	}
	serve(func() error { return p.node.Serve(p.http) })
	if p.tls != nil {
		serve(func() error { return p.node.ServeTLS(p.tls) })
	}
	if p.tier != nil {
		serve(func() error { return p.node.ServeTier(p.tier) })
	}
	var reload func() error
	if p.opts.Reload != nil {
		// Logged and counted however it came (SIGHUP or POST /reload):
		// a deploy tool that ignores the answer leaves the log and
		// wedge_edge_reloads_total{result="error"} to alert on.
		reload = func() error {
			cfg, err := p.opts.Reload()
			if err != nil {
				p.node.ReloadFailed() // Reload counts its own
			} else if err = p.node.Reload(ctx, cfg); err == nil && p.agent != nil {
				// A desired state refused for what the old config
				// lacked may fit this one.
				p.agent.Reloaded()
			}
			if err != nil {
				p.log.Error("edge: reload failed; still serving the previous config", "err", err)
			} else {
				p.log.Info("edge: reloaded")
			}
			return err
		}
	}
	var admin *http.Server
	var calls adminCalls
	if p.admin != nil {
		admin = listeners.SideServer(calls.track(p.node.AdminHandler(reload)))
		serve(func() error { return admin.Serve(listeners.SideListener(p.admin)) })
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		if p.agent == nil {
			return
		}
		if err := p.agent.Run(agentCtx); err != nil {
			p.log.Error("edge: fleet agent stopped; serving the current plugins", "err", err)
		}
	}()
	var hup chan os.Signal // nil without reload: that select case never fires
	if reload != nil {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	// SIGUSR1 reopens the access log, as it does nginx's: rotation without
	// a reload, whose drain closes every WebSocket tunnel.
	// Both before "serving": a signal sent once it is logged is taken.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	p.log.Info("edge: serving", "listen", p.http.Addr().String(), "tls", addrText(p.tls), "admin", addrText(p.admin), "tier", addrText(p.tier),
		"pop", p.cfg.POP, "region", p.cfg.Region)
	var failed error
	for failed == nil && ctx.Err() == nil {
		select {
		case <-hup:
			reload() // logged
		case <-usr1:
			p.node.ReopenLogs()
			p.log.Info("edge: access log reopened")
		case err := <-errc:
			serving--
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				failed = err
			}
		case <-ctx.Done():
		}
	}

	stopAgent()
	<-agentDone
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if admin != nil {
		// Close, not Shutdown: closing the connections ends the contexts of
		// calls in flight, so a 30 s profile does not eat the drain; then
		// wait for them, so no reload or purge runs on a closing node.
		calls.closing()
		admin.Close() // closes its listener, so its Serve returns
		if !calls.wait(sctx) {
			p.log.Warn("edge: admin calls still running at the end of the drain")
		}
	}
	failed = errors.Join(failed, p.node.Shutdown(sctx))
	// The listeners are closed now, so every Serve returns.
	for ; serving > 0; serving-- {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed = errors.Join(failed, err)
		}
	}
	return failed
}

// adminCalls counts the admin calls in flight so that Run can wait for
// them; once closing, a call that arrives is refused with 503.
type adminCalls struct {
	mu   sync.RWMutex // held for reading while a call registers
	shut bool
	wg   sync.WaitGroup
}

func (c *adminCalls) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.RLock()
		if c.shut {
			c.mu.RUnlock()
			http.Error(w, "the node is shutting down", http.StatusServiceUnavailable)
			return
		}
		c.wg.Add(1) // under the read lock: never after wait has begun
		c.mu.RUnlock()
		defer c.wg.Done()
		h.ServeHTTP(w, r)
	})
}

func (c *adminCalls) closing() {
	c.mu.Lock()
	c.shut = true
	c.mu.Unlock()
}

// wait waits for the calls in flight, at most until ctx ends (a call that
// ignores its context, a reload compiling plugins, must not hold the
// node's drain forever); it reports whether they all returned.
func (c *adminCalls) wait(ctx context.Context) bool {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func addrText(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}

// Main is the edge command: it reads the config file its flags name, runs
// the POP until ctx ends, and reloads the file on SIGHUP and on the admin
// listener's POST /reload. Logs go to logOut.
func Main(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	path := fs.String("config", "edge.yaml", "config file")
	cacheDir := fs.String("compilation-cache", wasmbuild.CompilationCacheDir(), "directory for compiled plugins (\"\": none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := edge.LoadConfig(*path)
	if err != nil {
		return err
	}
	p, err := New(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(logOut, nil)), CompilationCache: *cacheDir,
		Reload: func() (*edge.Config, error) { return edge.LoadConfig(*path) }})
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
