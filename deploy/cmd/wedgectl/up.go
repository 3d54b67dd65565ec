package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/talowa/wedge/deploy/internal/console"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/edge/pop"
	"github.com/talowa/wedge/internal/listeners"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// up runs the whole system on this machine: an embedded control plane with
// the rollout controller and its status page, a demo application (unless
// -upstream names one), an origin service in front of it, and edges whose
// route runs the chain: one in this process, or with -regions one edge
// process per POP, N POPs in a region given as NAME:N (default 1), on
// consecutive ports. It builds the auth, ratelimit and cache plugins, or
// the plugin folders given with --plugin, which it rebuilds and swaps into
// the running edge on every save (devplugins.go); it prints how to try it
// all, and Ctrl-C stops everything.
func up(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "the edge's address; with -regions, the first POP's (the next ones take the next ports)")
	upstream := fs.String("upstream", "", "your application's base URL (default: a demo application)")
	chain := fs.String("chain", "auth,ratelimit,cache", "plugins in order, from auth, ratelimit, cache and the --plugin folders' names; \"\" for none (default with --plugin: those plugins, in order)")
	var pluginDirs, configFlags listFlag
	fs.Var(&pluginDirs, "plugin", "a plugin `DIR` to build, run in the edge and rebuild on every save (repeatable; the folder's name is the plugin's)")
	fs.Var(&configFlags, "plugin-config", "a plugin's config, `NAME=JSON` (repeatable)")
	logLevel := fs.String("log-level", "info", "the log's level: debug, info, warn or error (plugin logs included)")
	root := fs.String("plugins", "", "the plugins directory (default: ./plugins of this checkout)")
	regionList := fs.String("regions", "", "edge processes by region, NAME or NAME:N for N POPs (<region>-1..N), e.g. eu-west:3,us-east (default: one edge in this process)")
	natsAddr := fs.String("nats", "127.0.0.1:4222", "the control plane's client address, for wedgectl and the edges")
	ha := fs.Bool("ha", false, "run the control plane as a cluster of three NATS servers, on --nats and the next two ports")
	statusAddr := fs.String("status", "127.0.0.1:9090", "the controller's status page (\"\": none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("up: unexpected argument %q", fs.Arg(0))
	}
	if *natsAddr == "" {
		// The edges join the control plane over this address, as deployed
		// ones do; without it they would run with no fleet agent.
		return errors.New("up: -nats needs an address: the edges join the control plane over it")
	}
	dev, err := devPlugins(pluginDirs)
	if err != nil {
		return err
	}
	chainSet := false
	fs.Visit(func(f *flag.Flag) { chainSet = chainSet || f.Name == "chain" })
	plugins := dev // with --plugin and no --chain, the chain is theirs
	if chainSet || len(dev) == 0 {
		if plugins, err = parseChain(*chain, dev, *root); err != nil {
			return err
		}
	}
	if err := pluginConfigs(configFlags, plugins); err != nil {
		return err
	}
	pops, err := parseRegions(*regionList)
	if err != nil {
		return err
	}
	if len(dev) > 0 && len(pops) > 0 {
		return errors.New("up: --plugin runs in the edge of this process, which --regions replaces by edge processes; leave out one of them")
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	log := slog.New(console.New(os.Stderr, level))
	dir, err := os.MkdirTemp("", "wedge-up")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, p := range dev {
		// Each save builds a module: they go with up, not to the build cache.
		p.cache = filepath.Join(dir, "plugins")
	}

	// The control plane first: the edges join it as they start.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fleet, err := startFleet(ctx, dir, *natsAddr, *ha, log)
	if err != nil {
		return fmt.Errorf("up: control plane: %w", err)
	}
	defer fleet.stop()
	defer cancel() // before fleet.stop: the controller ends with ctx
	statusURL := "off"
	if *statusAddr != "" {
		ln, err := net.Listen("tcp", *statusAddr)
		if err != nil {
			return fmt.Errorf("up: status page: %w", err)
		}
		page := listeners.SideServer(statusPage(fleet.stores, log, fleet.auth.TLS))
		go page.Serve(listeners.SideListener(ln))
		defer page.Close()
		statusURL = "http://" + ln.Addr().String() + "/"
	}

	// The application: the demo, or the one the user named.
	own := *upstream != ""
	if !own {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		demo := &http.Server{Handler: demoApp(), ReadHeaderTimeout: 10 * time.Second}
		go demo.Serve(ln)
		defer demo.Close()
		*upstream = "http://" + ln.Addr().String()
	}

	// The origin service, with a fresh key it shares with the edges.
	key := wire.Key{ID: 1, Secret: make([]byte, 32)}
	rand.Read(key.Secret)
	originAddr, stopOrigin, err := startOrigin(key, *upstream, log)
	if err != nil {
		return err
	}
	defer stopOrigin()

	// The plugins, built (or taken from the build cache) from source.
	jwtSecret := make([]byte, 32)
	rand.Read(jwtSecret)
	var names []string
	for _, p := range plugins {
		if p.config == "" {
			conf, _ := json.Marshal(demoConfig(p.name, jwtSecret))
			p.config = string(conf)
		}
		fmt.Fprintf(stdout, "building plugin %s...\n", p.name)
		if _, err := p.build(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C during the build: a clean stop, not a failure
			}
			return fmt.Errorf("up: plugin %s: %w", p.name, err)
		}
		names = append(names, p.name)
	}
	// With -regions, the POPs of a region share their caches: each has a
	// tier listener (on a port of the system's choosing: its peers learn
	// it from its status) and signs its asks with a key they all share.
	tier, routeTier := "", ""
	if len(pops) > 0 {
		tierKey := wire.Key{ID: 1, Secret: make([]byte, 32)}
		rand.Read(tierKey.Secret)
		tier = fmt.Sprintf("tier: {listen: \"127.0.0.1:0\", key: %q}\n", tierKey.Text())
		routeTier = "    tier: region\n"
	}
	// Each edge's credential: it may write its own status, and no other.
	minted := pops
	if len(pops) == 0 {
		minted = []popSpec{{name: "local-1", region: "local"}}
	}
	for _, pop := range minted {
		if err := fleet.writePOPCreds(dir, pop.name, pop.region); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	// The edges' admin token, for a Wedge-Pin's smoke test of a canary:
	// without one an edge ignores every pin (edge/canary.go's pinOf). A
	// fresh one each run, in a file of up's beside the credentials.
	adminToken, adminTokenFile, err := writeAdminToken(dir)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	_, ca := fleet.creds()
	edgeYAML := func(listen, region, pop string, chain []*chainPlugin) string {
		limits, sio, appExtra := ownApp(own, chain)
		return fmt.Sprintf(`listen: %q
served_header: true
admin: {token: %q}
pop: %s
region: %s
origins:
  app: {addr: %q, key: %q}
fleet: {nats: %q, creds: %q, ca: %q, trust: [%q], control_keys: [%q], state_dir: %q}
%s%sroutes:
%s  - name: app
    path: /
    origin: app
%s%s%s`, listen, adminToken, pop, region, originAddr, key.Text(), fleet.cp.URL(), popCredsFile(dir, pop), ca, fleet.pub, fleet.control, filepath.Join(dir, pop+"-state"),
			tier, limits, sio, appExtra, routeTier, chainYAML(chain))
	}

	var edges []string // "http://addr (pop)"
	var watching strings.Builder
	errc := make(chan error, 1)
	if len(pops) == 0 {
		p, stop, err := serveLocal(ctx, edgeYAML(*listen, "local", "local-1", plugins), dir, log, errc)
		if err != nil {
			return err
		}
		defer stop()
		edges = append(edges, "http://"+p.Addr().String())
		// The listener keeps its port: the edge config's listen is the
		// address bound, not the one asked for (127.0.0.1:0).
		local := p.Addr().String()
		reload := func(chain []*chainPlugin) error {
			cfg, err := edge.ParseConfig([]byte(edgeYAML(local, "local", "local-1", chain)), dir)
			if err != nil {
				return err
			}
			return p.Node().Reload(ctx, cfg)
		}
		if len(dev) > 0 { // no watcher, and no inotify instance, for none
			for _, p := range dev { // before the watcher owns them
				fmt.Fprintf(&watching, "watching %s (%s, serving %s): save a change and it is rebuilt and swapped into the edge\n", p.name, p.dir, p.version)
			}
			stopWatching, err := watchPlugins(ctx, plugins, reload, stdout, log)
			if err != nil {
				return err
			}
			defer stopWatching()
		}
	} else {
		for i, pop := range pops {
			l, err := nextPort(*listen, i)
			if err != nil {
				return fmt.Errorf("up: -listen: %w", err)
			}
			cfg := filepath.Join(dir, pop.name+".yaml")
			if err := os.WriteFile(cfg, []byte(edgeYAML(l, pop.region, pop.name, plugins)), 0o600); err != nil {
				return err
			}
			logFile := filepath.Join(dir, pop.name+".log")
			fmt.Fprintf(stdout, "starting edge %s (its log: %s)...\n", pop.name, logFile)
			c, addr, err := spawnEdge(cfg, logFile)
			if err != nil {
				return fmt.Errorf("up: %w", err)
			}
			defer c.stop()
			edges = append(edges, fmt.Sprintf("http://%s (%s)", addr, pop.name))
		}
	}

	addr := strings.Fields(edges[0])[0]
	waves := "local:10%,local" // a canary in the first region, then everywhere
	if len(pops) > 0 {
		waves = pops[0].region + ":10%," + pops[0].region + ",*"
	}
	token := demoToken(jwtSecret, "demo-user", 24*time.Hour)
	creds, _ := fleet.creds()
	fmt.Fprintf(stdout, `
Wedge is up: edge %[1]s -> origin %[2]s -> application %[3]s
chain: %[4]s
edges: %[8]s
control plane: %[6]s   status page: %[7]s
control plane credentials (every role's) and CA: WEDGE_CREDS=%[10]s WEDGE_CA=%[11]s
plugin signing key: %[9]s, its public key (the POPs' trust store): WEDGE_TRUST=%[12]s
edges' admin token (Wedge-Pin-Token, with a Wedge-Pin): in %[13]s

WEDGE_TOKEN=%[5]s
`, addr, originAddr, *upstream, strings.Join(names, " -> "), token, fleet.cp.URL(), statusURL, strings.Join(edges, ", "), fleet.key, creds, ca, fleet.pub, adminTokenFile)
	if len(dev) > 0 {
		fmt.Fprintf(stdout, "\n%s\n", watching.String())
	}
	try := tryHints{addr: addr, chain: names, own: own, key: fleet.key, trust: fleet.pub, waves: waves, nats: fleet.cp.URL(), creds: creds, ca: ca, adminToken: adminTokenFile}
	if len(dev) > 0 {
		try.dev = dev[0].name
	}
	try.print(stdout)
	fmt.Fprintln(stdout, "\nCtrl-C stops everything.")

	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// writeAdminToken makes a random admin token for the edges and writes it
// to dir/admin-token, readable by its owner only as the credentials are,
// for the operator to send with a Wedge-Pin.
func writeAdminToken(dir string) (token, file string, err error) {
	b := make([]byte, 32)
	rand.Read(b)
	token, file = hex.EncodeToString(b), filepath.Join(dir, "admin-token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("admin token: %w", err)
	}
	return token, file, nil
}

// serveLocal runs the edge in this process: the POP `wedgectl edge` runs
// (edge/pop), which joins the control plane like any other. It returns the
// POP and how to stop it; a failure while it serves goes to errc.
func serveLocal(ctx context.Context, yaml, dir string, log *slog.Logger, errc chan<- error) (*pop.POP, func(), error) {
	cfg, err := edge.ParseConfig([]byte(yaml), dir)
	if err != nil {
		return nil, nil, fmt.Errorf("up: %w", err)
	}
	p, err := pop.New(ctx, cfg, pop.Options{Logger: log, CompilationCache: wasmbuild.CompilationCacheDir()})
	if err != nil {
		return nil, nil, fmt.Errorf("up: %w", err)
	}
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil {
			select {
			case errc <- err:
			default:
			}
		}
	}()
	return p, func() { stop(); <-done }, nil
}

