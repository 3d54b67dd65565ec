package edge

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm"
)

// Config is an edge node's configuration, as its YAML file holds it. Zero
// values take the defaults documented on each field; Load fills them in.
type Config struct {
	// Listen is the HTTP listener's address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// ProxyProtocol, when given, makes the HTTP and TLS listeners read
	// the PROXY protocol header a trusted L4 load balancer sends, e.g.
	// proxy_protocol: {trusted: ["10.0.0.0/8"]} (ProxyProtocolConfig,
	// edge/proxyproto.go). Off by default.
	ProxyProtocol *ProxyProtocolConfig `yaml:"proxy_protocol"`
	// TrustedProxies lists the addresses and CIDR ranges of the L7
	// proxies in front of the node (an HTTP load balancer, a CDN) whose
	// X-Forwarded-For names the client, e.g. trusted_proxies:
	// ["10.0.0.0/8", "192.0.2.10"] (edge/realip.go). A request whose peer
	// (the connection's address, or the PROXY header's with
	// proxy_protocol) is one of them stands for the client its
	// X-Forwarded-For names; any other's X-Forwarded-For names nobody.
	// Off by default; a restart applies a change.
	TrustedProxies []string `yaml:"trusted_proxies"`
	trustedProxies proxySet // TrustedProxies parsed
	// Advertise is the host:port the other POPs reach this one's cache
	// tier listener (Tier.Listen) at, which it reports to the control
	// plane (manifest.Status.Peer): set it when Tier.Listen is a wildcard
	// (":9080", "0.0.0.0:9080", "[::]:9080") or behind a NAT. Default:
	// Tier.Listen as bound, or, for a wildcard, no address at all (peers
	// cannot dial one), which the POP logs. Without a tier listener the
	// POP reports no address.
	Advertise string `yaml:"advertise"`
	// Tier is the regional cache tier (edge/tier.go): the listener peers
	// ask for the cache keys this POP owns, and the key their envelopes
	// are signed with.
	Tier TierConfig `yaml:"tier"`
	// TLS is the HTTPS listener, with a certificate per SNI name; off when
	// Listen is "". Certificates are read again on every reload.
	TLS struct {
		Listen string     `yaml:"listen"`
		Certs  []CertPair `yaml:"certs"`
		// HTTP2 and HTTP3 are the listener's other protocols (h2.go, h3.go).
		HTTP2 HTTP2Config `yaml:"http2"`
		HTTP3 HTTP3Config `yaml:"http3"`
	} `yaml:"tls"`
	// Admin is the admin listener (health, metrics, reload); "" turns it
	// off. Token, when set, is the bearer token the reload call needs.
	Admin struct {
		Listen string `yaml:"listen"`
		Token  string `yaml:"token"`
	} `yaml:"admin"`
	// POP and Region name this node in envelopes, logs and metrics.
	POP    string `yaml:"pop"`
	Region string `yaml:"region"`
	Limits Limits `yaml:"limits"`
	// Overload is the adaptive concurrency limit: what is past it gets a
	// fast 503 (OverloadConfig, edge/overload.go). On by default.
	Overload OverloadConfig `yaml:"overload"`
	// Cache bounds the shared response cache, in bytes. Default 256 MiB.
	CacheBytes uint64 `yaml:"cache_bytes"`
	// Origins are the origin services, by name.
	Origins map[string]*OriginConfig `yaml:"origins"`
	// Routes are matched by host, then by the longest path prefix.
	Routes []*RouteConfig `yaml:"routes"`
	// Fleet connects the node to the control plane, which then sets the
	// plugin versions its routes run (edge/fleet); off when NATS is "".
	Fleet FleetConfig `yaml:"fleet"`
	// Tracing exports spans over OTLP (TracingConfig, edge/trace.go); off
	// by default.
	Tracing TracingConfig `yaml:"tracing"`
	// ServedHeader, when true, makes every response carry Wedge-Served:
	// the plugin versions that ran for the request, in chain order, as
	// "auth@2, ratelimit@1, cache@3" (a canary's or a Wedge-Pin's version
	// where one was chosen; on a cache hit too), so a person with curl
	// sees what served them. It replaces one an origin sent; absent when
	// no plugin ran, and on a 101 that opens a WebSocket tunnel. Default
	// false: it tells clients what runs.
	ServedHeader bool `yaml:"served_header"`
	// AccessLog is the access log, one JSON line per request; off unless
	// its path is set (AccessLogConfig, edge/accesslog.go).
	AccessLog AccessLogConfig `yaml:"access_log"`

	dir string // the config file's directory: relative paths start there
}

