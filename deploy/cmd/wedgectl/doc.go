// Command wedgectl is the one binary operators and plugin authors use.
//
// Running Wedge:
//
//	wedgectl up              the whole system on this machine: control plane, origin, edges
//	wedgectl edge            one POP (an edge node and its control-plane agent)
//	wedgectl control         the rollout controller and its status page (--embedded DIR
//	                         --cluster ROUTES: a member of a three-server control plane)
//	wedgectl control leaf    a region's leaf node, which its POPs connect to (README.md, "A highly available control plane")
//	wedgectl control creds   a credential for a role, or for one POP (README.md, "Control-plane credentials and TLS")
//	wedgectl control revoke  withdraw one credential, on the running servers and for every start (same section)
//	wedgectl control leaf-bundle  what a leaf node's machine gets, without the control plane's keys (same section)
//	wedgectl control renew-certs  the servers' or a leaf's TLS certificate again, taken without a restart (same section)
//	wedgectl control backup  the whole control plane to a directory of plain files, checked
//	wedgectl control restore a backup into an empty control plane (README.md, "Backup and restore")
//
// Writing plugins:
//
//	wedgectl plugin new      a working plugin folder (Go or Rust) with its tests and README
//	wedgectl plugin build    build a plugin folder into a .wasm module, reproducibly
//	wedgectl plugin run      build it and send it requests, printing what came back
//
// `wedgectl up --plugin DIR` runs a plugin folder in the local edge and
// rebuilds and swaps it in on every save (--chain, --plugin-config NAME=JSON,
// --log-level debug|info|warn|error); see README.md, "Writing a plugin".
//
// The signed registry:
//
//	wedgectl keys gen        an Ed25519 key pair that signs plugin versions (or, as
//	                         `keys gen controller`, desired state: control --controller-key)
//	wedgectl plugin push     sign a module as name@version and publish it
//	wedgectl plugin list     every plugin version in the registry
//	wedgectl plugin revoke   withdraw a module: edges refuse it from then on
//
// Rollouts, region by region with health gates:
//
//	wedgectl rollout start     plan and start a rollout in waves
//	wedgectl rollout status    the rollouts and their waves
//	wedgectl rollout pause     hold a rollout where it is
//	wedgectl rollout resume    carry on with a paused rollout
//	wedgectl rollout promote   end the current wave's bake now
//	wedgectl rollout abort     stop a running rollout and restore what it replaced
//	wedgectl rollout rollback  restore what a rollout replaced, even once it is done
//	wedgectl rollout audit     the tail of the audit stream
//
// The commands that write the audit stream or a record's author (plugin
// push and revoke, rollout start and its commands, purge) name the operator
// by --who NAME, else $WEDGE_WHO, else the OS user; with none they refuse.
// `rollout start --split addr|header:NAME|cookie:NAME` chooses what places
// a client on a canary's side (default its address).
//
// Purging cached responses from every POP (or a region's), each POP
// confirming; a POP cut off applies the purge when it is back:
//
//	wedgectl purge           purge a tag (--tag T) or a URL (--url U), [--region R]
//
// The edge<->origin link:
//
//	wedgectl origin keygen     a key that signs edge<->origin frames
//	wedgectl origin train-dict a zstd dictionary for the link, from sample envelopes
//
// Run `wedgectl help` for every command's flags. TestDocListsEveryCommand
// keeps this list and the command table in step.
package main