// maxPOPs bounds NAME:N in -regions: each POP is a process on this
// machine, and a typo (eu-west:30) should not start thirty.
const maxPOPs = 9

// popSpec is one POP up starts: its name and its region's.
type popSpec struct{ name, region string }

// parseRegions reads a -regions list, NAME or NAME:N comma-separated, into
// the POPs to start: <region>-1..N for each, in order.
func parseRegions(s string) ([]popSpec, error) {
	var out []popSpec
	seen := map[string]bool{}
	for r := range strings.SplitSeq(s, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		name, count, hasCount := strings.Cut(r, ":")
		n := 1
		if hasCount {
			var err error
			if n, err = strconv.Atoi(count); err != nil || n < 1 || n > maxPOPs {
				return nil, fmt.Errorf("up: -regions: %s: want NAME or NAME:N with N from 1 to %d POPs", r, maxPOPs)
			}
		}
		if err := manifest.CheckName("region", name); err != nil {
			return nil, fmt.Errorf("up: -regions: %w", err)
		}
		if seen[name] {
			return nil, fmt.Errorf("up: -regions: %s given twice", name)
		}
		seen[name] = true
		for i := 1; i <= n; i++ {
			pop := fmt.Sprintf("%s-%d", name, i)
			// "-N" may take a long region name past the limit.
			if err := manifest.CheckName("pop", pop); err != nil {
				return nil, fmt.Errorf("up: -regions: %w", err)
			}
			out = append(out, popSpec{pop, name})
		}
	}
	return out, nil
}

