package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/monitoring"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/deploy/status"
	"github.com/talowa/wedge/internal/listeners"
)

// control runs the rollout controller until interrupted.
func control(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control", flag.ContinueOnError)
	url := natsFlag(fs)
	embeddedDir := fs.String("embedded", "", "run an embedded control plane keeping its files in `DIR`, listening on --listen")
	member := addMemberFlags(fs)
	httpAddr := fs.String("http", "", "serve the status page and the control plane's /metrics on `ADDR`, e.g. 127.0.0.1:9090")
	serverOnly := fs.Bool("server-only", false, "with --embedded: run the server alone, with no buckets and no controller: the empty control plane `control restore` wants")
	ctlKey := controllerKeyFlag(fs)
	ctlTrust := controllerTrustFlag(fs)
	artTrust := trustFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("control: unexpected arguments %q", fs.Args())
	}
	trust, err := loadControllerTrust(*ctlTrust)
	if err != nil {
		return err
	}
	artifacts, err := loadTrust(*artTrust)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if len(artifacts) == 0 && !*serverOnly {
		return errors.New("control: --trust FILES (or $WEDGE_TRUST) is required: the POPs' fleet.trust, without which a revocation could not be told from a record POPs refuse")
	}
	if err := member.check(fs, *embeddedDir); err != nil {
		return err
	}
	if *serverOnly && *embeddedDir == "" {
		return errors.New("control: --server-only needs --embedded DIR")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var nc *nats.Conn
	var clusterMember *embedded.Server // with --cluster
	var certs []*auth.TLS              // the embedded server's, for /metrics
	if *embeddedDir != "" {
		opts, err := member.options(*embeddedDir, stdout)
		if err != nil {
			return err
		}
		opts.Auth.TLS.Log = log // why renewed certificate files are not taken
		certs = append(certs, opts.Auth.TLS)
		srv, err := embedded.Start(opts)
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		if *member.cluster != "" {
			clusterMember = srv
		}
		fmt.Fprintf(stdout, "control plane on %s, files in %s\n", srv.URL(), *embeddedDir)
		if *serverOnly {
			// The controller would create empty buckets, and hold a lease
			// in one, which a restore takes for live state.
			fmt.Fprintln(stdout, "server only: no buckets, no controller; restore into it, then start it again without --server-only")
			<-ctx.Done()
			return nil
		}
		if nc, err = srv.Connect("wedgectl-control"); err != nil {
			return err
		}
	} else {
		var err error
		if nc, err = controlplane.Dial(url.url, "wedgectl-control", nil, url.sec.Options()...); err != nil {
			return err
		}
	}
	defer nc.Close()
	// The embedded server made its auth directory by now: the key goes
	// there, shared by a cluster's members as the directory is.
	keyDir := ""
	if *embeddedDir != "" {
		keyDir = cmp.Or(*member.authDir, filepath.Join(*embeddedDir, "auth"))
	}
	key, err := loadControllerKey(*ctlKey, keyDir, stdout)
	if err != nil {
		return err
	}
	s, err := ensure(ctx, clusterMember, nc, stdout)
	if err != nil {
		return err
	}
	if *httpAddr != "" {
		// Bind first: a busy port is an error now, not a log line later.
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("control: --http %s: %w", *httpAddr, err)
		}
		hs := listeners.SideServer(statusPage(s, log, certs...))
		go hs.Serve(listeners.SideListener(ln))
		defer hs.Close()
		fmt.Fprintf(stdout, "status page on http://%s/\n", ln.Addr())
	}
	fmt.Fprintln(stdout, "rollout controller running; interrupt to stop")
	c := rollout.NewController(s, rollout.Options{Log: log, Key: key, Trust: trust, ArtifactKeys: artifacts})
	return c.Run(ctx)
}

// statusPage is what --http (control) and --status (up) serve: the
// status page, and the control plane's /metrics that deploy/monitoring's
// alerts read, with when certs (the embedded server's certificate, if
// this process runs one) expire.
func statusPage(s *controlplane.Stores, log *slog.Logger, certs ...*auth.TLS) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", status.Handler(s, log))
	mux.Handle("GET /metrics", monitoring.Handler(s, certs...))
	return mux
}

func rolloutStart(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rollout start", flag.ContinueOnError)
	url := natsFlag(fs)
	waves := fs.String("waves", "", "waves, e.g. `eu-west:10%,eu-west:100%,us-east,*`")
	gates := fs.String("gate", "", "health gates, e.g. `error_rate<1%,p99<50ms`")
	bake := fs.Duration("bake", 2*time.Minute, "how long each wave's gates must hold")
	key := fs.String("key", "", "desired-state key, `ROUTE/PLUGIN` to roll out on one route (default: the plugin on every route)")
	config := fs.String("config", "", "the version's plugin config as `JSON` (default: keep the POPs')")
	minReq := fs.Uint64("min-requests", rollout.DefaultMinRequests, "requests a wave must see before its gates are judged")
	dry := fs.Bool("dry-run", false, "print the plan and change nothing (both refuse a plugin no reporting POP runs)")
	why := fs.String("why", "", "reason, for the audit stream")
	split := fs.String("split", "addr", "what places a client on the canary's side: `addr|header:NAME|cookie:NAME` (a request without the value goes by its address)")
	whoName := whoFlag(fs)
	trust := trustFlag(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("rollout start: want one PLUGIN@VERSION")
	}
	plugin, version, ok := strings.Cut(fs.Arg(0), "@")
	if !ok {
		return fmt.Errorf("rollout start: %q: want PLUGIN@VERSION", fs.Arg(0))
	}
	if *waves == "" || *gates == "" {
		return errors.New("rollout start: --waves and --gate are required")
	}
	who, err := operator(*whoName)
	if err != nil && !*dry {
		return fmt.Errorf("rollout start: %w", err)
	}
	spec := rollout.Spec{Plugin: plugin, Version: version, Key: *key, Waves: *waves, Gates: *gates,
		Bake: *bake, MinRequests: *minReq, Split: *split, Who: who, Why: *why}
	if spec.Trust, err = loadTrust(*trust); err != nil {
		return fmt.Errorf("rollout start: %w", err)
	}
	if *config != "" {
		spec.Config = json.RawMessage(*config)
	}
	s, closeFn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer closeFn()
	if *dry {
		p, err := rollout.Resolve(ctx, s, spec)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, "dry run, nothing changed:\n", p)
		return nil
	}
	id, err := rollout.Start(ctx, s, spec)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

