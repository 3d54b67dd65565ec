package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
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
	rust   bool   // a Cargo crate, whose builds go to its target/
	config string // JSON
	// cache is where its builds go: for a --plugin folder one that up
	// removes, as each save adds a module; "" for the build cache.
	cache string
	// The build the edge serves: file, its moduleSum, and version (dev-N
	// for a --plugin folder, "" for the default, the module's digest).
	file, version string
	sum           [sha256.Size]byte
	builds        int  // builds of a --plugin folder so far, for dev-N
	failed        bool // its last build failed
}

// build builds p's folder (or takes it from the build cache). A --plugin
// folder whose build gives a module other than the one serving gets the
// next dev-N version; changed reports that. A change of the source that
// leaves the module as it was (a comment, say) changes nothing.
func (p *chainPlugin) build(ctx context.Context) (changed bool, err error) {
	cache := p.cache
	if cache == "" {
		cache = wasmbuild.DefaultCacheDir()
	}
	file, err := wasmbuild.Cached(ctx, p.dir, cache)
	if err != nil {
		return false, err
	}
	bin, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	sum := moduleSum(bin)
	if p.file != "" && sum == p.sum {
		return false, nil
	}
	p.file, p.sum = file, sum
	if p.dev {
		p.builds++
		p.version = fmt.Sprintf("dev-%d", p.builds)
	}
	return true, nil
}

// moduleSum is the sha256 of a module less Go's build ID (the custom
// section go:buildid), which hashes the source: a comment changes it and
// nothing else in the module.
func moduleSum(bin []byte) [sha256.Size]byte {
	h := sha256.New()
	head := min(8, len(bin)) // the magic number and version
	h.Write(bin[:head])
	rest := bin[head:]
	for len(rest) > 1 { // sections: id, size (LEB128, as a uvarint), content
		size, n := binary.Uvarint(rest[1:])
		if n <= 0 || size > uint64(len(rest)-1-n) {
			break // malformed: the rest as it is
		}
		end := 1 + n + int(size)
		if rest[0] != 0 || !bytes.HasPrefix(rest[1+n:end], []byte("\x0ago:buildid")) {
			h.Write(rest[:end])
		}
		rest = rest[end:]
	}
	h.Write(rest)
	return [sha256.Size]byte(h.Sum(nil))
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
		out = append(out, &chainPlugin{name: name, dir: abs, dev: true, rust: wasmbuild.IsRust(abs)})
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
			if err := watchTree(w, p, p.dir); err != nil {
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
				if p == nil || p.ignored(ev.Name) {
					continue
				}
				if ev.Has(fsnotify.Create) {
					if st, err := os.Stat(ev.Name); err == nil && st.IsDir() { // a new source folder
						if err := watchTree(w, p, ev.Name); err != nil {
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
	prevFile, prevSum, prevVersion := p.file, p.sum, p.version
	changed, err := p.build(ctx)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		fmt.Fprintf(out, "%s: build failed; still serving %s:\n%v\n", p.name, prevVersion, err)
	case changed:
		if err = reload(chain); err != nil {
			fmt.Fprintf(out, "%s (%s) does not load; still serving %s:\n%v\n", p.name, p.version, prevVersion, err)
			p.file, p.sum, p.version = prevFile, prevSum, prevVersion // builds stays: a dev-N is never reused
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

// ignored reports whether path, in p's folder, is no source: a dot file or
// folder (.git, an editor's swap file) or, in a Cargo crate, the target
// folder, where builds write.
func (p *chainPlugin) ignored(path string) bool {
	rel, err := filepath.Rel(p.dir, path)
	if err != nil || rel == "." {
		return false
	}
	for i, part := range strings.Split(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") || (p.rust && i == 0 && part == "target") {
			return true
		}
	}
	return false
}

// watchTree adds the folder start, in p's folder, and its folders to w,
// leaving out ignored ones.
func watchTree(w *fsnotify.Watcher, p *chainPlugin, start string) error {
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
		if p.ignored(path) {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}
