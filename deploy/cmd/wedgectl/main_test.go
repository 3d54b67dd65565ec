package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// TestRunCommandLine: a mistyped command is named in the error (it was the
// usage alone), help is not an error, and a command's -h is not a failure
// (it ended "wedgectl: flag: help requested", exit 2).
func TestRunCommandLine(t *testing.T) {
	ctx := context.Background()
	for args, want := range map[string]string{
		"bogus":             `unknown command "bogus"`,
		"plugin bogus":      `unknown command "plugin bogus"`,
		"rollout":           `unknown command "rollout"`,
		"bogus plugin list": `unknown command "bogus"`,
	} {
		err := run(ctx, strings.Fields(args), io.Discard)
		if !errors.Is(err, errUsage) || err.Error() != want {
			t.Errorf("wedgectl %s: %v, want %q", args, err, want)
		}
	}
	if err := run(ctx, nil, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("wedgectl alone: %v, want the usage", err)
	}
	var out strings.Builder
	if err := run(ctx, []string{"help"}, &out); err != nil || !strings.Contains(out.String(), "wedgectl rollout start") {
		t.Errorf("wedgectl help: %v\n%s", err, out.String())
	}
	for _, args := range [][]string{{"up", "--help"}, {"plugin", "list", "-h"}} {
		err := run(ctx, args, io.Discard)
		var stderr strings.Builder
		if code := report(err, &stderr); !errors.Is(err, flag.ErrHelp) || code != 0 || stderr.Len() != 0 {
			t.Errorf("wedgectl %s: %v, exit %d, %q; want flag.ErrHelp, 0 and nothing more", args, err, code, stderr.String())
		}
	}
	var stderr strings.Builder
	if code := report(run(ctx, []string{"plugin", "bogus"}, io.Discard), &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "usage: wedgectl COMMAND") || !strings.HasSuffix(stderr.String(), "wedgectl: unknown command \"plugin bogus\"\n") {
		t.Errorf("wedgectl plugin bogus: exit %d,\n%s", code, stderr.String())
	}
}