// parseChain reads the -chain list: the repository's plugins by name (from
// root, default the checkout's plugins folder) and the --plugin folders by
// theirs. Every --plugin folder must be in it.
func parseChain(s string, dev []*chainPlugin, root string) ([]*chainPlugin, error) {
	var chain []*chainPlugin
	seen := map[string]bool{}
	for n := range strings.SplitSeq(s, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if seen[n] {
			return nil, fmt.Errorf("up: -chain: %s given twice", n)
		}
		seen[n] = true
		if i := slices.IndexFunc(dev, func(p *chainPlugin) bool { return p.name == n }); i >= 0 {
			chain = append(chain, dev[i])
			continue
		}
		switch n {
		case "auth", "ratelimit", "cache":
		default:
			return nil, fmt.Errorf("up: -chain: unknown plugin %q (want auth, ratelimit, cache or a --plugin folder's name)", n)
		}
		if root == "" {
			repo, err := findCheckout("")
			if err != nil {
				return nil, fmt.Errorf("up: plugin %s: %w, or give -plugins", n, err)
			}
			root = filepath.Join(repo, "plugins")
		}
		chain = append(chain, &chainPlugin{name: n, dir: filepath.Join(root, n)})
	}
	for _, p := range dev {
		if !seen[p.name] {
			return nil, fmt.Errorf("up: -chain leaves out %s, given with --plugin", p.name)
		}
	}
	return chain, nil
}

