// Package manifest is THE contract between Wedge's control plane and its
// edges: the names of the JetStream buckets and keys, the signed artifact
// record of a plugin version, the desired state per region and POP, the
// status a POP reports, and the audit entry. It is a leaf package (standard
// library only) so the edge can import it without the control plane.
//
// All records are JSON in JetStream KV, so an operator can read them with
// the nats CLI. Layout:
//
//	object store  wedge_modules    <sha256 hex>         the .wasm bytes
//	KV            wedge_artifacts  <name>.<version>     Artifact (signed)
//	KV            wedge_revoked    <sha256 hex>         Revocation
//	KV            wedge_desired    region.<r> | pop.<p> Desired
//	KV            wedge_status     pop.<r>.<p>          Status (also membership)
//	KV            wedge_rollouts   <id>                 the controller's own records
//	stream        WEDGE_AUDIT      wedge.audit.<kind>   Audit (append-only)
//	stream        WEDGE_PURGE      wedge.purge.region.<r> | wedge.purge.fleet   Purge (purge.go)
//
// # Why
//
// The edge trusts nothing it fetches: a module is run only if its bytes
// hash to the digest the desired state names, an Ed25519 key of the edge's
// trust store signed (name, version, digest) together (so a module cannot
// be relabelled as another plugin or version), and the digest is not
// revoked. The control plane can be wrong or compromised without an edge
// running code nobody signed. The desired state is signed too, as a whole
// (versions, configs, canaries and splits), by the controller's key, which
// a POP trusts apart from the artifact keys (edge config
// fleet.control_keys), for the key it is stored under and with an issue
// time (desiredsig.go): a write to the wedge_desired bucket without that
// key, a record moved to another region, or an old record written again
// is refused, and the POP keeps what it runs. So an auth plugin's config
// cannot be rewritten by whoever can write to the bucket; only a holder of
// the controller's key can, and that key is guarded like the signing keys.
// Deleting a record the POP applied is refused too: an empty signed
// record, not a delete, withdraws a region's or POP's plugins.
//
// Replay protection rests on the latest Issued a POP accepted per key,
// which it keeps on disk (state_dir). A POP without that floor (new, or
// its state lost or unreadable) takes the newest Issued among the records
// of its keys' history in the bucket that verify, so an old record written
// again is still refused; only if that history is gone too (purged, or
// pushed out by more writes than the bucket keeps per key) does such a POP
// accept an old signed record.
package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Bucket, stream and subject names.
const (
	BucketModules   = "wedge_modules"
	BucketArtifacts = "wedge_artifacts"
	BucketRevoked   = "wedge_revoked"
	BucketDesired   = "wedge_desired"
	BucketStatus    = "wedge_status"
	BucketRollouts  = "wedge_rollouts"
	// ControllerKeys begins the keys of the rollouts bucket that the
	// controllers alone write (their lease); the rollout role may not.
	ControllerKeys = "controller."
	StreamAudit    = "WEDGE_AUDIT"
	SubjectAudit   = "wedge.audit" // entries go to wedge.audit.<kind>
	// Rate-limit usage batches (edge/limitsync), core NATS, not stored:
	// wedge.ratelimit.global and wedge.ratelimit.region.<region>.
	SubjectRateLimit = "wedge.ratelimit"
)

// MaxModuleSize bounds a plugin module pushed, stored, fetched or compiled
// (the registry, the fleet agent and the wasm runtime all hold modules to
// it), so a hostile object cannot exhaust a POP's memory.
const MaxModuleSize = 64 << 20

// RegionKey is the wedge_desired key of a region's desired state.
func RegionKey(region string) string { return "region." + region }

// POPKey is the wedge_desired key of one POP's overrides.
func POPKey(pop string) string { return "pop." + pop }

// StatusKey is the wedge_status key of a POP's report. It names the
// region, which a POP's credential is minted for (it may write this key
// alone): a report counts only under the key of the region and POP it
// names, so a POP cannot report itself into another region's rollouts and
// peers.
func StatusKey(region, pop string) string { return "pop." + region + "." + pop }

