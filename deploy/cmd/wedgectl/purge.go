package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// purge is `wedgectl purge`: purge a tag or a URL from the cache of every
// POP (of a region), through the control plane's purge stream, and wait
// for each POP that is alive to confirm. POPs that did not confirm in time
// make it fail; they apply the purge when they are back (the stream keeps
// it for manifest.PurgeRetention).
func purge(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	tag := fs.String("tag", "", "purge the cached responses tagged `T` (Surrogate-Key, Cache-Tag)")
	rawURL := fs.String("url", "", "purge every variant of the cached responses for the absolute `URL`")
	region := fs.String("region", "", "purge in `REGION` only (default: every region)")
	timeout := fs.Duration("timeout", 5*time.Second, "wait this long for the POPs to confirm")
	alive := fs.Duration("alive", 5*time.Second, "expect a confirmation from each POP whose status is younger than this")
	url := natsFlag(fs)
	whoName := whoFlag(fs)
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("purge: unexpected arguments %q", fs.Args())
	}
	who, err := operator(*whoName)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	p := manifest.Purge{ID: manifest.NewPurgeID(), Tag: *tag, URL: *rawURL, Region: *region, Who: who}
	// Checked before connecting, so a bad flag fails at once.
	if err := p.Check(); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	s, closeConn, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer closeConn()
	res, err := s.Purge(ctx, p, *alive, *timeout)
	if err != nil {
		return err
	}
	what := "tag " + p.Tag
	if p.URL != "" {
		what = "url " + p.URL
	}
	where := "every region"
	if p.Region != "" {
		where = "region " + p.Region
	}
	var took time.Duration
	if n := len(res.Confirmed); n > 0 {
		took = res.Confirmed[n-1].After
	}
	fmt.Fprintf(stdout, "purge %s (%s, %s): %d of %d POPs confirmed in %s\n", res.Purge.ID, what, where,
		len(res.Expected)-len(res.Missing), len(res.Expected), took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, c := range res.Confirmed {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tpurged %d\n", c.POP, c.Region, c.After.Round(time.Millisecond), c.Purged)
	}
	tw.Flush()
	if len(res.Missing) > 0 {
		return fmt.Errorf("purge %s: not confirmed within %s by %s (they apply it when they are back)",
			res.Purge.ID, *timeout, strings.Join(res.Missing, ", "))
	}
	return nil
}
