package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// pluginBuild builds a plugin folder into a .wasm module, checks that the
// module is a loadable ABI v1 plugin, and prints its sha256. The same source
// and toolchain always give the same bytes (see wasmbuild).
func pluginBuild(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plugin build", flag.ContinueOnError)
	out := fs.String("o", "", "output file (default: DIR's name + .wasm)")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("plugin build: want one plugin directory, got %d arguments", fs.NArg())
	}
	dir := fs.Arg(0)
	if *out == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		*out = filepath.Base(abs) + ".wasm"
	}
	if err := wasmbuild.Build(ctx, dir, *out); err != nil {
		return err
	}
	bin, err := os.ReadFile(*out)
	if err != nil {
		return err
	}
	// The compilation cache that `plugin run`, `up` and `edge` use: the
	// check's compile is then the one they load from.
	rt, err := wasm.NewRuntime(ctx, wasm.NewConfig().WithCompilationCache(wasmbuild.CompilationCacheDir()))
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	if err := rt.Validate(ctx, bin); err != nil {
		return fmt.Errorf("plugin build: %s is not a usable plugin: %w", *out, err)
	}
	sum := sha256.Sum256(bin)
	fmt.Fprintf(stdout, "sha256:%s  %s  %d bytes\n", hex.EncodeToString(sum[:]), *out, len(bin))
	return nil
}

// parseInterspersed parses flags that may come before or after positional
// arguments: `plugin build DIR -o x.wasm` and `plugin build -o x.wasm DIR`.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(positional)
}