// parseLevel reads --log-level.
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("up: --log-level %q: want debug, info, warn or error", s)
}

func startOrigin(key wire.Key, upstream string, log *slog.Logger) (string, func(), error) {
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{key}, MinCompress: wire.DefaultMinCompress})
	if err != nil {
		return "", nil, err
	}
	// One upstream: a health check could only turn its errors into 503s,
	// and an application of the user's may well answer 404 on any path.
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{upstream}, HealthInterval: -1, Logger: log})
	if err != nil {
		codec.Close()
		return "", nil, err
	}
	// Past the socket.io route's timeout (ownApp): the origin grants a
	// request no more than its own.
	srv, err := origin.NewServer(origin.ServerConfig{Codec: codec, Handler: proxy, Logger: log, MaxTimeout: 70 * time.Second})
	if err != nil {
		proxy.Close()
		codec.Close()
		return "", nil, err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		proxy.Close()
		codec.Close()
		return "", nil, err
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() {
		srv.Shutdown(context.Background())
		proxy.Close()
		codec.Close()
	}, nil
}

// demoConfig is each plugin's configuration in the local stack: HS256
// tokens signed with secret, 10 requests per second per identity, and the
// cache with its defaults.
func demoConfig(name string, secret []byte) any {
	switch name {
	case "auth":
		return map[string]any{
			"realm":  "wedge-demo",
			"jwks":   map[string]any{"keys": []any{map[string]any{"kty": "oct", "alg": "HS256", "kid": "demo", "k": base64.RawURLEncoding.EncodeToString(secret)}}},
			"public": []string{"/public/"},
		}
	case "ratelimit":
		return map[string]any{"policies": []any{
			map[string]any{"name": "per_user", "key": "value:" + abi.IdentitySub, "limit": 10, "period": "1s", "burst": 10},
		}}
	}
	return map[string]any{}
}

