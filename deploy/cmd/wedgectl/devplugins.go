package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// debounce is how long the watcher waits after a change in a plugin folder
// before it rebuilds: an editor's save is often several writes (a temporary
// file, a rename, a format-on-save), and one build should take them all.
const debounce = 150 * time.Millisecond

// chainPlugin is one plugin of up's chain, as the edge config names it.
type chainPlugin struct {
	name   string
	dir    string // its source folder
	dev    bool   // given with --plugin: watched and rebuilt as dev-N
	config string // JSON
	// The build the edge serves: file, and version (dev-N for a --plugin
	// folder, "" for the default, the module's digest).
	file, version string
	builds        int  // builds of a --plugin folder so far, for dev-N
	failed        bool // its last build failed
}

// build builds p's folder (or takes it from the build cache). A --plugin
// folder whose build gives a new module gets the next dev-N version;
// changed reports that.
func (p *chainPlugin) build(ctx context.Context) (changed bool, err error) {
	file, err := wasmbuild.Cached(ctx, p.dir, wasmbuild.DefaultCacheDir())
	if err != nil {
		return false, err
	}
	if file == p.file {
		return false, nil
	}
	p.file = file
	if p.dev {
		p.builds++
		p.version = fmt.Sprintf("dev-%d", p.builds)
	}
	return true, nil
}

// chainYAML is the routes' chain in the edge config.
func chainYAML(chain []*chainPlugin) string {
	if len(chain) == 0 {
		return "    chain: []\n"
	}
	var b strings.Builder
	b.WriteString("    chain:\n")
	for _, p := range chain {
		fmt.Fprintf(&b, "      - {name: %s, file: %q, config: %s", p.name, p.file, p.config)
		if p.version != "" {
			fmt.Fprintf(&b, ", version: %s", p.version)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// listFlag collects a repeatable flag's values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// devPlugins reads the --plugin folders: each is named after its folder.
func devPlugins(dirs []string) ([]*chainPlugin, error) {
	var out []*chainPlugin
	seen := map[string]string{}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("up: --plugin %s: not a folder", d)
		}
		name := filepath.Base(abs)
		if err := manifest.CheckName("plugin", name); err != nil {
			return nil, fmt.Errorf("up: --plugin %s: the folder's name is the plugin's: %w", d, err)
		}
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("up: --plugin %s and %s: both are named %s", prev, d, name)
		}
		seen[name] = d
		out = append(out, &chainPlugin{name: name, dir: abs, dev: true})
	}
	return out, nil
}

// pluginConfigs reads the --plugin-config NAME=JSON flags into the chain's
// plugins, compacted onto one line for the YAML.
func pluginConfigs(flags []string, chain []*chainPlugin) error {
	for _, f := range flags {
		name, js, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("up: --plugin-config %q: want NAME=JSON", f)
		}
		var p *chainPlugin
		for _, c := range chain {
			if c.name == name {
				p = c
			}
		}
		if p == nil {
			return fmt.Errorf("up: --plugin-config %s: no plugin %s in the chain", f, name)
		}
		var v any
		if err := json.Unmarshal([]byte(js), &v); err != nil {
			return fmt.Errorf("up: --plugin-config %s: %w", name, err)
		}
		b, _ := json.Marshal(v)
		p.config = string(b)
	}
	return nil
}

// watchPlugins rebuilds the --plugin folders of chain when their files
// change and hands the edge the new chain with reload, printing each
// result to out, until ctx ends or stop is called; stop returns once it
// has stopped. A build or load that fails keeps the last good version
// serving. The chain is the watcher's from the start on.
func watchPlugins(ctx context.Context, chain []*chainPlugin, reload func([]*chainPlugin) error, out io.Writer, log *slog.Logger) (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("up: watch: %w", err)
	}
	var dev []*chainPlugin
	for _, p := range chain {
		if p.dev {
			if err := watchTree(w, p.dir, p.dir); err != nil {
				w.Close()
				return nil, fmt.Errorf("up: watch %s: %w", p.dir, err)
			}
			dev = append(dev, p)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		pending := map[*chainPlugin]bool{}
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-w.Errors:
				log.Warn("up: watching plugin folders", "err", err)
			case ev := <-w.Events:
				p := owner(dev, ev.Name)
				if p == nil || ignored(p.dir, ev.Name) {
					continue
				}
				if ev.Has(fsnotify.Create) {
					if st, err := os.Stat(ev.Name); err == nil && st.IsDir() { // a new source folder
						if err := watchTree(w, p.dir, ev.Name); err != nil {
							log.Warn("up: not watching a new folder; changes in it need a save elsewhere", "plugin", p.name, "err", err)
						}
					}
				}
				log.Debug("up: plugin folder changed", "plugin", p.name, "event", ev.String())
				pending[p] = true
				timer.Reset(debounce)
			case <-timer.C:
				for _, p := range dev {
					if pending[p] {
						rebuild(ctx, p, chain, reload, out)
					}
				}
				clear(pending)
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// rebuild builds p again and, when that gives a new module, swaps it into
// the edge; what fails leaves the previous version serving.
func rebuild(ctx context.Context, p *chainPlugin, chain []*chainPlugin, reload func([]*chainPlugin) error, out io.Writer) {
	start := time.Now()
	prevFile, prevVersion := p.file, p.version
	changed, err := p.build(ctx)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		fmt.Fprintf(out, "%s: build failed; still serving %s:\n%v\n", p.name, prevVersion, err)
	case changed:
		if err = reload(chain); err != nil {
			fmt.Fprintf(out, "%s (%s) does not load; still serving %s:\n%v\n", p.name, p.version, prevVersion, err)
			p.file, p.version = prevFile, prevVersion // builds stays: a dev-N is never reused
			break
		}
		fmt.Fprintf(out, "rebuilt %s (%s) in %.1fs\n", p.name, p.version, time.Since(start).Seconds())
	case p.failed:
		// Back to the source of the version serving: say the error is gone.
		fmt.Fprintf(out, "rebuilt %s: the same as %s, which is serving\n", p.name, p.version)
	}
	p.failed = err != nil
}

// owner is the plugin whose folder holds path.
func owner(dev []*chainPlugin, path string) *chainPlugin {
	for _, p := range dev {
		if path == p.dir || strings.HasPrefix(path, p.dir+string(filepath.Separator)) {
			return p
		}
	}
	return nil
}

// ignored reports whether path, under root, is no source: a dot file or
// folder (.git, an editor's swap file) or Cargo's target folder, where
// builds write.
func ignored(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." {
		return false
	}
	for i, part := range strings.Split(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") || (i == 0 && part == "target") {
			return true
		}
	}
	return false
}

// watchTree adds the folder start, under the plugin folder root, and its
// folders to w, leaving out ignored ones.
func watchTree(w *fsnotify.Watcher, root, start string) error {
	return filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone since it was listed
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if ignored(root, path) {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}