// ParseStatusKey is StatusKey's region and POP, ok false for a key of
// another form.
func ParseStatusKey(key string) (region, pop string, ok bool) {
	rest, ok := strings.CutPrefix(key, "pop.")
	if !ok {
		return "", "", false
	}
	region, pop, ok = strings.Cut(rest, ".")
	return region, pop, ok && region != "" && pop != "" && !strings.Contains(pop, ".")
}

// StatusOf decodes the report under a wedge_status key, ok only when the
// report names the region and POP the key does.
func StatusOf(key string, value []byte) (st Status, ok bool) {
	region, pop, ok := ParseStatusKey(key)
	if !ok || json.Unmarshal(value, &st) != nil {
		return Status{}, false
	}
	return st, st.Region == region && st.POP == pop
}

// ArtifactKey is the wedge_artifacts key of a plugin version.
func ArtifactKey(name, version string) string { return name + "." + version }

// Names of regions, POPs, plugins and versions: safe in KV keys, subjects,
// file names and metric labels.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
var validVersion = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) // no "+": KV keys refuse it

// CheckName reports whether s is a valid region, POP or plugin name.
func CheckName(what, s string) error {
	if !validName.MatchString(s) {
		return fmt.Errorf("manifest: %s %q: want 1-64 of a-z 0-9 - _, starting with a letter or digit", what, s)
	}
	return nil
}

// CheckVersion reports whether s is a valid plugin version.
func CheckVersion(s string) error {
	if !validVersion.MatchString(s) {
		return fmt.Errorf("manifest: version %q: want 1-64 of A-Z a-z 0-9 . _ -", s)
	}
	return nil
}

// Digest returns the hex sha256 of a module: its name in the object store.
func Digest(bin []byte) string {
	sum := sha256.Sum256(bin)
	return hex.EncodeToString(sum[:])
}

// ConfigHash names a plugin config by its bytes, as Health and Running
// report it: the hex sha256, as Digest names a module. A config-only
// canary runs the stable side's module, digest and all, so only its
// config tells the two sides apart.
func ConfigHash(config []byte) string {
	return Digest(config)
}

// CheckDigest reports whether s has the form Digest gives: 64 lowercase
// hex digits. A digest names an object in the store, so nothing else may
// pass for one (a path, an upper-case twin of another name).
func CheckDigest(s string) error {
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return fmt.Errorf("manifest: digest %q: want the 64 hex digits of a sha256, lowercase", s)
	}
	return nil
}

// Artifact is the registry's record of one plugin version, signed.
type Artifact struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Digest  string    `json:"digest"` // hex sha256 of the module
	Size    int64     `json:"size"`
	KeyID   string    `json:"key_id"`    // KeyID of the signing key
	Sig     []byte    `json:"signature"` // Ed25519 over SigningPayload
	Created time.Time `json:"created"`
	By      string    `json:"by,omitempty"` // who pushed it
}

// SigningPayload is what a signature covers: a domain tag and the three
// fields that identify a version, NUL-separated (none may hold a NUL).
func SigningPayload(name, version, digest string) []byte {
	return fmt.Appendf(nil, "wedge-plugin-v1\x00%s\x00%s\x00%s", name, version, digest)
}

// KeyID names a public key: the first 8 bytes of its sha256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign returns the artifact record of bin as name@version, signed by key.
func Sign(key ed25519.PrivateKey, name, version string, bin []byte, by string) (*Artifact, error) {
	if err := CheckName("plugin", name); err != nil {
		return nil, err
	}
	if err := CheckVersion(version); err != nil {
		return nil, err
	}
	a := &Artifact{Name: name, Version: version, Digest: Digest(bin), Size: int64(len(bin)),
		KeyID: KeyID(key.Public().(ed25519.PublicKey)), Created: time.Now().UTC(), By: by}
	a.Sig = ed25519.Sign(key, SigningPayload(a.Name, a.Version, a.Digest))
	return a, nil
}

