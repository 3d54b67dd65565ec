package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"

	"github.com/talowa/wedge/deploy/manifest"
)

// Role is what a credential may do on the control plane.
type Role string

// The roles. Every credential is one of them; a POP's also names the POP.
const (
	// Controller owns the control plane: it creates the buckets and
	// streams and writes desired state, rollouts and audit (`wedgectl
	// up`, `wedgectl control`, and any command an operator runs with
	// its credential).
	Controller Role = "controller"
	// POP is one POP's agent: it reads what it runs and writes its own
	// status only.
	POP Role = "pop"
	// Push publishes plugin versions: modules and artifacts (`wedgectl
	// plugin push`).
	Push Role = "push"
	// Rollout starts and steers rollouts (`wedgectl rollout`) and issues
	// purges (`wedgectl purge`); the controller, not this role, writes
	// the desired state a rollout leads to.
	Rollout Role = "rollout"
	// Revoke revokes module digests (`wedgectl plugin revoke`).
	Revoke Role = "revoke"
	// Leaf is a region's leaf node's link to the cluster: it carries its
	// clients' traffic, whose own credentials the leaf checks, so the link
	// itself may carry anything, and it connects a leaf node only.
	Leaf Role = "leaf"
)

// Roles are the roles `wedgectl control` makes a credential for on first
// start; a POP's is made per POP (`wedgectl control creds pop NAME
// --region REGION`).
var Roles = []Role{Controller, Push, Rollout, Revoke, Leaf}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r == POP || slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("auth: unknown role %q: want one of controller, pop, push, rollout, revoke, leaf", s)
}

// jsAPI is the JetStream API prefix.
const jsAPI = "$JS.API."

// Domain is the JetStream domain of a cluster (embedded.Domain). A leaf
// node maps its clients' JetStream subjects into it ($JS.API.> to
// $JS.<Domain>.API.>, and $KV.> and $O.> below it) and checks a client's
// permissions on the subject as mapped, so each allowed JetStream subject
// is allowed in its mapped form too (leafForms).
const Domain = "wedge"

// leafForms adds to pub the form each JetStream subject in it takes on a
// leaf node.
func leafForms(pub []string) []string {
	for _, s := range pub {
		switch {
		case strings.HasPrefix(s, jsAPI):
			pub = append(pub, "$JS."+Domain+".API."+strings.TrimPrefix(s, jsAPI))
		case strings.HasPrefix(s, "$KV.") || strings.HasPrefix(s, "$O."):
			pub = append(pub, "$JS."+Domain+".API."+s)
		}
	}
	return pub
}

// reads are the JetStream API requests that read a bucket or stream and
// change nothing in it: every role reads, since a POP needs most of the
// buckets and every CLI command opens them all (controlplane.Open).
// Consumers are the only thing they create: what a KV watch, a Get by
// scan or an object read runs on. nats.go creates them on
// CONSUMER.CREATE.<stream>.<name>[.<filter>], so each of Wedge's streams
// is named (a wildcard is a whole token, never part of one); the deliver
// subject of a push consumer is in the request's body, where no
// permission reaches (see Permissions).
var reads = append([]string{
	jsAPI + "STREAM.INFO.*",       // opening a bucket or stream; ReadAll's subjects
	jsAPI + "STREAM.MSG.GET.*",    // the audit stream, and the buckets without direct gets
	jsAPI + "DIRECT.GET.>",        // KV Get on the status bucket, object metadata
	jsAPI + "CONSUMER.DELETE.>",   // a watch or reader that stops deletes its consumer
	jsAPI + "CONSUMER.MSG.NEXT.>", // pull consumers (ordered consumers, object reads)
	"$JS.FC.>",                    // flow-control replies of push consumers (KV watches)
}, consumerCreates()...)

// consumerCreates are the subjects consumers on Wedge's streams are
// created on: KV watches, object reads, the purge stream's reader.
func consumerCreates() []string {
	streams := []string{"OBJ_" + manifest.BucketModules, manifest.StreamAudit, manifest.StreamPurge}
	for _, b := range []string{manifest.BucketArtifacts, manifest.BucketRevoked, manifest.BucketDesired,
		manifest.BucketStatus, manifest.BucketRollouts} {
		streams = append(streams, "KV_"+b)
	}
	out := make([]string, len(streams))
	for i, st := range streams {
		out[i] = jsAPI + "CONSUMER.CREATE." + st + ".>"
	}
	return out
}

// Inbox is the inbox prefix of the credential whose user public key is
// user: it may subscribe below it and nowhere else in _INBOX, so that no
// credential reads another's replies (and learns its consumers' names).
// A client sets it with nats.CustomInboxPrefix (controlplane.Security).
func Inbox(user string) string { return "_INBOX." + user }

// kvPut is the subject a put or delete of key in bucket is published on.
func kvPut(bucket, key string) string { return "$KV." + bucket + "." + key }