// demoToken mints an HS256 JWT for sub.
func demoToken(secret []byte, sub string, ttl time.Duration) string {
	enc := base64.RawURLEncoding
	now := time.Now().Unix()
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"demo"}`))
	claims := enc.EncodeToString(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, sub, now, now+int64(ttl.Seconds())))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(head + "." + claims))
	return head + "." + claims + "." + enc.EncodeToString(mac.Sum(nil))
}

// demoApp is the application behind the local stack: GET /api/hello,
// cacheable by shared caches for 60 s, saying who asked (the identity the
// auth plugin forwarded) and when it was made, so a cache hit shows.
func demoApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Surrogate-Key", "hello demo")
		json.NewEncoder(w).Encode(map[string]string{
			"message":    "Hello from the demo application",
			"user":       r.Header.Get(wire.ValuePrefix + abi.IdentitySub),
			"generated":  time.Now().UTC().Format(time.RFC3339Nano),
			"through":    r.Header.Get("Forwarded"),
			"request_id": r.Header.Get("X-Request-Id"),
		})
	})
	mux.HandleFunc("GET /public/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "public: no token needed for", r.URL.Path)
	})
	return mux
}

// ownApp is what the edge config adds for an application of the user's
// (--upstream), which is likely to have uploads and socket.io: request
// bodies past 1 MiB stream, up to 1 GiB on the app route; and a
// /socket.io/ route whose 60 s timeout outlasts a long poll (socket.io's
// pingInterval is 25 s), whose chain leaves out the cache (answers for one
// client) and the demo's rate limit (10 a second counts every poll).
func ownApp(own bool, chain []*chainPlugin) (limits, sioRoute, appRoute string) {
	if !own {
		return "", "", ""
	}
	var sio []*chainPlugin
	for _, p := range chain {
		if p.name != "cache" && p.name != "ratelimit" {
			sio = append(sio, p)
		}
	}
	return "limits: {stream_threshold: 1048576}\n",
		"  - name: socketio\n    path: /socket.io/\n    origin: app\n    timeout: 60s\n" + chainYAML(sio),
		"    max_body_bytes: 1073741824\n"
}

// tryHints is what up suggests trying, for the chain it runs: a line says
// only what the chain makes true (no 401 without auth, no 429 without a
// rate limit keyed on auth's identity).
type tryHints struct {
	addr  string
	chain []string // the plugins, in order
	dev   string   // the first --plugin folder's name, if any
	own   bool     // --upstream: the application is the user's
	// The rollout example's: the signing key and its public key, the
	// waves, the control plane and its credentials.
	key, trust, waves, nats, creds, ca string
	adminToken                         string // the file holding the edges' admin token
}

func (h tryHints) print(w io.Writer) {
	has := func(p string) bool { return slices.Contains(h.chain, p) }
	path, what := "/api/hello", "200"
	switch {
	case h.dev != "":
		path, what = "/"+h.dev, "what `wedgectl plugin new "+h.dev+"` made answers"
	case h.own:
		path, what = "/", "your application's answer"
	case has("cache"):
		what = "200, then a cache HIT with Age"
	}
	bearer := ""
	fmt.Fprintln(w, "\nTry:")
	if has("auth") {
		bearer = `-H "Authorization: Bearer $WEDGE_TOKEN" `
		fmt.Fprintf(w, "  curl -i %s%s  # 401 without a token\n", h.addr, path)
	}
	fmt.Fprintf(w, "  curl -i %s%s%s  # %s\n", bearer, h.addr, path, what)
	if has("auth") && has("ratelimit") {
		fmt.Fprintf(w, "  for i in $(seq 15); do curl -s -o /dev/null -w '%%{http_code} ' %s%s%s; done; echo  # 429 past 10/s\n", bearer, h.addr, path)
	}
	// The rollout example builds a plugin of this repository's.
	plugin := ""
	for _, p := range []string{"cache", "ratelimit", "auth"} {
		if has(p) {
			plugin = p
			break
		}
	}
	if plugin == "" {
		return
	}
	fmt.Fprintf(w, `
Roll a plugin version out (in another terminal, in this checkout):
  alias wedgectl='go run ./deploy/cmd/wedgectl'
  export WEDGE_NATS=%[6]s WEDGE_CREDS=%[4]s WEDGE_CA=%[5]s WEDGE_TRUST=%[7]s
  wedgectl plugin build plugins/%[1]s -o /tmp/%[1]s.wasm
  wedgectl plugin push /tmp/%[1]s.wasm --name %[1]s --version 2 --key %[2]s
  wedgectl rollout start %[1]s@2 --waves "%[3]s" --gate "error_rate<1%%,p99<50ms" --bake 30s
  wedgectl rollout status
  curl -i -H "Wedge-Pin: %[1]s@2" -H "Wedge-Pin-Token: $(cat %[8]s)" %[9]s%[10]s%[11]s  # %[1]s@2 whichever side of the canary you are on (Wedge-Served)
`, plugin, h.key, h.waves, h.creds, h.ca, h.nats, h.trust, h.adminToken, bearer, h.addr, path)
}
