// Package deploy is Wedge's control plane and operator tooling: plugin
// builds, and (to come) the signed registry, region manifests, rollouts and
// the local fleet. The binary is deploy/cmd/wedgectl.
package deploy
