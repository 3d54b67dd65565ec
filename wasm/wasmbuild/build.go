// Package wasmbuild builds a plugin folder into a .wasm module,
// reproducibly: the same source and toolchain give the same bytes, so a
// module's sha256 identifies its source. A folder with a Cargo.toml is a
// Rust crate built with cargo (cargo.go); any other is a Go package.
package wasmbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Flags are the build flags after `go build`. -trimpath and -buildvcs=false
// keep file paths and VCS state out of the binary; c-shared makes a reactor
// whose //go:wasmexport functions the host calls.
var Flags = []string{"-buildmode=c-shared", "-trimpath", "-buildvcs=false"}

// Env is the build environment added to the process's, with GOFLAGS cleared
// so that a developer's settings do not change the bytes.
var Env = []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=", "GOWASM="}

// goTool finds the go command: the one on PATH, else the one this binary
// was built with.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), Env...)
	return cmd
}

// Build compiles the plugin in dir to out.
func Build(ctx context.Context, dir, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if IsRust(dir) {
		return buildRust(ctx, dir, abs)
	}
	args := append(append([]string{"build"}, Flags...), "-o", abs, ".")
	cmd := command(ctx, dir, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("wasmbuild: go build %s: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// SourceHash hashes everything the build of dir depends on: the Go version,
// flags, go.mod, go.sum (and go.work), and every source file of the packages
// it imports from the main module or from a module replaced by a local
// directory (other dependencies are pinned by go.sum). Equal hashes mean
// Build would produce equal bytes, which is what lets Cached skip builds.
func SourceHash(ctx context.Context, dir string) (string, error) {
	if IsRust(dir) {
		return rustSourceHash(ctx, dir)
	}
	// Packages of the main module, and of modules replaced by a local
	// directory: both change without go.sum noticing.
	const format = `{{if .Module}}{{if or .Module.Main (and .Module.Replace (not .Module.Replace.Version))}}{{.Dir}}` +
		`{{range .GoFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{"\n"}}{{end}}{{end}}`
	cmd := command(ctx, dir, "list", "-deps", "-f", format, ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	listing, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("wasmbuild: go list %s: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	env, err := command(ctx, dir, "env", "GOVERSION", "GOMOD", "GOWORK").Output()
	if err != nil {
		return "", fmt.Errorf("wasmbuild: go env: %w", err)
	}
	lines := strings.Split(string(env), "\n")
	h := sha256.New()
	fmt.Fprintln(h, lines[0], Flags, Env)
	var files []string
	if len(lines) > 1 && lines[1] != "" && lines[1] != os.DevNull {
		files = append(files, lines[1], filepath.Join(filepath.Dir(lines[1]), "go.sum"))
	}
	if len(lines) > 2 && lines[2] != "" && lines[2] != "off" {
		files = append(files, lines[2], lines[2]+".sum")
	}
	for _, f := range files {
		fmt.Fprintln(h, filepath.Base(f))
		if err := hashFile(h, f); err != nil && !os.IsNotExist(err) {
			return "", err
		}
	}
	pkgs := strings.Split(strings.TrimSpace(string(listing)), "\n")
	sort.Strings(pkgs)
	for _, line := range pkgs {
		parts := strings.Split(line, "|")
		for _, f := range parts[1:] {
			fmt.Fprintln(h, filepath.Base(parts[0]), f)
			if err := hashFile(h, filepath.Join(parts[0], f)); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Cached returns the path of dir's module in cacheDir, building it only when
// no build of the same sources is there yet. Concurrent callers (parallel
// test binaries) may both build; each renames a complete file into place.
// The file is named after the folder, however dir spells it: a plugin's
// own tests build "." and others build "plugins/NAME", and both must find
// the one build.
func Cached(ctx context.Context, dir, cacheDir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	sum, err := SourceHash(ctx, dir)
	if err != nil {
		return "", err
	}
	path := filepath.Join(cacheDir, filepath.Base(abs)+"-"+sum[:16]+".wasm")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(cacheDir, ".build-*.wasm")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := Build(ctx, dir, tmp.Name()); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// CompilationCacheDir is where wedgectl and tests keep wazero's compiled
// code, beside the built modules, so that a second process compiles a plugin
// in a fraction of the first one's time.
func CompilationCacheDir() string {
	return filepath.Join(filepath.Dir(DefaultCacheDir()), "wazero")
}

// DefaultCacheDir is where Cached keeps modules: the user cache directory,
// or the system temp directory when there is none.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "wedge", "plugins")
}
