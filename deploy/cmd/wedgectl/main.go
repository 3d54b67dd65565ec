package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand: its usage line and what it runs.
type command struct {
	usage string
	run   func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"plugin new":        {"plugin new NAME [--lang go|rust] [--sdk DIR] [PARENT/NAME]", pluginNew},
	"plugin build":      {"plugin build DIR [-o FILE.wasm]", pluginBuild},
	"plugin run":        {"plugin run DIR|FILE.wasm [-config JSON|@FILE] [-H 'Name: value'] [-d BODY] [-n N] [METHOD] PATH", pluginRun},
	"up":                {"up [--plugin DIR]... [--plugin-config NAME=JSON]... [--chain auth,ratelimit,cache] [--listen ADDR] [--upstream URL] [--regions eu-west:3,us-east,ap-south] [--nats ADDR [--ha]] [--status ADDR] [--log-level info]", up},
	"edge":              {"edge -config FILE [-compilation-cache DIR]", edgeCmd},
	"origin keygen":     {"origin keygen [-id N]", originKeygen},
	"origin train-dict": {"origin train-dict [-id N] [-size BYTES] [-o FILE] SAMPLES...", originTrainDict},
	"control":           {"control [--nats URL --creds FILE --ca FILE] [--embedded DIR [--listen ADDR] [--auth DIR] [--tls-hosts HOSTS] [--cluster ROUTES --name NAME --cluster-listen ADDR] [--leaf-listen ADDR] [--server-only]] [--http ADDR] --trust FILES [--controller-key FILE] [--controller-trust FILES]", control},
	"control leaf":      {"control leaf --hub URLS --auth DIR [--listen ADDR] [--name NAME] [--http ADDR]", controlLeaf},
	"control creds":     {"control creds controller|push|rollout|revoke|leaf|pop [NAME --region REGION] --auth DIR [-o FILE]", controlCreds},
	"control revoke":    {"control revoke KEY|FILE --auth DIR --reason TEXT [--nats URLS] [--who NAME]", controlRevoke},
	"control backup":    {"control backup [--nats URL] DIR", controlBackup},
	"control restore":   {"control restore [--nats URL] [--force] [--replicas N] DIR", controlRestore},
	"rollout start":     {"rollout start PLUGIN@VERSION --waves eu-west:10%,eu-west,us-east,* --gate error_rate<1%,p99<50ms [--bake 2m] [--key ROUTE/PLUGIN] [--config JSON] [--min-requests N] [--trust FILES] [--dry-run] [--why TEXT]", rolloutStart},
	"rollout status":    {"rollout status [--nats URL]", rolloutStatus},
	"rollout pause":     {"rollout pause ID [--why TEXT]", rolloutAction("pause")},
	"rollout resume":    {"rollout resume ID [--why TEXT]", rolloutAction("resume")},
	"rollout promote":   {"rollout promote ID [--why TEXT]", rolloutAction("promote")},
	"rollout abort":     {"rollout abort ID [--why TEXT]", rolloutAction("abort")},
	"rollout rollback":  {"rollout rollback ID [--why TEXT]", rolloutAction("rollback")},
	"rollout audit":     {"rollout audit [-n 20]", rolloutAudit},
	"keys gen":          {"keys gen [-o DIR] NAME", keysGen},
	"plugin push":       {"plugin push FILE.wasm --name N --version V --key KEY.pem [--nats URL]", pluginPush},
	"plugin list":       {"plugin list [--nats URL]", pluginList},
	"plugin revoke":     {"plugin revoke DIGEST --reason TEXT --key KEY.pem [--trust FILES] [--nats URL]", pluginRevoke},
	"purge":             {"purge --tag T | --url URL [--region R] [--timeout 5s] [--alive 5s] [--nats URL]", purge},

	"control leaf-bundle": {"control leaf-bundle DIR --auth DIR [--tls-hosts HOSTS]", controlLeafBundle},
	"control renew-certs": {"control renew-certs --auth DIR [--leaf-bundle DIR] [--tls-hosts HOSTS]", controlRenewCerts},
}

// errUsage is a command line that names no command.
var errUsage = errors.New("unknown command")

// stopSignals end a command as Ctrl-C does: SIGTERM is what kill,
// systemd and docker send, and `up` left its directory (keys and
// credentials in it) behind on it.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	if code := report(run(ctx, os.Args[1:], os.Stdout), os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// report writes what a run's error says to the user and returns the exit
// code.
func report(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // -h: the flag set printed its flags, as asked
		return 0
	case errors.Is(err, errUsage):
		usage(stderr)
	}
	fmt.Fprintln(stderr, "wedgectl:", err)
	return 2
}

// run dispatches args to a subcommand of one or two words.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: none given", errUsage)
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for n := 2; n >= 1; n-- {
		if len(args) < n {
			continue
		}
		name := args[0]
		if n == 2 {
			name += " " + args[1]
		}
		if c, ok := commands[name]; ok {
			return c.run(ctx, args[n:], stdout)
		}
	}
	name := args[0]
	for c := range commands {
		if len(args) > 1 && strings.HasPrefix(c, name+" ") {
			name += " " + args[1] // a group's ("plugin") unknown member
			break
		}
	}
	return fmt.Errorf("%w %q", errUsage, name)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: wedgectl COMMAND")
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintln(w, "  wedgectl "+commands[name].usage)
	}
}
