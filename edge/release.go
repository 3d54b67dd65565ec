package edge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/wasm"
)

// Release replaces what the config file says a plugin runs: it is how the
// fleet agent (edge/fleet) applies the control plane's desired state. The
// caller has verified the binaries; the node only loads them.
type Release struct {
	// Version and Binary are the version to run; a nil Binary keeps the
	// config file's module (a canary against what the POP was set up with,
	// or a config change), and "" its version label.
	Version string
	Binary  []byte
	// Config is the plugin's JSON config; nil keeps the config file's.
	Config []byte
	// Canary, when set, runs on Share percent of clients, chosen by a hash
	// of the client's key so a client stays on one side. Split names the
	// key (manifest.ParseSplit): "" or "addr" the client address,
	// "header:NAME" or "cookie:NAME" that value, the address where a
	// request has none.
	Canary *Release
	Share  float64
	Split  string
}

// ErrClosed is returned by SetReleases and Reload after Shutdown.
var ErrClosed = errors.New("edge: node is shut down")

// SetReleases applies releases over the config file's chains and swaps the
// result in, like Reload: requests in flight finish on what they started
// with. A key is a plugin name (every route whose chain has it) or
// "route/plugin" (that route only, and it wins). Releases stay in force
// across reloads of the config file until the next SetReleases; a key that
// names no plugin of any route is an error, and nothing changes.
func (n *Node) SetReleases(ctx context.Context, rel map[string]*Release) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	cfg := n.gen.Load().cfg
	for k := range rel {
		if !releaseMatches(cfg, k) {
			n.m.reloads.WithLabelValues("error").Inc()
			return fmt.Errorf("edge: release %q: no route has that plugin", k)
		}
	}
	prev := n.releases
	n.releases = rel
	if err := n.swap(ctx, cfg); err != nil {
		n.releases = prev
		return err
	}
	return nil
}

// Precompile checks and compiles a module ahead of a release naming it, so
// that applying the release later costs a load from the compilation cache
// (Options.CompilationCache) rather than a compile of seconds.
func (n *Node) Precompile(ctx context.Context, bin []byte) error {
	if !n.compileCache {
		return nil // a compile kept nowhere would only cost time
	}
	return n.runtime.Validate(ctx, bin)
}

func releaseMatches(cfg *Config, key string) bool {
	for _, rc := range cfg.Routes {
		for _, pc := range rc.Chain {
			if key == pc.Name || key == rc.Name+"/"+pc.Name {
				return true
			}
		}
	}
	return false
}

// releaseOf finds the Release for a plugin of a route, if any.
func (n *Node) releaseOf(route, plugin string) *Release {
	if r, ok := n.releases[route+"/"+plugin]; ok {
		return r
	}
	return n.releases[plugin]
}

// loaded is a module shared by every generation that runs it, with the
// health counters the fleet reports for it.
type loaded struct {
	key modKey
	m   *wasm.Module
	h   health
	// brk are its breakers, per route (pluginbreaker.go); only the reload
	// path touches the map, requests reach them through their steps.
	brk map[breakerKey]*breakers
}

// modKey identifies what a module was loaded from: generations whose
// configs agree reuse it rather than compile and warm it again.
type modKey struct {
	name, version, digest, policy string
	config                        string // manifest.ConfigHash
	deadline                      Duration
	memory                        int
}

// loadStep loads (or reuses) what one chain entry runs under the current
// releases.
func (n *Node) loadStep(ctx context.Context, g *generation, route string, pc *PluginConfig) (*step, error) {
	s := &step{key: pc.Name}
	if _, ok := n.releases[route+"/"+pc.Name]; ok {
		s.key = route + "/" + pc.Name
	}
	rel := n.releaseOf(route, pc.Name)
	var err error
	if s.stable, err = n.loadVersion(ctx, g, pc, rel); err != nil {
		return nil, err
	}
	s.stableBrk = n.breaker(s.stable, route, pc.Breaker)
	if rel != nil && rel.Canary != nil {
		if s.canary, err = n.loadVersion(ctx, g, pc, rel.Canary); err != nil {
			return nil, err
		}
		s.canaryBrk = n.breaker(s.canary, route, pc.Breaker)
		s.share = manifest.ShareUnits(rel.Share)
		kind, name, err := manifest.ParseSplit(rel.Split)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", pc.Name, err)
		}
		if kind != manifest.SplitAddr {
			s.split = split{kind: kind, name: []byte(name)}
		}
	}
	return s, nil
}

// loadVersion loads the module rel names for pc (the config file's if rel
// is nil or has no binary), reusing a module another generation loaded from
// the same bytes and config, and takes g's reference on it.
func (n *Node) loadVersion(ctx context.Context, g *generation, pc *PluginConfig, rel *Release) (*loaded, error) {
	bin, version, config := []byte(nil), pc.Version, pc.config
	if rel != nil && rel.Binary != nil {
		bin = rel.Binary
	} else {
		var err error
		if bin, err = pc.binary(); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", pc.Name, err)
		}
	}
	if rel != nil && rel.Version != "" {
		version = rel.Version
	}
	if rel != nil && rel.Config != nil {
		config = rel.Config
	}
	digest := manifest.Digest(bin)
	if version == "" {
		version = digest[:12]
	}
	policy := wasm.FailClosed(pc.FailureStatus)
	if pc.Failure == "open" {
		policy = wasm.FailOpen()
	}
	key := modKey{name: pc.Name, version: version, digest: digest, policy: policy.String(), config: manifest.ConfigHash(config),
		deadline: pc.Deadline, memory: pc.MemoryBytes}
	if l, ok := g.loaded[key]; ok {
		return l, nil
	}
	l := n.mods[key]
	if l == nil || !l.m.Ref() {
		m, err := n.runtime.Load(ctx, wasm.Spec{Name: pc.Name, Version: version, Binary: bin, Config: config, Policy: policy,
			Timeout: time.Duration(pc.Deadline), MemoryLimit: uint32(pc.MemoryBytes)})
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", pc.Name, err)
		}
		// The node's map holds the loader's reference; g takes its own.
		l = &loaded{key: key, m: m}
		n.mods[key] = l
		m.Ref()
	}
	g.loaded[key] = l
	return l, nil
}

// prune closes the modules no generation but (at most) retiring ones use:
// they finish when those generations' last requests are done.
func (n *Node) prune(cur *generation) {
	for k, l := range maps.Clone(n.mods) {
		if _, ok := cur.loaded[k]; !ok {
			delete(n.mods, k)
			n.dropBreakers(l)
			l.m.Close()
		}
	}
	n.pruneBreakers(cur)
}
