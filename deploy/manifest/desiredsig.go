// Signed desired state: the controller signs each wedge_desired record as
// a whole (plugins, versions, configs, canaries, splits, why and by) for
// the key it is stored under, and a POP verifies it before believing any
// of it, so write access to the bucket alone cannot change what a POP runs.

package manifest

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors of ParseSignedDesired, for callers that count refusals by reason
// (DesiredReason). ErrUnknownKey is shared with artifacts.
var (
	ErrDesiredUnsigned  = errors.New("manifest: desired state is not signed by the controller")
	ErrDesiredSignature = errors.New("manifest: desired state signature does not match its content")
	ErrDesiredMoved     = errors.New("manifest: desired state was signed for another key")
	ErrDesiredStale     = errors.New("manifest: desired state is older than one already applied")
	ErrDesiredInvalid   = errors.New("manifest: desired state is malformed")
)

// DesiredReason names the reason of a refusal by ParseSignedDesired (or
// ErrDesiredStale) for a metric label: unsigned, unknown_key,
// bad_signature, wrong_key, stale or invalid.
func DesiredReason(err error) string {
	switch {
	case errors.Is(err, ErrDesiredUnsigned):
		return "unsigned"
	case errors.Is(err, ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, ErrDesiredSignature):
		return "bad_signature"
	case errors.Is(err, ErrDesiredMoved):
		return "wrong_key"
	case errors.Is(err, ErrDesiredStale):
		return "stale"
	}
	return "invalid"
}

// DesiredPayload is what a desired-state signature covers: a domain tag,
// then d as encoding/json writes it with KeyID and Sig empty. That
// encoding is canonical for a decoded record: struct fields in their
// declared order, map keys sorted, floats in their shortest exact form,
// and each RawMessage config compacted (json.Marshal compacts what a
// Marshaler returns), so whitespace a store or tool adds inside a config
// does not break a signature while any change of a value does. Key order
// inside a config is kept, not sorted: a config whose keys were reordered
// is refused, which is safe. Fields a newer controller adds are not
// decoded by an older POP and so fail its check: adding one needs a new
// domain tag, not a silent change.
func DesiredPayload(d *Desired) ([]byte, error) {
	c := *d
	c.KeyID, c.Sig = "", nil
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode desired state: %w", err)
	}
	return append([]byte(desiredTag), b...), nil
}

// desiredTag is the domain tag of DesiredPayload.
const desiredTag = "wedge-desired-v1\x00"

// SignDesired returns the wedge_desired record of d stored under key
// (RegionKey or POPKey), signed by the controller's key and issued at
// issued, which must be later than the record it replaces (a POP refuses
// one older than it applied: a replay). d's configs must be JSON; what is
// signed is their compacted form (DesiredPayload), the form
// ParseSignedDesired hands on.
func SignDesired(priv ed25519.PrivateKey, key string, issued time.Time, d *Desired) ([]byte, error) {
	c := *d
	c.For, c.Issued = key, issued.UTC()
	p, err := DesiredPayload(&c)
	if err != nil {
		return nil, fmt.Errorf("manifest: sign desired state %s: %w", key, err)
	}
	c.KeyID = KeyID(priv.Public().(ed25519.PublicKey))
	c.Sig = ed25519.Sign(priv, p)
	return json.Marshal(&c)
}

// ParseSignedDesired decodes and checks a wedge_desired record read under
// key: ParseDesired's checks, then that one of keys (the controller's
// public keys) signed it for this key. What is older than a record
// already applied (ErrDesiredStale) is the caller's to check, by Issued.
// The record returned is the signed form (DesiredPayload's): its configs
// are the bytes the signature covers, not the record's with whatever
// whitespace a store or tool added.
func ParseSignedDesired(b []byte, key string, keys TrustStore) (*Desired, error) {
	d, err := ParseDesired(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDesiredInvalid, err)
	}
	if len(d.Sig) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrDesiredUnsigned, key)
	}
	pub, ok := keys[d.KeyID]
	if !ok {
		// Cut: the key ID is not verified, and the error ends up in
		// status reports of bounded size.
		return nil, fmt.Errorf("%w: desired state %s key %q", ErrUnknownKey, key, Clip(d.KeyID, 32))
	}
	p, err := DesiredPayload(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDesiredInvalid, err)
	}
	if !ed25519.Verify(pub, p, d.Sig) {
		return nil, fmt.Errorf("%w: %s", ErrDesiredSignature, key)
	}
	// Checked after the signature: a record signed for another key is
	// the controller's, moved, and worth naming as such.
	if d.For != key {
		return nil, fmt.Errorf("%w: %s holds the record of %s", ErrDesiredMoved, key, d.For)
	}
	var s Desired
	if err := json.Unmarshal(p[len(desiredTag):], &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDesiredInvalid, err)
	}
	s.KeyID, s.Sig = d.KeyID, d.Sig
	return &s, nil
}
