package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
)

// newPluginFS holds the templates of `plugin new`, one tree per language
// under newplugin/<lang>/. Files ending .tmpl go through text/template with
// a templateData and lose the suffix (which also keeps go.mod and .go files
// in there from being part of this module); a template that renders to
// nothing but space is not written (go.mod inside the checkout). "all:"
// keeps dot files (.gitignore).
//
//go:embed all:newplugin
var newPluginFS embed.FS

// templateData is what the templates of `plugin new` see.
type templateData struct {
	Name     string // the plugin's name, [a-z][a-z0-9-]*
	Ident    string // Name with - as _, for identifiers and metric names
	RepoRoot string // the Wedge checkout, absolute
	InRepo   bool   // the folder is inside RepoRoot: no module of its own
	// GoVersion is the go directive of the checkout's go.mod, which a
	// module requiring it must at least have.
	GoVersion string
}

var pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

const wedgeModule = "github.com/talowa/wedge"

// pluginNew writes a working plugin folder from the templates: source, a
// test that runs it natively and as Wasm, a README in the sections the
// repository's plugins use, and outside the checkout a go.mod that takes
// the SDK from the checkout.
func pluginNew(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("plugin new", flag.ContinueOnError)
	lang := flags.String("lang", "go", "the plugin's language: go or rust")
	sdkDir := flags.String("sdk", "", "the Wedge checkout whose SDK the plugin uses (default: the one around the working directory, else the one wedgectl was built from)")
	if err := parseInterspersed(flags, args); err != nil {
		return err
	}
	if flags.NArg() < 1 || flags.NArg() > 2 {
		return fmt.Errorf("plugin new: want NAME [PARENT/NAME], got %q", flags.Args())
	}
	name := flags.Arg(0)
	if !pluginName.MatchString(name) {
		return fmt.Errorf("plugin new: name %q: want a lowercase letter, then up to 31 of a-z 0-9 -", name)
	}
	dir := name
	if flags.NArg() == 2 {
		dir = flags.Arg(1)
	}
	tree, err := fs.Sub(newPluginFS, "newplugin/"+*lang)
	if err == nil {
		_, err = fs.Stat(tree, ".")
	}
	if err != nil {
		return fmt.Errorf("plugin new: no template for --lang %s (want go or rust)", *lang)
	}
	root, err := findCheckout(*sdkDir)
	if err != nil {
		return fmt.Errorf("plugin new: %w", err)
	}
	goVersion, err := checkoutGoVersion(root)
	if err != nil {
		return fmt.Errorf("plugin new: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if filepath.Base(abs) != name {
		return fmt.Errorf("plugin new: %s: the folder must be named %s, as up names a plugin after its folder", dir, name)
	}
	if entries, err := os.ReadDir(abs); err == nil && len(entries) > 0 {
		return fmt.Errorf("plugin new: %s is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("plugin new: %w", err)
	}
	rel, err := filepath.Rel(root, abs)
	data := templateData{Name: name, Ident: strings.ReplaceAll(name, "-", "_"), RepoRoot: root,
		InRepo: err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)), GoVersion: goVersion}
	undo := created(abs)
	written, err := writeTemplates(tree, abs, data)
	goMod := slices.Contains(written, "go.mod")
	if err == nil && goMod {
		// go.sum, so that the first build and test need no step of the
		// author's.
		err = goModTidy(ctx, abs)
	}
	if err != nil {
		undo() // so that the folder does not refuse a second try
		return fmt.Errorf("plugin new: %w", err)
	}
	fmt.Fprintf(stdout, "created plugin %s (%s) in %s:\n", name, *lang, dir)
	for _, f := range written {
		fmt.Fprintln(stdout, "  "+filepath.Join(dir, f))
	}
	if goMod {
		fmt.Fprintf(stdout, "  %s (go mod tidy; go.mod takes the SDK from %s, see README.md)\n", filepath.Join(dir, "go.sum"), root)
	}
	fmt.Fprintln(stdout, "\nNext:")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  cd %s\n", dir)
	if *lang == "go" {
		fmt.Fprintln(tw, "  go test ./...\t# its tests, natively and as Wasm")
	} else {
		fmt.Fprintln(tw, "  cargo test\t# its tests, natively")
	}
	fmt.Fprintf(tw, "  wedgectl plugin run . /%s\t# build it and send it one request\n", name)
	fmt.Fprintln(tw, "  wedgectl up --plugin .\t# a local edge running it; save a change and it is swapped in")
	tw.Flush()
	return nil
}

// created returns what removes all that is written into dir from now on:
// when dir exists (empty), what it holds then; else dir and the folders
// above it that do not exist yet.
func created(dir string) (undo func()) {
	if _, err := os.Stat(dir); err == nil {
		return func() {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
	top := dir
	for parent := filepath.Dir(top); parent != top; parent = filepath.Dir(top) {
		if _, err := os.Stat(parent); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		top = parent
	}
	return func() { os.RemoveAll(top) }
}

// writeTemplates writes tree into dir (created) and returns the files
// written, relative to dir.
func writeTemplates(tree fs.FS, dir string, data templateData) ([]string, error) {
	var written []string
	err := fs.WalkDir(tree, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := fs.ReadFile(tree, path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".tmpl") {
			path, target = strings.TrimSuffix(path, ".tmpl"), strings.TrimSuffix(target, ".tmpl")
			t, err := template.New(path).Option("missingkey=error").Parse(string(b))
			if err != nil {
				return fmt.Errorf("template %s: %w", path, err)
			}
			var out bytes.Buffer
			if err := t.Execute(&out, data); err != nil {
				return fmt.Errorf("template %s: %w", path, err)
			}
			if len(bytes.TrimSpace(out.Bytes())) == 0 {
				return nil
			}
			b = out.Bytes()
		}
		written = append(written, filepath.FromSlash(path))
		return os.WriteFile(target, b, 0o644)
	})
	return written, err
}

func goModTidy(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "tidy")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go mod tidy in %s: %w\n%s", dir, err, bytes.TrimSpace(out))
	}
	return nil
}

// findCheckout finds the Wedge checkout whose SDK a new plugin uses and
// whose plugins `up` builds: dir when given; else the one around the
// working directory; else the one this binary was built from (its source
// path, when not built with -trimpath, or the module's version in the
// module cache, when installed with `go install ...@version`).
func findCheckout(dir string) (string, error) {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		if !isCheckout(abs) {
			return "", fmt.Errorf("--sdk %s: no go.mod of %s there", dir, wedgeModule)
		}
		return abs, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, start := range starts {
		for d := start; ; d = filepath.Dir(d) {
			if isCheckout(d) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path == wedgeModule && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			d := filepath.Join(strings.TrimSpace(string(out)), wedgeModule+"@"+bi.Main.Version)
			if isCheckout(d) {
				return d, nil
			}
		}
	}
	return "", errors.New("no Wedge checkout here or above, nor the one wedgectl was built from; give its folder with --sdk DIR")
}

var (
	moduleLine = regexp.MustCompile(`(?m)^module\s+"?` + regexp.QuoteMeta(wedgeModule) + `"?\s*$`)
	goLine     = regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`)
)

func isCheckout(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && moduleLine.Match(b)
}

func checkoutGoVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	m := goLine.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s: no go directive", filepath.Join(root, "go.mod"))
	}
	return string(m[1]), nil
}
