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
// Debian's (/usr/bin, with libstd-rust-dev-wasm32).
func rustToolchain(ctx context.Context) (cargo, rustc string, err error) {
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
		sysroot, err := exec.CommandContext(ctx, rc, "--print", "sysroot").Output()
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(sysroot)), "lib", "rustlib", RustTarget, "lib")); err != nil {
			continue
		}
		cargo = os.Getenv("CARGO")
		if cargo == "" {
			cargo = filepath.Join(filepath.Dir(rc), "cargo")
			if _, err := os.Stat(cargo); err != nil {
				if cargo, err = exec.LookPath("cargo"); err != nil {
					continue
				}
			}
		}
		return cargo, rc, nil
	}
	return "", "", fmt.Errorf("wasmbuild: %w (tried %s): install Debian's rustc, cargo and libstd-rust-dev-wasm32, or run `rustup target add %s`",
		ErrNoRust, strings.Join(candidates, ", "), RustTarget)
}

func cargoCommand(ctx context.Context, dir string, args ...string) (*exec.Cmd, error) {
	cargo, rustc, err := rustToolchain(ctx)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, cargo, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "RUSTC="+rustc), RustEnv...)
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
// version, RustEnv, and the sources of every local package of the crate's
// graph (the crate, the SDK and any other path dependency; crates from a
// registry are pinned by Cargo.lock, which is hashed with its crate).
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
	}
	if err := json.Unmarshal(out, &meta); err != nil {
		return "", fmt.Errorf("wasmbuild: cargo metadata %s: %w", dir, err)
	}
	_, rustc, _ := rustToolchain(ctx)
	version, err := exec.CommandContext(ctx, rustc, "-vV").Output()
	if err != nil {
		return "", fmt.Errorf("wasmbuild: %s -vV: %w", rustc, err)
	}
	h := sha256.New()
	fmt.Fprintln(h, string(version), RustEnv)
	var roots []string
	for _, p := range meta.Packages {
		if p.Source == nil {
			roots = append(roots, filepath.Dir(p.ManifestPath))
		}
	}
	sort.Strings(roots)
	for _, root := range roots {
		files, err := packageFiles(root)
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

// packageFiles lists the files of the package rooted at root that a build
// reads, relative to root: everything but build output (target), hidden
// folders and the folders of other packages nested inside it.
func packageFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if d.Name() == "target" || strings.HasPrefix(d.Name(), ".") {
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
