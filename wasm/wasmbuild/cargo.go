package wasmbuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// A folder with a Cargo.toml is a Rust plugin: a cdylib crate built for
// wasm32-unknown-unknown with the SDK in sdk/rust.

// RustTarget is the target Rust plugins are built for: no WASI, so a module
// imports only what it calls of ABI v1.
const RustTarget = "wasm32-unknown-unknown"

// RustEnv is the build environment added to the process's for cargo. The
// profile settings override the crate's, as Flags do for Go: abort on panic
// (a trap, which the host reports), one codegen unit with LTO for a small,
// fast module, and no debug info, the standard library's included (most of
// a module otherwise), but the name section, which names the functions of
// a trap's stack trace. A 64 KiB stack instead of Rust's 1 MiB keeps an
// instance's memory small; the linker puts the stack first, so overflowing
// it traps rather than overwriting data. Bulk memory (which the host
// accepts) makes memcpy and memset single instructions: a quarter off a
// small plugin's call.
var RustEnv = []string{
	"CARGO_PROFILE_RELEASE_PANIC=abort",
	"CARGO_PROFILE_RELEASE_LTO=true",
	"CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1",
	"CARGO_PROFILE_RELEASE_DEBUG=false",
	"CARGO_PROFILE_RELEASE_STRIP=debuginfo",
	"RUSTFLAGS=-C link-arg=-zstack-size=65536 -C target-feature=+bulk-memory",
}

// ErrNoRust is the error (wrapped) of building a Rust plugin on a machine
// with no toolchain for RustTarget.
var ErrNoRust = errors.New("no Rust toolchain for " + RustTarget)

// IsRust reports whether dir is a Rust plugin folder (it has a Cargo.toml).
func IsRust(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "Cargo.toml"))
	return err == nil
}

// rustToolchain finds a cargo and rustc pair whose standard library exists
// for RustTarget: $RUSTC (with $CARGO or the cargo beside it) if set, else
// the rustc on PATH (a rustup toolchain with the target added), else
// Debian's (/usr/bin, with libstd-rust-dev-wasm32). It looks once per
// process: a build asks several times.
var rustToolchain = sync.OnceValues(func() (toolchain, error) {
	var candidates []string
	if env := os.Getenv("RUSTC"); env != "" {
		candidates = []string{env}
	} else {
		if p, err := exec.LookPath("rustc"); err == nil {
			candidates = append(candidates, p)
		}
		candidates = append(candidates, "/usr/bin/rustc")
	}
	for _, rc := range candidates {
		sysroot, err := exec.Command(rc, "--print", "sysroot").Output()
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(sysroot)), "lib", "rustlib", RustTarget, "lib")); err != nil {
			continue
		}
		cargo := os.Getenv("CARGO")
		if cargo == "" {
			cargo = filepath.Join(filepath.Dir(rc), "cargo")
			if _, err := os.Stat(cargo); err != nil {
				if cargo, err = exec.LookPath("cargo"); err != nil {
					continue
				}
			}
		}
		version, err := exec.Command(rc, "-vV").Output()
		if err != nil {
			continue
		}
		return toolchain{cargo: cargo, rustc: rc, version: string(version)}, nil
	}
	return toolchain{}, fmt.Errorf("wasmbuild: %w (tried %s): install Debian's rustc, cargo and libstd-rust-dev-wasm32, or run `rustup target add %s`",
		ErrNoRust, strings.Join(candidates, ", "), RustTarget)
})

// toolchain is a cargo and the rustc it builds with, and that rustc's
// version (rustc -vV), which a build's hash includes.
type toolchain struct {
	cargo, rustc, version string
}

func cargoCommand(ctx context.Context, dir string, args ...string) (*exec.Cmd, error) {
	tc, err := rustToolchain()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, tc.cargo, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "RUSTC="+tc.rustc), RustEnv...)
	return cmd, nil
}