// rolloutAction returns the subcommand that sends action to a rollout.
func rolloutAction(action string) func(context.Context, []string, io.Writer) error {
	return func(ctx context.Context, args []string, stdout io.Writer) error {
		fs := flag.NewFlagSet("rollout "+action, flag.ContinueOnError)
		url := natsFlag(fs)
		why := fs.String("why", "", "reason, for the audit stream")
		whoName := whoFlag(fs)
		if err := parseInterspersed(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("rollout %s: want one rollout ID", action)
		}
		who, err := operator(*whoName)
		if err != nil {
			return fmt.Errorf("rollout %s: %w", action, err)
		}
		s, closeFn, err := connect(ctx, url)
		if err != nil {
			return err
		}
		defer closeFn()
		if err := rollout.Command(ctx, s, fs.Arg(0), action, who, *why); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s sent to %s\n", action, fs.Arg(0))
		return nil
	}
}

func rolloutStatus(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rollout status", flag.ContinueOnError)
	url := natsFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, closeFn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer closeFn()
	o, err := rollout.Overview(ctx, s)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tPOPS\tPLUGIN\tVERSION\tDIGEST\tCONFIG\tON POPS\tREQUESTS\tERRORS\tP99\tCANARY")
	for _, r := range o.Regions {
		if len(r.Versions) == 0 {
			fmt.Fprintf(tw, "%s\t%d\t-\t\t\t\t\t\t\t\t\n", r.Region, len(r.POPs))
		}
		for _, v := range r.Versions {
			version := v.Version
			if version == "" {
				version = "(own)"
			}
			canary := "-"
			if v.CanaryShare > 0 {
				canary = strconv.FormatFloat(v.CanaryShare, 'f', -1, 64) + "%"
				if v.Split != "" {
					canary += " by " + v.Split
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.12s\t%.8s\t%d\t%d\t%.2f%%\t%s\t%s\n",
				r.Region, len(r.POPs), v.Plugin, version, v.Digest, cmp.Or(v.Config, "-"), v.POPs, v.Requests, v.ErrorRate, v.P99, canary)
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, "(health %s)\n", o.HealthWindow)
	for _, r := range o.Regions {
		for _, f := range r.Refusing {
			fmt.Fprintf(stdout, "%s REFUSES its desired state, serving the previous one: %s\n", f.POP, f.Error)
		}
	}
	if o.Leaderless != "" {
		fmt.Fprintf(stdout, "NO CONTROLLER: %s\n", o.Leaderless)
	}
	for _, r := range o.Rollouts {
		if why, ok := o.Stuck[r.ID]; ok {
			fmt.Fprintf(stdout, "rollout %s is STUCK: %s\n", r.ID, why)
		}
	}
	fmt.Fprintln(stdout)
	if len(o.Rollouts) == 0 {
		fmt.Fprintln(stdout, "no rollouts")
		return nil
	}
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLLOUT\tRELEASE\tSTATE\tPROGRESS\tWINDOW\tGATES\tREASON")
	for _, r := range o.Rollouts {
		var gates []string
		for _, g := range r.GateValues {
			mark := "ok"
			if !g.OK {
				mark = "FAIL"
			}
			gates = append(gates, fmt.Sprintf("%s: %s %s", g.Gate, g.Value, mark))
		}
		window := "-"
		if r.Phase == rollout.PhaseBaking {
			window = fmt.Sprintf("%d/%d req", r.Window.Requests, r.MinRequests)
		}
		fmt.Fprintf(tw, "%s\t%s@%s (%s)\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Plugin, r.Version, r.Key, r.State,
			r.Progress(), window, strings.Join(gates, ", "), r.Reason)
	}
	return tw.Flush()
}

func rolloutAudit(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rollout audit", flag.ContinueOnError)
	url := natsFlag(fs)
	n := fs.Int("n", 20, "how many of the latest entries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n <= 0 {
		return fmt.Errorf("rollout audit: -n %d: want a positive count", *n)
	}
	s, closeFn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer closeFn()
	entries, err := rollout.RecentAudit(ctx, s, *n)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tACTION\tRELEASE\tROLLOUT\tREGION\tWHY")
	for _, a := range entries {
		release := a.Plugin
		if a.Version != "" {
			release += "@" + a.Version
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Time.Local().Format(time.DateTime), a.Who, a.Action, release, a.Rollout, a.Region, a.Why)
	}
	return tw.Flush()
}
