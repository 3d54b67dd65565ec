// Package deploy is Wedge's control plane and operator tooling. It holds no
// code of its own, only the end-to-end tests of a whole fleet (a control
// plane, POPs running real plugins, rollouts and faults); the parts are its
// subpackages:
//
//   - manifest: the contract between the control plane and the edges
//     (bucket and key names, signed artifacts, desired state, POP status,
//     audit entries), a leaf package;
//   - controlplane: the client of the control plane (NATS JetStream,
//     embedded or external): its buckets, and fetching and verifying a
//     module; controlplane/embedded is the server; controlplane/backup
//     backs it up to plain files and restores it (the drill is
//     drill_test.go);
//   - registry: the signed plugin registry (push, list, revoke, fetch);
//   - rollout: the controller that rolls a version out region by region,
//     with canaries and health gates, and rolls it back;
//   - status: the controller's web status page;
//   - monitoring: Prometheus alert rules and a Grafana dashboard for the
//     fleet, and the control plane's /metrics;
//   - cmd/wedgectl: the one binary operators and plugin authors use,
//     including `wedgectl up`, the local fleet;
//   - bench and cmd/bench*, cmd/loadgen: the benchmark scripts and their
//     tools.
//
// The edge's side of the control plane (watching desired state, loading
// and reporting) is edge/fleet.
package deploy