// Errors of Verify, for callers that count refusals by reason.
var (
	ErrUnsigned     = errors.New("manifest: module is not signed")
	ErrUnknownKey   = errors.New("manifest: signed by a key not in the trust store")
	ErrBadSignature = errors.New("manifest: signature does not match name, version and digest")
	ErrDigest       = errors.New("manifest: module bytes do not match the digest")
	ErrRevoked      = errors.New("manifest: module is revoked")
	ErrMismatch     = errors.New("manifest: artifact is not the one the desired state names")
	// ErrBadRevocation is a revocation whose signature does not match.
	ErrBadRevocation = errors.New("manifest: signature does not match the revocation's digest, reason and time")
)

// TrustStore is the set of public keys whose signatures an edge accepts.
type TrustStore map[string]ed25519.PublicKey

// NewTrustStore indexes keys by KeyID.
func NewTrustStore(keys ...ed25519.PublicKey) TrustStore {
	t := TrustStore{}
	for _, k := range keys {
		t[KeyID(k)] = k
	}
	return t
}

// Verify checks that bin is the module a signed, unrevoked artifact
// describes. revoked may be nil. The order of checks makes the error name
// the first thing wrong, most specific first.
func (t TrustStore) Verify(a *Artifact, bin []byte, revoked map[string]Revocation) error {
	if len(a.Sig) == 0 {
		return fmt.Errorf("%w: %s@%s", ErrUnsigned, a.Name, a.Version)
	}
	if r, ok := revoked[a.Digest]; ok {
		return fmt.Errorf("%w: %s@%s (%s): %s", ErrRevoked, a.Name, a.Version, short(a.Digest), r.Reason)
	}
	pub, ok := t[a.KeyID]
	if !ok {
		return fmt.Errorf("%w: %s@%s key %q", ErrUnknownKey, a.Name, a.Version, a.KeyID)
	}
	if !ed25519.Verify(pub, SigningPayload(a.Name, a.Version, a.Digest), a.Sig) {
		return fmt.Errorf("%w: %s@%s", ErrBadSignature, a.Name, a.Version)
	}
	if bin != nil && Digest(bin) != a.Digest {
		return fmt.Errorf("%w: %s@%s want %s, got %s", ErrDigest, a.Name, a.Version, short(a.Digest), short(Digest(bin)))
	}
	return nil
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// Revocation withdraws a digest: edges refuse to load it, for good. It is
// signed as an artifact is, by a key of the edges' trust store: a writer
// of the revocations bucket alone could otherwise stop what a POP runs (a
// downgrade to the config file's plugins and their configs).
type Revocation struct {
	Digest string    `json:"digest"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
	By     string    `json:"by,omitempty"`
	KeyID  string    `json:"key_id,omitempty"`
	Sig    []byte    `json:"signature,omitempty"` // Ed25519 over RevocationPayload
}

// RevocationPayload is what a revocation's signature covers, as
// SigningPayload is an artifact's: a domain tag of its own, the digest,
// the reason and the time.
func RevocationPayload(digest, reason string, t time.Time) []byte {
	return fmt.Appendf(nil, "wedge-revocation-v1\x00%s\x00%s\x00%s", digest, reason, t.UTC().Format(time.RFC3339Nano))
}

// SignRevocation returns the revocation of digest, signed by key.
func SignRevocation(key ed25519.PrivateKey, digest, reason, by string) (*Revocation, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, err
	}
	r := &Revocation{Digest: digest, Reason: reason, Time: time.Now().UTC(), By: by, KeyID: KeyID(key.Public().(ed25519.PublicKey))}
	r.Sig = ed25519.Sign(key, RevocationPayload(r.Digest, r.Reason, r.Time))
	return r, nil
}

// VerifyRevocation checks that r is signed by a key of t.
func (t TrustStore) VerifyRevocation(r *Revocation) error {
	if len(r.Sig) == 0 {
		return fmt.Errorf("%w: revocation of %s", ErrUnsigned, short(r.Digest))
	}
	pub, ok := t[r.KeyID]
	if !ok {
		return fmt.Errorf("%w: revocation of %s, key %q", ErrUnknownKey, short(r.Digest), r.KeyID)
	}
	if !ed25519.Verify(pub, RevocationPayload(r.Digest, r.Reason, r.Time), r.Sig) {
		return fmt.Errorf("%w: revocation of %s", ErrBadRevocation, short(r.Digest))
	}
	return nil
}

// CheckRevocation reads rec, the revocations bucket's record under digest,
// and checks it as an edge does (VerifyRevocation): the revocation if a
// key of t signed it, else why an edge refuses it. The bucket key is what
// the signature must cover; the record's own digest field is not trusted.
// Edges, the rollout controller and the registry's revoke read them with
// it, so all three count the same revocations.
func (t TrustStore) CheckRevocation(digest string, rec []byte) (*Revocation, error) {
	var r Revocation
	if err := json.Unmarshal(rec, &r); err != nil {
		return nil, fmt.Errorf("manifest: revocation of %s: not a revocation record: %w", short(digest), err)
	}
	r.Digest = digest
	if err := t.VerifyRevocation(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Desired is the desired state of a region (key region.<r>) or the
// overrides of one POP (key pop.<p>, which win plugin by plugin).
type Desired struct {
	// Plugins maps a plugin to its release. The key is a plugin name,
	// which applies on every route whose chain has that plugin, or
	// "<route>/<plugin>", which applies on that route only and wins.
	Plugins map[string]Release `json:"plugins"`
	// Why and By say who set this and why, for status pages.
	Why string `json:"why,omitempty"`
	By  string `json:"by,omitempty"`
	// The controller's signature over all of the above and For and Issued
	// (desiredsig.go): For is the key the record was signed for, so it
	// cannot be moved to another region or POP, and Issued orders the
	// records of a key, so an old one written again is refused.
	For    string    `json:"for,omitempty"`
	Issued time.Time `json:"issued,omitzero"`
	KeyID  string    `json:"key_id,omitempty"`
	Sig    []byte    `json:"sig,omitempty"`
}

// Release is what a plugin should run: a signed version and its config,
// and optionally a canary version serving Share percent of clients.
type Release struct {
	Artifact Artifact `json:"artifact"`
	// Config is the plugin's JSON config; absent keeps the config file's.
	Config json.RawMessage `json:"config,omitempty"`
	Canary *Canary         `json:"canary,omitempty"`
}

// Canary is a second version on a share of the clients. A client stays on
// one side (the split hashes its key), and a request with the header
// PinHeader: <plugin>@<version> runs that version if it is one of the two
// (and carries the admin token: PinTokenHeader).
type Canary struct {
	Artifact Artifact        `json:"artifact"`
	Config   json.RawMessage `json:"config,omitempty"`
	Share    float64         `json:"share"` // percent of clients, (0, 100]
	// Split is the key a client is placed by (CheckSplit): "" or "addr"
	// its address, "header:NAME" a request header's value, "cookie:NAME"
	// a cookie's. Empty in records written before splits existed.
	Split string `json:"split,omitempty"`
}

// Split kinds, the part of a Canary.Split before the colon.
const (
	SplitAddr   = "addr"
	SplitHeader = "header"
	SplitCookie = "cookie"
)

// ParseSplit reads a canary split key: "" or "addr", "header:NAME" or
// "cookie:NAME", NAME an HTTP token (RFC 9110 section 5.6.2) of at most
// 64 bytes and, for a header, not a hop-by-hop field (hopByHop). A header
// or cookie split behind which clients share one address (NAT, a proxy)
// still gives a wave its share; a request without the value falls back
// to its address.
func ParseSplit(s string) (kind, name string, err error) {
	if s == "" || s == SplitAddr {
		return SplitAddr, "", nil
	}
	kind, name, _ = strings.Cut(s, ":")
	if kind != SplitHeader && kind != SplitCookie {
		return "", "", fmt.Errorf("manifest: split %q: want addr, header:NAME or cookie:NAME", s)
	}
	if name == "" || len(name) > 64 || strings.IndexFunc(name, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
		return "", "", fmt.Errorf("manifest: split %q: %s name %q: want 1-64 characters of an HTTP token", s, kind, name)
	}
	if kind == SplitHeader && hopByHop(name) {
		return "", "", fmt.Errorf("manifest: split %q: %s is a hop-by-hop header, which does not reach a tier owner", s, name)
	}
	return kind, name, nil
}

// hopByHop reports whether a header belongs to one connection (RFC 9110
// section 7.6.1): an edge that asks a regional tier owner does not pass
// it on, so a split by it would place a client on one side at its own
// edge and on the other at the owner. The same list as origin/wire's
// HopByHop, which this leaf package does not import.
func hopByHop(name string) bool {
	for _, h := range []string{"Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade"} {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return len(name) >= 6 && strings.EqualFold(name[:6], "Proxy-")
}

func isTokenChar(c rune) bool {
	return c < 0x7f && (c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", c))
}

// PinHeader lets a smoke test choose the version it runs, with the edge's
// admin token in PinTokenHeader: a pin any client could send would let it
// keep the stable side of a canary that revokes a key or tightens a config.
const (
	PinHeader      = "Wedge-Pin"
	PinTokenHeader = "Wedge-Pin-Token"
)

// ParseDesired decodes and checks a desired state: what an edge does with
// bytes from the control plane before it believes any of them. Unknown
// fields are ignored, so a newer controller can add some.
func ParseDesired(b []byte) (*Desired, error) {
	var d Desired
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("manifest: desired state: %w", err)
	}
	for key, r := range d.Plugins {
		if err := r.check(key); err != nil {
			return nil, fmt.Errorf("manifest: desired state %q: %w", key, err)
		}
	}
	return &d, nil
}

// check validates a release under its key ("plugin" or "route/plugin"):
// the artifacts must be of that plugin, so a module signed for one plugin
// cannot be slotted in as another.
func (r *Release) check(key string) error {
	plugin := key[strings.LastIndexByte(key, '/')+1:]
	if err := CheckName("plugin", plugin); err != nil {
		return err
	}
	if r.Artifact.Digest != "" {
		if err := r.Artifact.check(plugin); err != nil {
			return err
		}
	}
	if r.Config != nil && !json.Valid(r.Config) {
		return errors.New("config is not JSON")
	}
	if c := r.Canary; c != nil {
		if err := c.Artifact.check(plugin); err != nil {
			return fmt.Errorf("canary: %w", err)
		}
		if !(c.Share > 0 && c.Share <= 100) {
			return fmt.Errorf("canary share %g: want a percentage in (0, 100]", c.Share)
		}
		if c.Config != nil && !json.Valid(c.Config) {
			return errors.New("canary config is not JSON")
		}
		if _, _, err := ParseSplit(c.Split); err != nil {
			return fmt.Errorf("canary: %w", err)
		}
	}
	return nil
}

func (a *Artifact) check(plugin string) error {
	if a.Name != plugin {
		return fmt.Errorf("%w: artifact of plugin %q in the slot of %q", ErrMismatch, a.Name, plugin)
	}
	if err := CheckVersion(a.Version); err != nil {
		return err
	}
	return CheckDigest(a.Digest)
}

// Merge returns the region's desired state with a POP's overrides applied.
func Merge(region, pop *Desired) map[string]Release {
	out := map[string]Release{}
	for _, d := range []*Desired{region, pop} {
		if d == nil {
			continue
		}
		for k, r := range d.Plugins {
			out[k] = r
		}
	}
	return out
}

// Status is what a POP reports every few seconds (key pop.<r>.<p>). The POPs
// of a region also learn of each other from these reports: a POP whose
// reports stop leaves its peers' views (edge/fleet's Peers).
type Status struct {
	POP    string    `json:"pop"`
	Region string    `json:"region"`
	Time   time.Time `json:"time"`
	// Revision is the revision of the last desired state the POP
	// accepted (region and POP keys: the larger of the two), and Applied
	// whether it runs it (ACK) or could not (NACK, with Error: a module
	// that does not verify, say). Error is at most MaxStatusError bytes.
	Revision uint64 `json:"revision"`
	Applied  bool   `json:"applied"`
	Error    string `json:"error,omitempty"`
	// Refused are the desired-state keys whose latest record the POP
	// refused before applying anything (desiredsig.go): it keeps what it
	// accepted of that key, so a refusal leaves Revision and Applied
	// alone and a write to the bucket alone cannot NACK a rollout.
	Refused []Refused `json:"refused,omitempty"`
	// Running is what the POP serves, by the same keys as Desired.Plugins.
	Running map[string]Running `json:"running"`
	// Health is per plugin version, counted since the POP loaded it.
	Health []Health `json:"health"`
	// Source says where the running state came from: "control" or "disk".
	Source string `json:"source"`
	// Peer is the address other POPs reach this one's cache tier listener
	// at: the edge config's advertise, else tier.listen as bound, "" for a
	// wildcard or no tier listener. Members are the POPs of its region the POP
	// sees reporting (itself included), by name: its membership view.
	Peer    string   `json:"peer,omitempty"`
	Members []string `json:"members,omitempty"`
}

// Refused is a desired-state record a POP refused.
type Refused struct {
	Key      string `json:"key"`      // RegionKey or POPKey
	Revision uint64 `json:"revision"` // the refused record's
	Reason   string `json:"reason"`   // DesiredReason's, or "deleted"
	Error    string `json:"error"`    // at most MaxStatusError bytes
}

// MaxDesiredSize bounds a wedge_desired record (the bucket's
// MaxValueSize): a record is releases and their configs, far smaller.
const MaxDesiredSize = 256 << 10

// MaxStatusError bounds the error strings of a Status: what a refused
// record holds must not make a report too big to write, which would make
// the POP look gone.
const MaxStatusError = 1024

// Clip returns s cut to at most n bytes, at a rune boundary and ending in
// "…" where it was cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-len("…"), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ShareUnits is a canary share as a POP keeps it: hundredths of a
// percent, truncated, within [0, 10000]. It reports the share back as
// ShareUnits/100 (Running.Share), so a controller compares the two in
// these units.
func ShareUnits(share float64) uint32 { return uint32(min(max(share, 0), 100) * 100) }

// Running is one plugin as a POP serves it.
type Running struct {
	Version      string  `json:"version"`
	Digest       string  `json:"digest"`
	Canary       string  `json:"canary,omitempty"` // the canary's version
	CanaryDigest string  `json:"canary_digest,omitempty"`
	Share        float64 `json:"share,omitempty"`
	Split        string  `json:"split,omitempty"` // the canary's split key, "" for the address
	// Config and CanaryConfig are the ConfigHash of the config each side
	// runs with (the POP's own where the release sets none).
	Config       string `json:"config,omitempty"`
	CanaryConfig string `json:"canary_config,omitempty"`
}

// Health counts the requests that ran through one plugin version (a plugin
// behind one that answered did not run). Errors and Buckets count the
// outcome of the requests that are the version's: an error (a 5xx answer
// or a plugin failure) and the whole-request latency, by LatencyBounds
// (the last bucket is +Inf), each request's given only to the versions
// that may have produced it: the canary versions the request ran (a canary
// can break what a later plugin gets), and those that failed, else the
// plugin that answered a 5xx; with neither, every version that ran (a
// version that breaks the origin is bad too). So a failing canary's errors
// are not the stable versions' beside it (edge/health.go). All are
// counters from when the POP loaded the version, so rates over a window
// are differences of two reports. A POP reports one Health per plugin,
// version, digest and Config (the ConfigHash of the config the version
// runs with), so a config-only canary's counters are apart from the
// stable side's though both run the same module.
type Health struct {
	Plugin   string   `json:"plugin"`
	Version  string   `json:"version"`
	Digest   string   `json:"digest"`
	Config   string   `json:"config,omitempty"`
	Requests uint64   `json:"requests"`
	Errors   uint64   `json:"errors"`
	Buckets  []uint64 `json:"buckets"`
}

// LatencyBounds are the upper bounds of Health.Buckets. An array, so that
// a POP's counters are sized by it: [len(LatencyBounds) + 1] is a constant.
var LatencyBounds = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// Quantile estimates the q-quantile of the latencies in buckets (as
// Health.Buckets, or the difference of two) as Prometheus's
// histogram_quantile does, so that a gate and the dashboard agree: within
// the bucket it falls in, by linear interpolation between the bucket's
// bounds (the first bucket's lower is 0). A bucket's upper bound alone
// made "p99<50ms" fail whenever one request in a hundred took 26 ms. It is
// 0 for no requests and LatencyBounds' last times 2 for the +Inf bucket.
func Quantile(q float64, buckets []uint64) time.Duration {
	var total uint64
	for _, b := range buckets {
		total += b
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen uint64
	for i, b := range buckets {
		if b == 0 || float64(seen+b) < rank {
			seen += b
			continue
		}
		if i >= len(LatencyBounds) {
			break
		}
		lower := time.Duration(0)
		if i > 0 {
			lower = LatencyBounds[i-1]
		}
		// To the microsecond: what a page shows, without float residue.
		return (lower + time.Duration(float64(LatencyBounds[i]-lower)*(rank-float64(seen))/float64(b))).Round(time.Microsecond)
	}
	return 2 * LatencyBounds[len(LatencyBounds)-1]
}

// Audit is one entry of the append-only audit stream.
type Audit struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Action  string    `json:"action"` // e.g. rollout.start, wave.promote, rollout.rollback
	Rollout string    `json:"rollout,omitempty"`
	Plugin  string    `json:"plugin,omitempty"`
	Version string    `json:"version,omitempty"`
	Region  string    `json:"region,omitempty"`
	Why     string    `json:"why"`
}

// ParsePublicKeys reads the Ed25519 public keys of a trust file: PEM
// blocks of type "PUBLIC KEY" (PKIX, as `wedgectl keys gen` writes them),
// one key each, with only whitespace around them. Anything else (another
// block type, a key of another type, PEM headers, text between or around
// the blocks, no block at all) is an error, not skipped: a trust file is
// read one way, every key of it, or refused.
func ParsePublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	keys, err := parsePublicKeys(data)
	if err != nil {
		return nil, fmt.Errorf("manifest: public keys: %w", err)
	}
	return keys, nil
}

func parsePublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for rest := data; ; {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		at := len(data) - len(rest)
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, fmt.Errorf("at byte %d: text outside a PEM block", at)
		}
		// pem.Decode skips a malformed block to find the next good one, so
		// it gets this block alone: up to the first END line, with no other
		// BEGIN line before it.
		end := bytes.Index(rest, []byte("\n-----END "))
		if end < 0 {
			return nil, fmt.Errorf("at byte %d: PEM block without an END line", at)
		}
		if nl := bytes.IndexByte(rest[end+1:], '\n'); nl >= 0 {
			end += 1 + nl + 1
		} else {
			end = len(rest)
		}
		b, tail := pem.Decode(rest[:end])
		if b == nil || len(bytes.TrimSpace(tail)) > 0 || bytes.Count(rest[:end], []byte("-----BEGIN ")) != 1 {
			return nil, fmt.Errorf("at byte %d: malformed PEM block", at)
		}
		rest = rest[end:]
		n := len(keys) + 1
		switch {
		case b.Type != "PUBLIC KEY":
			return nil, fmt.Errorf("block %d: PEM block is %q, want \"PUBLIC KEY\" (PKIX)", n, b.Type)
		case len(b.Headers) > 0:
			return nil, fmt.Errorf("block %d: PEM headers in a public key", n)
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", n, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("block %d: %T is not an Ed25519 key", n, k)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block")
	}
	return keys, nil
}

// LoadTrustFiles reads trust files (ParsePublicKeys, every key of each)
// into a TrustStore. Edges (fleet.trust) and the registry load their
// trust stores with it, so both read a file the same way.
func LoadTrustFiles(paths ...string) (TrustStore, error) {
	if len(paths) == 0 {
		return nil, errors.New("manifest: no public key files given")
	}
	var keys []ed25519.PublicKey
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		ks, err := parsePublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("manifest: trust file %s: %w", path, err)
		}
		keys = append(keys, ks...)
	}
	return NewTrustStore(keys...), nil
}
