package embedded

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestStartClusterPortTaken: a route port taken by someone else between
// the pick and the member's start costs a try, not the cluster, and the
// member's start says why it failed.
func TestStartClusterPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	// A member alone on the taken port: the reason, not a timeout.
	routes := []string{"nats-route://" + taken.Addr().String(), "nats-route://127.0.0.1:1", "nats-route://127.0.0.1:2"}
	if s, err := Start(Options{Listen: "127.0.0.1:0", Name: "m", Cluster: &ClusterOptions{Listen: taken.Addr().String(), Routes: routes}}); err == nil {
		s.Shutdown()
		t.Fatal("started on a taken route port")
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("start on a taken route port: %v, want address in use", err)
	}

	// The first pick hands member 2 the taken port.
	tries := 0
	ports := func(hosts []string) ([]string, error) {
		tries++
		addrs, err := freePorts(hosts)
		if tries == 1 && err == nil {
			addrs[2] = taken.Addr().String()
		}
		return addrs, err
	}
	c, err := startCluster(t.TempDir(), nil, []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}, ports)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if tries != 2 {
		t.Errorf("%d tries, want 2", tries)
	}
	for i, s := range c.Members() {
		if s == nil {
			t.Errorf("member %d not running", i+1)
		}
	}
}