// buildRust builds the crate in dir with cargo and copies its .wasm to out.
func buildRust(ctx context.Context, dir, out string) error {
	cmd, err := cargoCommand(ctx, dir, "build", "--release", "--target", RustTarget, "--message-format=json-render-diagnostics")
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("wasmbuild: cargo build %s: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	// The artifact's path is in cargo's messages; the crate's name is not
	// known here without parsing Cargo.toml.
	var wasm string
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var msg struct {
			Reason    string   `json:"reason"`
			Filenames []string `json:"filenames"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) != nil || msg.Reason != "compiler-artifact" {
			continue
		}
		for _, f := range msg.Filenames {
			if strings.HasSuffix(f, ".wasm") {
				wasm = f
			}
		}
	}
	if wasm == "" {
		return fmt.Errorf("wasmbuild: cargo build %s made no .wasm: is the crate's lib crate-type [\"cdylib\"]?", dir)
	}
	src, err := os.Open(wasm)
	if err != nil {
		return fmt.Errorf("wasmbuild: %w", err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("wasmbuild: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("wasmbuild: %w", err)
	}
	return dst.Close()
}

// rustSourceHash hashes what a Rust build depends on: the toolchain's
// version, RustEnv, the workspace's Cargo.toml and Cargo.lock (which pin
// crates from a registry), every cargo configuration file that applies,
// and the files of every local package of the crate's graph (the crate,
// the SDK and any other path dependency).
func rustSourceHash(ctx context.Context, dir string) (string, error) {
	cmd, err := cargoCommand(ctx, dir, "metadata", "--format-version", "1")
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("wasmbuild: cargo metadata %s: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	var meta struct {
		Packages []struct {
			Source       *string `json:"source"`
			ManifestPath string  `json:"manifest_path"`
		} `json:"packages"`
		WorkspaceRoot   string `json:"workspace_root"`
		TargetDirectory string `json:"target_directory"`
	}
	if err := json.Unmarshal(out, &meta); err != nil {
		return "", fmt.Errorf("wasmbuild: cargo metadata %s: %w", dir, err)
	}
	tc, _ := rustToolchain()
	h := sha256.New()
	fmt.Fprintln(h, tc.version, RustEnv)
	// Files that may not exist: a workspace's lock before its first build,
	// configuration files.
	optional := []string{filepath.Join(meta.WorkspaceRoot, "Cargo.toml"), filepath.Join(meta.WorkspaceRoot, "Cargo.lock")}
	optional = append(optional, cargoConfigs(dir)...)
	for _, f := range optional {
		fmt.Fprintln(h, f)
		if err := hashFile(h, f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	var roots []string
	for _, p := range meta.Packages {
		if p.Source == nil {
			roots = append(roots, filepath.Dir(p.ManifestPath))
		}
	}
	sort.Strings(roots)
	for _, root := range roots {
		files, err := packageFiles(root, meta.TargetDirectory)
		if err != nil {
			return "", err
		}
		for _, f := range files {
			fmt.Fprintln(h, f)
			if err := hashFile(h, filepath.Join(root, f)); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cargoConfigs lists the cargo configuration files that may apply to a
// build in dir: .cargo/config.toml (or .cargo/config) in dir and every
// folder above it, and in $CARGO_HOME.
func cargoConfigs(dir string) []string {
	var dirs []string
	if abs, err := filepath.Abs(dir); err == nil {
		for d := abs; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, ".cargo"))
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	if home := os.Getenv("CARGO_HOME"); home != "" {
		dirs = append(dirs, home)
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cargo"))
	}
	var files []string
	for _, d := range dirs {
		files = append(files, filepath.Join(d, "config.toml"), filepath.Join(d, "config"))
	}
	return files
}

// packageFiles lists the files of the package rooted at root that a build
// reads, relative to root: everything but the build output (root/target,
// and target, the workspace's target directory), version control and
// editor folders (dot folders), and the folders of other packages nested
// inside it.
func packageFiles(root, target string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if path == filepath.Join(root, "target") || path == target || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "Cargo.toml")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("wasmbuild: %w", err)
	}
	return files, err
}