// TierConfig is the regional cache tier's listener and key: a miss for a
// cache key another POP of the region owns asks that POP before the
// origin, on routes with tier: region (edge/tier.go).
type TierConfig struct {
	// Listen is the tier listener's address, where peers' asks come in,
	// e.g. 127.0.0.1:9080. "" (the default) turns the tier off: the POP
	// asks nobody and is asked by nobody, and reports no peer address.
	Listen string `yaml:"listen"`
	// Key signs the envelopes POPs exchange: "ID:HEX" as `wedgectl origin
	// keygen` prints it, or "@FILE" naming a file that holds one. Every
	// POP of the fleet has the same one. Required when Listen is set.
	Key string `yaml:"key"`

	key wire.Key
}

// FleetConfig is the node's link to the control plane.
type FleetConfig struct {
	// NATS is the control plane's URL, e.g. nats://127.0.0.1:4222: on a
	// cluster, every member's, comma-separated (the agent moves to another
	// when one goes), or the URL of the region's leaf node.
	NATS string `yaml:"nats"`
	// Creds is the POP's credentials file (`wedgectl control creds pop
	// NAME --region REGION`: it may write this POP's status and no
	// other's, and speak for its own region only) and CA the
	// control plane's CA certificate (ca.pem of its auth directory), for
	// a control plane with authentication and TLS (tls:// URLs).
	Creds string `yaml:"creds"`
	CA    string `yaml:"ca"`
	// Trust lists files of PEM public keys (`wedgectl keys gen`; a file
	// may hold several, and every one is trusted): the node runs only
	// plugin versions one of them signed.
	Trust []string `yaml:"trust"`
	// ControlKeys lists files of the controller's PEM public keys (the
	// control plane's controller.pub): the node applies only desired
	// state one of them signed (deploy/manifest's SignDesired). Apart
	// from Trust: the controller's key signs what runs where, the
	// artifact keys what a module is. Required unless UnsignedDesired.
	ControlKeys []string `yaml:"control_keys"`
	// UnsignedDesired accepts desired state nobody signed: whoever can
	// write to the control plane's desired-state bucket then sets this
	// node's plugins and their configs. Only for a control plane that
	// does not sign yet.
	UnsignedDesired bool `yaml:"insecure_unsigned_desired"`
	// StateDir keeps the last-known-good state, served when the control
	// plane is unreachable. Default "state" next to the config file.
	StateDir string `yaml:"state_dir"`

	trust, control manifest.TrustStore
}

// TrustStore is the Trust keys, loaded.
func (f *FleetConfig) TrustStore() manifest.TrustStore { return f.trust }

// ControlStore is the ControlKeys, loaded.
func (f *FleetConfig) ControlStore() manifest.TrustStore { return f.control }