// Permissions are the subjects a role may publish to and subscribe to;
// name and region are the POP's, for POP (it may write only its own
// status, and speak only for itself and in its own region), and user the
// credential's user public key (its inbox: Inbox).
//
// This is the one table of who may do what: each subject is there because
// a command or the agent was seen to need it (TestRolePermissions,
// TestPOPCredentials), and a write not listed is refused by the server
// with a permissions violation.
//
// A known gap: a role that may create a consumer chooses its deliver
// subject, which JetStream publishes to with no permission check, whenever
// some client subscribes to it: a POP can replay a stream's messages to a
// subject it may not publish on. Tried against nats-server 2.15: a
// delivery into another bucket's subjects stored nothing (a stream's
// capture is no interest), and other credentials' inboxes are now their
// own, their names unknown.
func Permissions(role Role, name, region, user string) (pub, sub []string, err error) {
	replies := []string{Inbox(user) + ".>"} // every JetStream request and publish waits for an answer
	switch role {
	case Controller, Leaf:
		// The controller creates and updates every bucket and stream
		// (the whole JetStream API); a leaf link carries clients the
		// leaf itself holds to their own permissions, and its
		// credential connects nothing else (Creds).
		return []string{">"}, []string{">"}, nil
	case POP:
		if err := manifest.CheckName("pop", name); err != nil {
			return nil, nil, fmt.Errorf("auth: %w", err)
		}
		if err := manifest.CheckName("region", region); err != nil {
			return nil, nil, fmt.Errorf("auth: %w", err)
		}
		pub = append(slices.Clone(reads),
			kvPut(manifest.BucketStatus, manifest.StatusKey(region, name)), // its own status, in its region, nothing else
			// Acknowledging a purge (edge/fleet purge.go), and usage
			// batches and heartbeats (edge/limitsync): each on a subject
			// that ends in its own name, which the readers take as the
			// sender's, so no POP speaks for another, and a region's
			// batches in its own region only, so that no POP counts
			// against another region's limits.
			manifest.PurgeAckSubject("*", name),
			manifest.SubjectRateLimit+".global."+name,
			manifest.SubjectRateLimit+".region."+region+"."+name,
		)
		sub = append(replies,
			manifest.SubjectRateLimit+".>", // the other POPs' batches
		)
		return leafForms(pub), sub, nil
	case Push:
		pub = append(slices.Clone(reads),
			"$O."+manifest.BucketModules+".>",                // a module's chunks and metadata
			jsAPI+"STREAM.PURGE.OBJ_"+manifest.BucketModules, // a module put again drops its old chunks
			kvPut(manifest.BucketArtifacts, ">"),             // the signed version record
			manifest.SubjectAudit+".>",                       // plugin.push
		)
		return leafForms(pub), replies, nil
	case Rollout:
		pub = append(slices.Clone(reads),
			kvPut(manifest.BucketRollouts, ">"), // the rollout record, its lock, commands to it
			manifest.SubjectAudit+".>",          // rollout.start and the commands
			manifest.SubjectPurgeFleet,          // wedgectl purge, fleet-wide
			manifest.SubjectPurgeRegions,        // wedgectl purge --region
		)
		sub = append(replies,
			manifest.PurgeAckSubject("*", "*"), // the POPs' confirmations of a purge
		)
		return leafForms(pub), sub, nil
	case Revoke:
		pub = append(slices.Clone(reads),
			kvPut(manifest.BucketRevoked, ">"), // the revocation record
			manifest.SubjectAudit+".>",         // plugin.revoke
		)
		return leafForms(pub), replies, nil
	}
	return nil, nil, fmt.Errorf("auth: unknown role %q", role)
}

// PubDenied are the subjects role may not publish to though Permissions
// allows them: the rollout role writes the rollouts bucket but not the
// controllers' lease, whose holder steers every rollout (a lease written
// far ahead held off every controller, while status said one led).
func PubDenied(role Role) []string {
	if role == Rollout {
		return leafForms([]string{kvPut(manifest.BucketRollouts, manifest.ControllerKeys+">")})
	}
	return nil
}

// CheckPOPCreds reports whether creds, the contents of a credentials
// file, are POP name's of region: a credential minted for another POP or
// region connects, but the server refuses its status or its rate-limit
// usage one message at a time, which a POP would only log. Its
// permissions are read as the server reads them; their signature is the
// server's to check.
func CheckPOPCreds(creds []byte, name, region string) error {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return fmt.Errorf("auth: credential: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return fmt.Errorf("auth: credential: %w", err)
	}
	for _, subject := range []string{
		kvPut(manifest.BucketStatus, manifest.StatusKey(region, name)),
		manifest.SubjectRateLimit + ".region." + region + "." + name,
	} {
		if !slices.ContainsFunc(uc.Pub.Allow, func(p string) bool { return subjectMatches(p, subject) }) {
			return fmt.Errorf("auth: credential %q may not publish %s: not POP %s's of region %s (wedgectl control creds pop %[3]s --region %[4]s mints one)",
				uc.Name, subject, name, region)
		}
	}
	return nil
}

// subjectMatches reports whether the subject pattern p (tokens, "*" one,
// ">" the rest) matches subject.
func subjectMatches(p, subject string) bool {
	pt, st := strings.Split(p, "."), strings.Split(subject, ".")
	for i, t := range pt {
		switch {
		case t == ">":
			return len(st) > i
		case i >= len(st) || (t != "*" && t != st[i]):
			return false
		}
	}
	return len(pt) == len(st)
}
