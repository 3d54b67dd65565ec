// How many copies of its buckets and streams a control plane keeps.

package controlplane

import "github.com/nats-io/nats.go"

// Replicas is how many copies of each bucket and stream Ensure keeps on
// the control plane nc is connected to: 3 on a cluster, so that losing any
// one server loses nothing and the other two still make a majority; 1 on a
// server alone, where there is nowhere else to keep one. A cluster of
// fewer than three servers cannot lose one, and Ensure fails there (the
// server says "insufficient resources").
func Replicas(nc *nats.Conn) int {
	if nc.ConnectedClusterName() == "" {
		return 1
	}
	return 3
}