// CertPair names a PEM certificate chain and its key. The certificate
// answers for the DNS names (and IP addresses) it lists.
type CertPair struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Limits bound what a client may send and hold.
type Limits struct {
	// MaxHeaderBytes bounds the request line and headers. Default 16 KiB;
	// larger gets 431, as do more header fields than the origin link
	// carries (wire.MaxFields, 1024), however short.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds a request body, for routes that set no
	// max_body_bytes of their own, and the bodies plugins set. Default
	// 8 MiB; larger gets 413.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// StreamThreshold, when set, makes a request body larger than it, or
	// of unknown length (chunked), stream to the origin in chunks rather
	// than be read whole (edge/stream.go), and lets a route's
	// max_body_bytes pass max_body_bytes; 1 MiB is a good value. 0, the
	// default, reads every body whole. Streaming costs two things:
	// fasthttp then keeps each keep-alive connection's read buffer
	// (max_header_bytes) between its requests, and a bare LF in a later
	// request on a kept-alive connection gets lenient's 400 once its
	// header section is complete (or a 408) rather than a 400 at once.
	// read_timeout then bounds each stall of a body, not all of it
	// (max_conns bounds what slow senders hold). Responses stream
	// whatever this says.
	StreamThreshold int `yaml:"stream_threshold"`
	// MaxReadBytes bounds, node-wide, the request bodies being read whole
	// over HTTP/1.1 (stream_threshold unset): a body longer than
	// max_header_bytes takes its Content-Length from it before it is read,
	// as that much is allocated at once, and one that finds no room gets
	// 503 with Retry-After (edge/read.go). Default 256 MiB, or
	// max_body_bytes if larger; less than max_body_bytes is refused.
	MaxReadBytes int `yaml:"max_read_bytes"`
	// MaxConns bounds concurrent client connections. Default 100,000.
	MaxConns int `yaml:"max_conns"`
	// IdleTimeout closes keep-alive connections idle that long. Default 60 s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ReadTimeout bounds reading one request's header section, and its
	// body too unless stream_threshold is set (then each stall of the
	// body). Default 10 s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds each write of a response: a client that takes
	// nothing of it for this long is cut off, a slow one that keeps
	// taking gets it whole however long that lasts. Default 30 s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// MaxWriteBytes bounds, node-wide, the response bodies held for
	// clients still receiving them: a slow reader keeps its body until it
	// has taken it or the write times out. Bodies served from the
	// response cache are the cache's own bytes and not counted; the body
	// a streamed response gathers for the cache is. Default
	// 256 MiB; a response past it is refused with 503 and Retry-After, and
	// the connection closed (so one larger than it always is).
	MaxWriteBytes int `yaml:"max_write_bytes"`
	// WebSocket bounds the WebSocket tunnels (edge/tunnel.go), e.g.
	// websocket: {max_tunnels: 10000, max_tunnels_per_client: 1000,
	// idle_timeout: 2m, max_message_bytes: 16777216, drain_timeout: 5s}.
	WebSocket WebSocketLimits `yaml:"websocket"`
}

// OriginConfig is one origin service.
type OriginConfig struct {
	// Addr is the origin's host:port.
	Addr string `yaml:"addr"`
	// Key signs the envelopes: "ID:HEX" as `wedgectl origin keygen`
	// prints it, or "@FILE" naming a file that holds one.
	Key string `yaml:"key"`
	// Dicts are zstd dictionary files; Dict the ID requests use (0: none).
	Dicts []string `yaml:"dicts"`
	Dict  uint32   `yaml:"dict"`
	// Timeout is the budget of one request to the origin. Default 10 s.
	Timeout Duration `yaml:"timeout"`
	// LatencyTarget gives the origin an adaptive concurrency limit
	// (edge/originlimit.go): while its mean latency is over the target,
	// fewer requests are sent to it at once, and those past the limit
	// are answered 503 at once. Set it a few times above the origin's
	// latency under normal load. Default 0: no limit.
	LatencyTarget Duration `yaml:"latency_target"`
	// MaxConns bounds the connections this node opens to the origin, so
	// the requests it has in flight there at once. A request that finds
	// every one busy for 100 ms (long polls parked on them) is answered
	// 503 with Retry-After: 1, without being sent, and counted in
	// wedge_edge_shed_total{reason="origin_pool"}. Default 1024.
	MaxConns int `yaml:"max_conns"`
	// Breaker tunes the origin's circuit breaker (edge/originclient):
	// e.g. breaker: {failures: 5, failure_ratio: 0.5, min_requests: 20,
	// window: 20s, open_for: 5s, probes: 1}, those being the defaults
	// (window: at least twice the timeout).
	Breaker BreakerConfig `yaml:"breaker"`

	key   wire.Key
	dicts [][]byte
}

// BreakerConfig is an origin's circuit breaker, as
// originclient.BreakerConfig says; a field left out takes its default.
type BreakerConfig struct {
	// Failures is how many attempts in a row that say the origin cannot
	// serve open it.
	Failures uint32 `yaml:"failures"`
	// FailureRatio is the share of attempts failed or timed out in Window
	// that opens it, once MinRequests have ended there.
	FailureRatio float64  `yaml:"failure_ratio"`
	MinRequests  uint32   `yaml:"min_requests"`
	Window       Duration `yaml:"window"`
	// OpenFor is how long it refuses before letting Probes through: short
	// for an origin that restarts in seconds, longer for one that an
	// early probe would only load while it recovers.
	OpenFor Duration `yaml:"open_for"`
	Probes  uint32   `yaml:"probes"`
}

