package pop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/controlplane/controlplanetest"
	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/registry"
	"github.com/talowa/wedge/edge"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestPeerAddr: a POP reports advertise if set, else its listener as
// bound, but no address for a wildcard one, which no peer can dial.
func TestPeerAddr(t *testing.T) {
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 8080} }
	for _, c := range []struct {
		advertise string
		bound     net.Addr
		want      string
	}{
		{"", tcp("127.0.0.1"), "127.0.0.1:8080"},
		{"", tcp("0.0.0.0"), ""},
		{"", tcp("::"), ""},
		{"edge-1.example:8080", tcp("::"), "edge-1.example:8080"},
	} {
		if got := peerAddr(c.advertise, c.bound); got != c.want {
			t.Errorf("peerAddr(%q, %s) = %q, want %q", c.advertise, c.bound, got, c.want)
		}
	}
}

// tierKey signs the tier's envelopes: a key of its own, as the config
// requires of it.
var tierKey = wire.Key{ID: 9, Secret: bytes.Repeat([]byte{9}, 32)}

// TestAdvertise: the config refuses an advertise address peers cannot
// dial, and a POP on the control plane with a tier listener reports the
// one it is given.
func TestAdvertise(t *testing.T) {
	cp, stores := controlplanetest.Start(t, embedded.Options{Listen: "127.0.0.1:0"})
	dir := t.TempDir()
	_, trust, err := registry.GenerateKey(dir, "signer")
	if err != nil {
		t.Fatal(err)
	}
	_, control, err := registry.GenerateKey(dir, "controller")
	if err != nil {
		t.Fatal(err)
	}
	org := origintest.Start(t, origintest.OK)
	config := func(advertise string) (*edge.Config, error) {
		return edge.ParseConfig(fmt.Appendf(nil, `listen: 127.0.0.1:0
advertise: %q
tier: {listen: 127.0.0.1:0, key: %q}
pop: pop-1
region: eu-west
origins:
  app: {addr: %q, key: %q}
routes:
  - {origin: app}
fleet: {nats: %q, trust: [%q], control_keys: [%q]}
`, advertise, tierKey.Text(), org.Addr, origintest.Key.Text(), cp.URL(), trust, control), dir)
	}
	for _, bad := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "edge-1", "edge-1:0", "edge-1:http"} {
		if _, err := config(bad); err == nil || !strings.Contains(err.Error(), "advertise") {
			t.Errorf("advertise %q: %v, want it refused", bad, err)
		}
	}
	cfg, err := config("127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Report: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	testutil.Eventually(t, 2*time.Minute, "pop-1 reports 127.0.0.1:9", func() bool {
		e, err := stores.Status.Get(context.Background(), manifest.StatusKey("eu-west", "pop-1"))
		var st manifest.Status
		return err == nil && json.Unmarshal(e.Value(), &st) == nil && st.Peer == "127.0.0.1:9"
	})
}
