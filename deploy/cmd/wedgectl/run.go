package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// pluginRun is the plugin author's local loop: build the plugin, load it
// into a runtime with in-memory stores, send it requests and print what
// came back, with the plugin's logs and any failure in full.
func pluginRun(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plugin run", flag.ContinueOnError)
	var headers listFlag
	fs.Var(&headers, "H", "request header `Name: value` (repeatable)")
	config := fs.String("config", "", "plugin configuration, or @file to read it from a file")
	body := fs.String("d", "", "request body")
	repeat := fs.Int("n", 1, "send the request this many times (to see the cache, rate limits, timings)")
	originStatus := fs.Int("origin-status", 200, "status of the stand-in origin")
	originBody := fs.String("origin-body", "hello from the origin\n", "body of the stand-in origin")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.NArg() > 3 {
		return fmt.Errorf("plugin run: want DIR [METHOD] PATH, got %q", fs.Args())
	}
	dir, method, target := fs.Arg(0), "GET", fs.Arg(fs.NArg()-1)
	if fs.NArg() == 3 {
		method = fs.Arg(1)
	}
	if !abi.ValidToken(method) || !strings.HasPrefix(target, "/") {
		return fmt.Errorf("plugin run: want DIR [METHOD] PATH, a method such as GET and a path starting with /, got %q", fs.Args())
	}
	cfg := []byte(*config)
	if strings.HasPrefix(*config, "@") {
		var err error
		if cfg, err = os.ReadFile((*config)[1:]); err != nil {
			return err
		}
	}
	req := host.Request{Method: method, Scheme: "http", Host: "localhost", Proto: "HTTP/1.1",
		ClientAddr: "127.0.0.1:50000", Body: []byte(*body)}
	req.Path, req.RawQuery, _ = strings.Cut(target, "?")
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("plugin run: header %q is not Name: value", h)
		}
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}

	start := time.Now()
	path := dir // a module built before (a .wasm file), or the source to build
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("plugin run: %w", err)
	} else if fi.IsDir() {
		if path, err = wasmbuild.Cached(ctx, dir, wasmbuild.DefaultCacheDir()); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	built := time.Since(start)
	rt, err := wasm.NewRuntime(ctx, wasm.NewConfig().WithPoolSize(1).WithCompilationCache(wasmbuild.CompilationCacheDir()).
		WithStores(host.NewMemCache(64<<20), host.NewGCRA(1<<16)).
		WithLogger(slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	// Named after its folder or file, as far as a plugin name allows.
	abs, _ := filepath.Abs(dir)
	name := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, strings.TrimSuffix(filepath.Base(abs), ".wasm"))
	m, err := rt.Load(ctx, wasm.Spec{Name: name, Version: "dev", Binary: bin, Config: cfg})
	var ce *wasm.CallError
	if errors.As(err, &ce) {
		printFailure(stdout, err) // a trap in init or Configure: the panic before the wasm trace
		return errors.New("plugin run: the plugin failed to load")
	}
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(stdout, "# %s: %d bytes, sha256 %s, built in %v, loaded in %v\n",
		filepath.Base(abs), len(bin), m.Digest()[:16], built.Round(time.Millisecond), (time.Since(start) - built).Round(time.Millisecond))

	var asked *host.Request // what the stand-in origin got, for the plugin's author to check
	origin := func(r *host.Request) host.Response {
		asked = r
		return host.Response{Status: *originStatus, Body: []byte(*originBody),
			Header: host.Header{Fields: []host.HeaderField{{Name: "Content-Type", Value: "text/plain"}}}}
	}
	var failed error
	for i := 0; i < *repeat; i++ {
		start, asked = time.Now(), nil
		res := host.Run(req, m.OnRequest, origin, m.OnResponse)
		took := time.Since(start)
		fmt.Fprintf(stdout, "\n# request %d: %s %s -> %d in %v", i+1, method, target, res.Resp.Status, took.Round(time.Microsecond))
		switch {
		case res.RequestErr != nil && res.Answered:
			fmt.Fprint(stdout, " (the plugin failed; the host answered)")
		case res.RequestErr != nil:
			fmt.Fprint(stdout, " (the plugin failed; the request went on to the origin)")
		case res.Answered:
			fmt.Fprint(stdout, " (answered by the plugin)")
		}
		fmt.Fprintln(stdout)
		for _, e := range []error{res.RequestErr, res.ResponseErr} {
			if e != nil {
				printFailure(stdout, e)
				failed = errors.Join(failed, e)
			}
		}
		for _, f := range res.Resp.Header.Fields {
			fmt.Fprintf(stdout, "%s: %s\n", f.Name, f.Value)
		}
		for j := 0; j < res.Vals.Len(); j++ {
			k, v, flags := res.Vals.At(j)
			to := ""
			if flags&abi.ValueForward != 0 {
				to = " (the application gets it as the header Wedge-Value-" + string(k) + ")"
			}
			fmt.Fprintf(stdout, "# value %s = %s%s\n", k, v, to)
		}
		if asked != nil {
			target := asked.Path
			if asked.RawQuery != "" {
				target += "?" + asked.RawQuery
			}
			fmt.Fprintf(stdout, "# the origin got: %s %s (host %s)\n", asked.Method, target, asked.Host)
			for _, f := range asked.Header.Fields {
				fmt.Fprintf(stdout, "#   %s: %s\n", f.Name, f.Value)
			}
		}
		fmt.Fprintf(stdout, "\n%s", res.Resp.Body)
	}
	if failed != nil {
		return errors.New("plugin run: the plugin failed")
	}
	return nil
}

// printFailure writes a failed call as up's console log does: the error's
// line, then what the guest wrote (a Go panic and its goroutine stack),
// then the wasm stack trace.
func printFailure(w io.Writer, err error) {
	var kind, msg, stack string
	for _, a := range wasm.FailureAttrs(err) {
		switch a.Key {
		case "kind":
			kind = a.Value.String()
		case "err":
			msg = a.Value.String()
		case "stack":
			stack = a.Value.String()
		}
	}
	fmt.Fprintf(w, "# error (%s): %s\n", kind, msg)
	if stack != "" {
		fmt.Fprintln(w, stack)
	}
}