// RouteConfig is one route: where it matches, its plugin chain and its
// origin.
type RouteConfig struct {
	// Name labels the route in metrics and logs. Default host + path.
	Name string `yaml:"name"`
	// Host is the host the route answers, without port; "" or "*" matches
	// any host.
	Host string `yaml:"host"`
	// Path is the path prefix the route answers. Default "/".
	Path string `yaml:"path"`
	// Chain is the plugin chain, run in order on requests and in reverse
	// on responses.
	Chain []*PluginConfig `yaml:"chain"`
	// Origin names the origin service requests go to.
	Origin string `yaml:"origin"`
	// Timeout is the budget of one request of this route to its origin,
	// in place of the origin's timeout: longer where the application holds
	// requests on purpose, as socket.io's long polls (up to its
	// pingInterval, 25 s by default) do. The origin service caps what it
	// grants at its own -timeout, which must be as long. Default the
	// origin's timeout.
	Timeout Duration `yaml:"timeout"`
	// MaxBodyBytes bounds a request body of this route: larger gets 413,
	// and a chunked one is cut off when it passes it. Default
	// limits.max_body_bytes; negative for no bound. Past
	// limits.max_body_bytes only when limits.stream_threshold is set:
	// bodies then stream, so the bound is not memory.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxResponseBytes bounds a streamed response body of this route: one
	// that passes it is cut off mid-stream. Default 0, no bound.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// Tier is "region" to send a cacheable miss (a GET the chain's cache
	// looked up and forwarded) to the POP of the region that owns its
	// cache key before the origin, so that a region fetches each object
	// once (edge/tier.go); "" or "off", the default, sends every miss to
	// the origin. Needs tier.listen on the node to take effect.
	Tier string `yaml:"tier"`
	// Shield is a region whose POPs act as a second tier across regions:
	// the owner of a key in this POP's region asks the owner of the key
	// in the shield region before the origin. Optional; needs tier:
	// region. Within the shield region itself misses go to the origin.
	Shield string `yaml:"shield"`
}

// PluginConfig is one plugin of a chain.
type PluginConfig struct {
	// Name is the plugin's name. Default the file's base name.
	Name string `yaml:"name"`
	// File is the .wasm module.
	File string `yaml:"file"`
	// Version labels the plugin version. Default the first 12 hex digits
	// of the module's sha256.
	Version string `yaml:"version"`
	// Config is handed to the plugin's configure export as JSON.
	Config any `yaml:"config"`
	// Failure is what requests get when the plugin fails: "closed" (the
	// default: answer FailureStatus, default 503) or "open" (continue as
	// if the plugin were not there).
	Failure       string `yaml:"failure"`
	FailureStatus int    `yaml:"failure_status"`
	// Deadline is the CPU time one call of the plugin may use before it is
	// stopped (and fails as Failure says), 1ms to 10s. Default 100ms. It
	// also bounds, on the wall clock, how long a call waits for a free
	// instance of the plugin when all are busy.
	Deadline Duration `yaml:"deadline"`
	// MemoryBytes caps the linear memory of each of the plugin's
	// instances, in bytes (rounded down to 64 KiB pages), from 64 KiB to
	// the node's 64 MiB, the default. An instance growing past 3/4 of it is
	// replaced between calls; a call that needs more than all of it fails.
	MemoryBytes int `yaml:"memory_bytes"`
	// Breaker stops calling the plugin on this route while it keeps
	// running out of its deadline: e.g. breaker: {failures: 5, window:
	// 10s, open_for: 5s}, those being the defaults. See
	// PluginBreakerConfig.
	Breaker PluginBreakerConfig `yaml:"breaker"`

	config []byte // Config as JSON
}

