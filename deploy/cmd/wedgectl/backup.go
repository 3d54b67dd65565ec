package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane/backup"
)

// controlBackup is `wedgectl control backup DIR`.
func controlBackup(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control backup", flag.ContinueOnError)
	url := natsFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("control backup: want one directory, got %q", fs.Args())
	}
	nc, err := dialControl(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	start := time.Now()
	m, err := backup.Backup(ctx, nc, fs.Arg(0))
	if err != nil {
		return err
	}
	printStreams(stdout, m)
	fmt.Fprintf(stdout, "backed up to %s in %s\n", fs.Arg(0), time.Since(start).Round(time.Millisecond))
	return nil
}

// controlRestore is `wedgectl control restore DIR`.
func controlRestore(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("control restore", flag.ContinueOnError)
	url := natsFlag(fs)
	force := fs.Bool("force", false, "delete the backup's streams where the control plane holds them with messages (restoring over live state)")
	replicas := fs.Int("replicas", 0, "replicas of every stream restored (0: as the control plane keeps them, 3 on a cluster, 1 on a server alone)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("control restore: want one directory, got %q", fs.Args())
	}
	nc, err := dialControl(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	start := time.Now()
	m, err := backup.Restore(ctx, nc, fs.Arg(0), backup.Options{Force: *force, Replicas: *replicas})
	if err != nil {
		return err
	}
	printStreams(stdout, m)
	fmt.Fprintf(stdout, "restored the backup of %s in %s\n", m.Taken.Format(time.RFC3339), time.Since(start).Round(time.Millisecond))
	return nil
}

// dialControl connects once, without retrying: the control plane to back
// up or restore into must be there now. Unlike connect, it opens no
// buckets: a restore's target has none.
func dialControl(url *controlTarget) (*nats.Conn, error) {
	nc, err := nats.Connect(url.url, append(url.sec.Options(), nats.Name("wedgectl"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("connect to the control plane at %s: %w", url.url, err)
	}
	return nc, nil
}

func printStreams(stdout io.Writer, m *backup.Manifest) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tKIND\tCOUNT")
	for _, s := range m.Streams {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", s.Name, s.Kind, s.Count)
	}
	tw.Flush()
}
