package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/controlplane/auth"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/deploy/rollout"
	"github.com/talowa/wedge/edge/pop"
)

// edgeCmd is `wedgectl edge`: the POP itself, so that one binary is all an
// operator needs, and `up` starts its edges as processes of its own.
func edgeCmd(ctx context.Context, args []string, _ io.Writer) error {
	return pop.Main(ctx, args, os.Stderr)
}

// controlTarget is the control plane a command talks to: its URL and the
// credential and CA to present and trust.
type controlTarget struct {
	url string
	sec controlplane.Security
}

// natsFlag registers the flags of the commands that talk to the control
// plane: --nats, --creds and --ca.
func natsFlag(fs *flag.FlagSet) *controlTarget {
	def := os.Getenv("WEDGE_NATS")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	t := &controlTarget{}
	fs.StringVar(&t.url, "nats", def, "control plane `URL`, or a cluster's members' URLs, comma-separated (default $WEDGE_NATS or nats://127.0.0.1:4222)")
	fs.StringVar(&t.sec.Creds, "creds", os.Getenv("WEDGE_CREDS"),
		"credentials `FILE` for the control plane (wedgectl control creds ROLE; default $WEDGE_CREDS)")
	fs.StringVar(&t.sec.CA, "ca", os.Getenv("WEDGE_CA"),
		"the control plane's CA certificate `FILE`, its auth directory's ca.pem (default $WEDGE_CA)")
	return t
}

// connect opens the control plane's stores for one command. It does not
// retry: a CLI command should fail, not hang, when nothing is listening.
// It opens, never creates: the buckets' configs are `up`'s and `control`'s
// to set, and a command run against the wrong server must not initialise it.
func connect(ctx context.Context, url *controlTarget) (*controlplane.Stores, func(), error) {
	nc, err := nats.Connect(url.url, append(url.sec.Options(), nats.Name("wedgectl"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the control plane at %s: %w (is `wedgectl up` or `wedgectl control --embedded DIR` running?)", url.url, err)
	}
	s, err := controlplane.Open(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return s, nc.Close, nil
}

// subprocessEnv marks a process `up` started, for the tests' re-exec.
const subprocessEnv = "WEDGECTL_SUBPROCESS=1"

// localFleet is the control plane `up` runs: embedded NATS, the rollout
// controller, the key that signs the plugin versions the edges trust, and
// the controller's key that signs the desired state they apply.
type localFleet struct {
	cp      controlPlane
	stores  *controlplane.Stores
	key     string // private key file, for `wedgectl plugin push --key`
	pub     string // public key file, in every edge's trust store
	control string // the controller's public key file, every edge's control_keys
	done    chan struct{}

	// auth is the control plane's auth directory: every edge's credential.
	auth *auth.Material
}

func startFleet(ctx context.Context, dir, listen string, ha bool, log *slog.Logger) (*localFleet, error) {
	f := &localFleet{done: make(chan struct{})}
	var err error
	if f.key, f.pub, err = registry.GenerateKey(dir, "up"); err != nil {
		return nil, err
	}
	ctlPriv, ctlPub, err := registry.GenerateKey(dir, controllerKeyName)
	if err != nil {
		return nil, err
	}
	ctlKey, err := registry.LoadPrivateKey(ctlPriv)
	if err != nil {
		return nil, err
	}
	// The controller trusts the artifact key the POPs trust (up.pub), so
	// it counts the revocations they take, and only those.
	artifacts, err := manifest.LoadTrustFiles(f.pub)
	if err != nil {
		return nil, err
	}
	f.control = ctlPub
	if f.auth, err = auth.Init(filepath.Join(dir, "auth"), nil); err != nil {
		return nil, err
	}
	f.auth.TLS.Log = log
	if f.cp, err = startControlPlane(filepath.Join(dir, "nats"), listen, ha, f.auth); err != nil {
		return nil, err
	}
	nc, err := f.cp.Connect("wedgectl-up")
	if err != nil {
		f.cp.Shutdown()
		return nil, err
	}
	if f.stores, err = controlplane.Ensure(ctx, nc); err != nil {
		nc.Close()
		f.cp.Shutdown()
		return nil, err
	}
	go func() {
		defer close(f.done)
		defer nc.Close()
		rollout.NewController(f.stores, rollout.Options{Log: log, Key: ctlKey, ArtifactKeys: artifacts}).Run(ctx)
	}()
	return f, nil
}

// creds is the controller's credentials file, for the wedgectl commands
// run against `up` (every role's rights), and ca the CA file.
func (f *localFleet) creds() (creds, ca string) {
	return auth.CredsFile(f.auth.Dir, auth.Controller), filepath.Join(f.auth.Dir, auth.CAFile)
}

// writePOPCreds writes the credential of POP pop of region to
// popCredsFile(dir, pop).
func (f *localFleet) writePOPCreds(dir, pop, region string) error {
	c, err := f.auth.Creds(auth.POP, pop, region)
	if err != nil {
		return err
	}
	return os.WriteFile(popCredsFile(dir, pop), c, 0o600)
}

// popCredsFile is where `up` keeps POP pop's credential.
func popCredsFile(dir, pop string) string { return filepath.Join(dir, pop+".creds") }

// stop waits for the controller (its ctx must be done) and stops NATS.
func (f *localFleet) stop() {
	<-f.done
	f.cp.Shutdown()
}

// child is an edge process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var servingLine = regexp.MustCompile(`msg="edge: serving" listen=(\S+)`)

// spawnEdge starts `wedgectl edge -config cfg` with its log in logFile and
// returns once it serves, with the address it bound.
func spawnEdge(cfg, logFile string) (*child, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	out, err := os.Create(logFile)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe, "edge", "-config", cfg)
	cmd.Env = append(os.Environ(), subprocessEnv)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		out.Close()
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, "", err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(out, sc.Text())
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		cmd.Wait()
		close(c.done)
	}()
	select {
	case a := <-addr:
		return c, a, nil
	case <-c.done:
		return nil, "", fmt.Errorf("edge %s exited: %s; its log is %s", cfg, cmd.ProcessState, logFile)
	case <-time.After(2 * time.Minute):
		c.stop()
		return nil, "", fmt.Errorf("edge %s did not serve within 2 minutes; its log is %s", cfg, logFile)
	}
}

// stop interrupts the edge, which drains, and kills it if it has not
// ended in 15 s.
func (c *child) stop() {
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// nextPort returns addr with its port moved by i ("host:0" stays 0).
func nextPort(addr string, i int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return "", fmt.Errorf("bad port in %q", addr)
	}
	if p != 0 {
		p += i
	}
	if p > 65535 {
		return "", fmt.Errorf("%q: no port %d for the POP after %d others", addr, p, i)
	}
	return net.JoinHostPort(host, fmt.Sprint(p)), nil
}