// PluginBreakerConfig is a plugin's breaker on a route (pluginbreaker.go),
// one per version and phase; a field left out takes its default. Failures
// calls of a phase stopped at their deadline within Window, at least half
// the calls of that phase that ended since the first of them, open it: for
// OpenFor the route's requests get what the plugin's failure gives
// (Failure, FailureStatus) without that phase being called, and count as
// the version's failures for the rollout gates. Then one call goes
// through: ending within the deadline, it closes the breaker, else it
// opens it again.
// Other failures (traps, panics, memory) do not count: they cost no
// budget of CPU.
type PluginBreakerConfig struct {
	// Failures is how many calls stopped at their deadline within Window
	// open it, 1 to 1000. Default 5.
	Failures int `yaml:"failures"`
	// Window is how recent those calls must be. Default 10 s.
	Window Duration `yaml:"window"`
	// OpenFor is how long it skips the plugin before a probe. Default 5 s.
	OpenFor Duration `yaml:"open_for"`
}

// withDefaults fills the fields left out.
func (c PluginBreakerConfig) withDefaults() PluginBreakerConfig {
	if c.Failures == 0 {
		c.Failures = defaultBreakerFailures
	}
	if c.Window == 0 {
		c.Window = Duration(defaultBreakerWindow)
	}
	if c.OpenFor == 0 {
		c.OpenFor = Duration(defaultBreakerOpenFor)
	}
	return c
}

// Bounds of a plugin's deadline.
const (
	minPluginDeadline = time.Millisecond
	maxPluginDeadline = 10 * time.Second
)

// Duration is a time.Duration written as "10s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration like 10s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("edge: config: %w", err)
	}
	cfg, err := ParseConfig(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("edge: config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and checks YAML; relative file names in it are taken
// from dir. Unknown fields are errors: a misspelt limit must not silently
// fall back to its default.
func ParseConfig(b []byte, dir string) (*Config, error) {
	cfg := &Config{dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// check turns a decoded config into a usable one, in three steps: fill in
// defaults (and resolve file names against dir), validate what was given,
// then read the files it names (origin keys, dictionaries, trust keys).
// Validation comes before any file is read, so a config with a mistake
// fails on the mistake, not on a file it names.
func (c *Config) check() error {
	o, h2, h3 := &c.Overload, &c.TLS.HTTP2, &c.TLS.HTTP3
	if err := cmp.Or(c.Limits.given(),
		negative("overload", map[string]int64{"min_limit": int64(o.MinLimit), "max_limit": int64(o.MaxLimit),
			"initial_limit": int64(o.InitialLimit)}),
		negative("tls.http2", map[string]int64{"max_concurrent_streams": int64(h2.MaxConcurrentStreams),
			"max_resets": int64(h2.MaxResets)}),
		negative("tls.http3", map[string]int64{"max_concurrent_streams": int64(h3.MaxConcurrentStreams),
			"max_resets": int64(h3.MaxResets)})); err != nil {
		return err
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	return c.load()
}

// given refuses limits a default would otherwise replace in silence: a
// negative one (limits.max_body_bytes: -1 became 8 MiB, where a route's -1
// means no bound) or a header bound too small for any request line.
func (l *Limits) given() error {
	if err := negative("limits", map[string]int64{
		"max_header_bytes": int64(l.MaxHeaderBytes), "max_body_bytes": int64(l.MaxBodyBytes),
		"stream_threshold": int64(l.StreamThreshold), "max_conns": int64(l.MaxConns),
		"idle_timeout": int64(l.IdleTimeout), "read_timeout": int64(l.ReadTimeout),
		"write_timeout": int64(l.WriteTimeout), "max_write_bytes": int64(l.MaxWriteBytes),
		"max_read_bytes":                   int64(l.MaxReadBytes),
		"websocket.max_tunnels":            int64(l.WebSocket.MaxTunnels),
		"websocket.max_tunnels_per_client": int64(l.WebSocket.MaxTunnelsPerClient),
	}); err != nil {
		return err
	}
	if l.MaxHeaderBytes > 0 && l.MaxHeaderBytes < 1024 {
		return fmt.Errorf("limits: max_header_bytes %d: want at least 1024, or every request gets 431", l.MaxHeaderBytes)
	}
	return nil
}

// negative refuses a negative bound of block, which its default would
// otherwise replace in silence (overload's max_limit: -1, meant as no
// bound, ran at 10,000).
func negative(block string, fields map[string]int64) error {
	for name, v := range fields {
		if v < 0 {
			return fmt.Errorf("%s: %s is negative (%d): leave it out for the default", block, name, v)
		}
	}
	return nil
}

// setDefaults fills in what the config left out and resolves file names
// against c.dir. It skips empty origins, routes and plugins: validate
// refuses those.
func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *Duration, d time.Duration) {
		if *v <= 0 {
			*v = Duration(d)
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	def(&c.Limits.MaxHeaderBytes, 16<<10)
	def(&c.Limits.MaxBodyBytes, 8<<20)
	def(&c.Limits.MaxConns, 100_000)
	defDur(&c.Limits.IdleTimeout, 60*time.Second)
	defDur(&c.Limits.ReadTimeout, 10*time.Second)
	defDur(&c.Limits.WriteTimeout, 30*time.Second)
	def(&c.Limits.MaxWriteBytes, 256<<20)
	def(&c.Limits.MaxReadBytes, max(256<<20, c.Limits.MaxBodyBytes))
	c.Limits.WebSocket.setDefaults()
	c.Overload.setDefaults()
	c.AccessLog.resolve(c)
	c.TLS.HTTP2.setDefaults()
	c.TLS.HTTP3.setDefaults()
	if c.CacheBytes == 0 {
		c.CacheBytes = 256 << 20
	}
	for _, o := range c.Origins {
		if o != nil {
			defDur(&o.Timeout, 10*time.Second)
		}
	}
	for i := range c.TLS.Certs {
		c.TLS.Certs[i].Cert = c.path(c.TLS.Certs[i].Cert)
		c.TLS.Certs[i].Key = c.path(c.TLS.Certs[i].Key)
	}
	if c.Fleet.NATS != "" {
		if c.Fleet.StateDir == "" {
			c.Fleet.StateDir = "state"
		}
		c.Fleet.StateDir = c.path(c.Fleet.StateDir)
		for _, f := range []*string{&c.Fleet.Creds, &c.Fleet.CA} {
			if *f != "" {
				*f = c.path(*f)
			}
		}
	}
	for _, r := range c.Routes {
		if r == nil {
			continue
		}
		if r.Host == "*" {
			r.Host = ""
		}
		r.Host = strings.ToLower(r.Host)
		if r.Path == "" {
			r.Path = "/"
		}
		if r.Name == "" {
			r.Name = r.Host + r.Path
		}
		for _, p := range r.Chain {
			if p == nil || p.File == "" {
				continue
			}
			p.File = c.path(p.File)
			if p.Name == "" {
				p.Name = strings.TrimSuffix(filepath.Base(p.File), ".wasm")
			}
			if p.FailureStatus == 0 {
				p.FailureStatus = 503
			}
		}
	}
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// validate checks the config as given, with its defaults: no file is read.
func (c *Config) validate() error {
	for name, o := range c.Origins {
		if o == nil || o.Addr == "" {
			return fmt.Errorf("origin %q: no addr", name)
		}
		// One that can never be dialled took a running POP's route down
		// on a reload, instead of being refused with the old config kept.
		if host, port, err := net.SplitHostPort(o.Addr); err != nil || host == "" || !validPort(port) {
			return fmt.Errorf("origin %q: addr %q: want HOST:PORT, a port from 1 to 65535", name, o.Addr)
		}
		if b := o.Breaker; b.FailureRatio < 0 || b.FailureRatio > 1 || b.Window < 0 || b.OpenFor < 0 {
			return fmt.Errorf("origin %q: breaker: want failure_ratio within 0..1 and window and open_for not negative", name)
		}
		if o.MaxConns < 0 {
			return fmt.Errorf("origin %q: max_conns is negative (%d): leave it out for the default", name, o.MaxConns)
		}
	}
	if l := c.Limits; l.StreamThreshold == 0 && l.MaxReadBytes < l.MaxBodyBytes {
		return fmt.Errorf("limits: max_read_bytes %d is less than max_body_bytes %d: a body that long could never be read", l.MaxReadBytes, l.MaxBodyBytes)
	}
	if c.ProxyProtocol != nil {
		if err := c.ProxyProtocol.validate(); err != nil {
			return err
		}
	}
	var err error
	if c.trustedProxies, err = parseProxySet(c.TrustedProxies); err != nil {
		return err
	}
	if c.TLS.Listen != "" && len(c.TLS.Certs) == 0 {
		return errors.New("tls: a listener needs at least one certificate")
	}
	if c.Advertise != "" {
		host, port, err := net.SplitHostPort(c.Advertise)
		ip := net.ParseIP(host)
		if err != nil || !validPort(port) || host == "" || ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("advertise %q: want HOST:PORT that peers can dial", c.Advertise)
		}
	}
	if err := c.Overload.validate(); err != nil {
		return err
	}
	if err := c.AccessLog.validate(); err != nil {
		return err
	}
	if err := c.Tracing.validate(); err != nil {
		return err
	}
	if c.Tier.Listen != "" && c.Tier.Key == "" {
		return errors.New("tier: a listener needs a key")
	}
	if c.Fleet.NATS != "" {
		if c.POP == "" || c.Region == "" {
			return errors.New("fleet: a node on the control plane needs its pop and region")
		}
		// They name its status key and its subjects, and its credential
		// is minted for them (wedgectl control creds).
		if err := manifest.CheckName("pop", c.POP); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		if err := manifest.CheckName("region", c.Region); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		if len(c.Fleet.Trust) == 0 {
			return errors.New("fleet: no trust keys: no plugin version could be accepted")
		}
		if len(c.Fleet.ControlKeys) == 0 && !c.Fleet.UnsignedDesired {
			return errors.New("fleet: no control_keys: the desired state could not be verified (give the controller's public key, or set insecure_unsigned_desired: true to accept it unsigned)")
		}
		if len(c.Fleet.ControlKeys) > 0 && c.Fleet.UnsignedDesired {
			return errors.New("fleet: control_keys and insecure_unsigned_desired: true together: unsigned desired state would be accepted whatever the keys say; set one")
		}
	}
	if len(c.Routes) == 0 {
		return errors.New("no routes")
	}
	seen, names := map[string]bool{}, map[string]bool{}
	for i, r := range c.Routes {
		if r == nil {
			return fmt.Errorf("route %d is empty", i)
		}
		if !strings.HasPrefix(r.Path, "/") {
			return fmt.Errorf("route %d: path %q must start with /", i, r.Path)
		}
		// Matched against the request's host without its port or the
		// DNS root's dot (router.go): one with either never matches.
		if strings.ContainsAny(r.Host, ":/") && !strings.HasPrefix(r.Host, "[") || strings.HasSuffix(r.Host, ".") {
			return fmt.Errorf("route %q: host %q: want a host name alone, without port, path or trailing dot", r.Name, r.Host)
		}
		if seen[r.Host+" "+r.Path] {
			return fmt.Errorf("route %q: host %q and path %q given twice", r.Name, r.Host, r.Path)
		}
		seen[r.Host+" "+r.Path] = true
		// A name is the route's metrics, releases (route/plugin) and tier
		// asks: two of one name mixed the first two and lost the third.
		if names[r.Name] {
			return fmt.Errorf("route %q: name given twice", r.Name)
		}
		names[r.Name] = true
		if c.Origins[r.Origin] == nil {
			return fmt.Errorf("route %q: origin %q is not among the origins", r.Name, r.Origin)
		}
		switch r.Tier {
		case "", "off", "region":
		default:
			return fmt.Errorf("route %q: tier %q: want region or off", r.Name, r.Tier)
		}
		if r.Shield != "" && r.Tier != "region" {
			return fmt.Errorf("route %q: shield %q needs tier: region", r.Name, r.Shield)
		}
		for j, p := range r.Chain {
			if p == nil || p.File == "" {
				return fmt.Errorf("route %q: plugin %d has no file", r.Name, j)
			}
			switch p.Failure {
			case "", "closed", "open":
			default:
				return fmt.Errorf("route %q: plugin %s: failure %q: want closed or open", r.Name, p.Name, p.Failure)
			}
			if p.FailureStatus < 200 || p.FailureStatus > 599 {
				return fmt.Errorf("route %q: plugin %s: failure_status %d", r.Name, p.Name, p.FailureStatus)
			}
			if d := time.Duration(p.Deadline); d != 0 && (d < minPluginDeadline || d > maxPluginDeadline) {
				return fmt.Errorf("route %q: plugin %s: deadline %v: want %v to %v", r.Name, p.Name, d, minPluginDeadline, maxPluginDeadline)
			}
			if p.MemoryBytes != 0 && (p.MemoryBytes < 64<<10 || p.MemoryBytes > wasm.DefaultMemoryLimit) {
				return fmt.Errorf("route %q: plugin %s: memory_bytes %d: want 65536 (64 KiB) to %d (64 MiB)",
					r.Name, p.Name, p.MemoryBytes, wasm.DefaultMemoryLimit)
			}
			if f := p.Breaker.Failures; f < 0 || f > maxBreakerFailures {
				return fmt.Errorf("route %q: plugin %s: breaker: failures %d: want 1 to %d", r.Name, p.Name, f, maxBreakerFailures)
			}
		}
	}
	return nil
}

// tierKeyClash refuses an origin whose key is the tier's. Asks and origin
// requests are request frames alike: under one secret, a frame captured on
// either link could be replayed on the other, an ask run by the origin or
// a request served to a peer as an ask.
func tierKeyClash(tier wire.Key, origins map[string]*OriginConfig) error {
	for name, o := range origins {
		if o.key.SameSecret(tier) {
			return fmt.Errorf("tier: key is origin %q's key: a frame for one could be replayed to the other; give the tier a key of its own", name)
		}
	}
	return nil
}

// load reads and parses what the config names or holds in another form:
// the origins' keys and dictionaries, the fleet's trust keys, and each
// plugin's config as the JSON its configure export reads.
func (c *Config) load() error {
	for name, o := range c.Origins {
		k, err := c.readKey(o.Key)
		if err != nil {
			return fmt.Errorf("origin %q: %w", name, err)
		}
		o.key = k
		for _, f := range o.Dicts {
			d, err := os.ReadFile(c.path(f))
			if err != nil {
				return fmt.Errorf("origin %q: dictionary: %w", name, err)
			}
			o.dicts = append(o.dicts, d)
		}
	}
	if c.Tier.Listen != "" {
		k, err := c.readKey(c.Tier.Key)
		if err != nil {
			return fmt.Errorf("tier: %w", err)
		}
		c.Tier.key = k
		if err := tierKeyClash(k, c.Origins); err != nil {
			return err
		}
	}
	if c.Fleet.NATS != "" {
		var err error
		if c.Fleet.trust, err = manifest.LoadTrustFiles(c.paths(c.Fleet.Trust)...); err != nil {
			return fmt.Errorf("fleet: trust: %w", err)
		}
		if len(c.Fleet.ControlKeys) > 0 {
			if c.Fleet.control, err = manifest.LoadTrustFiles(c.paths(c.Fleet.ControlKeys)...); err != nil {
				return fmt.Errorf("fleet: control_keys: %w", err)
			}
		}
		// Kept apart: a key in both would let whoever pushes plugins also
		// sign the desired state, which is what control_keys guards.
		for id := range c.Fleet.control {
			if _, ok := c.Fleet.trust[id]; ok {
				return fmt.Errorf("fleet: key %s is in both trust and control_keys: the controller's key must not be an artifact key", id)
			}
		}
	}
	for _, r := range c.Routes {
		for _, p := range r.Chain {
			var err error
			if p.config, err = pluginJSON(p.Config); err != nil {
				return fmt.Errorf("route %q: plugin %s: config: %w", r.Name, p.Name, err)
			}
		}
	}
	return nil
}

// paths resolves files relative to the config file's directory.
func (c *Config) paths(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = c.path(f)
	}
	return out
}

// readKey reads a wire key given as "ID:HEX" or as "@FILE".
func (c *Config) readKey(text string) (wire.Key, error) {
	if file, ok := strings.CutPrefix(text, "@"); ok {
		b, err := os.ReadFile(c.path(file))
		if err != nil {
			return wire.Key{}, fmt.Errorf("key: %w", err)
		}
		text = string(b)
	}
	return wire.ParseKey(text)
}

func (c *Config) path(p string) string {
	if filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// pluginJSON turns a plugin's YAML config into the JSON its configure
// export reads. A string is taken as JSON already.
func pluginJSON(v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		if !json.Valid([]byte(v)) {
			return nil, errors.New("a string config must be JSON")
		}
		return []byte(v), nil
	}
	return json.Marshal(v)
}
