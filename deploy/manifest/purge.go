// Purges everywhere: the record an operator's purge is published as to the
// purge stream, the subjects it goes to, and the acknowledgement each POP
// sends once it applied one.

package manifest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// The purge stream: records by region or for the whole fleet, kept for
// PurgeRetention (and at most PurgeMaxMsgs of them), so that a POP cut off
// while one was issued applies it when it is back. Acknowledgements are
// plain NATS messages on PurgeAckSubject, not kept: only the CLI that
// issued the purge waits for them.
const (
	StreamPurge         = "WEDGE_PURGE"
	SubjectPurgeFleet   = "wedge.purge.fleet"    // a purge for every POP
	SubjectPurgeRegions = "wedge.purge.region.*" // a purge for one region: PurgeRegionSubject
	SubjectPurgeAck     = "wedge.purge.ack"      // acknowledgements: PurgeAckSubject
	PurgeRetention      = 24 * time.Hour
	PurgeMaxMsgs        = 100_000
)

// PurgeRegionSubject is the subject of a purge for one region.
func PurgeRegionSubject(region string) string { return "wedge.purge.region." + region }

// PurgeAckSubject is where pop acknowledges purge id; pop "*" is every
// POP's acknowledgement of it, to subscribe to. The POP's name is the
// subject's last token because a POP's credential may publish there only
// for its own name (deploy/controlplane/auth): the issuer takes who
// acknowledged from the subject, which NATS checked, not from the body.
func PurgeAckSubject(id, pop string) string { return SubjectPurgeAck + "." + id + "." + pop }

// Purge is one purge record: of the cached responses tagged Tag, or of
// every variant of URL (an absolute http(s) URL: the POP keys it as its
// admin API's POST /purge?url= does), in Region or, empty, everywhere.
type Purge struct {
	ID     string    `json:"id"`
	Tag    string    `json:"tag,omitempty"`
	URL    string    `json:"url,omitempty"`
	Region string    `json:"region,omitempty"`
	Time   time.Time `json:"time"` // when it was issued
	Who    string    `json:"who"`
}

// MaxPurgeRecord bounds a purge record (and an acknowledgement) read from
// the control plane.
const MaxPurgeRecord = 8 << 10

// Check reports whether p is a purge a POP can apply.
func (p *Purge) Check() error {
	if err := CheckName("purge id", p.ID); err != nil {
		return err
	}
	if p.Region != "" {
		if err := CheckName("region", p.Region); err != nil {
			return err
		}
	}
	switch {
	case (p.Tag == "") == (p.URL == ""):
		return errors.New("manifest: purge: want a tag or a URL, not both or neither")
	case p.URL != "":
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("manifest: purge: url %q: want an absolute http(s) URL", p.URL)
		}
	}
	return nil
}

// NewPurgeID is a random purge ID: 16 hex digits.
func NewPurgeID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Subject is the subject p is published to: its region's, or the fleet's.
func (p *Purge) Subject() string {
	if p.Region == "" {
		return SubjectPurgeFleet
	}
	return PurgeRegionSubject(p.Region)
}

// ParsePurge decodes and checks a purge record from the stream.
func ParsePurge(b []byte) (*Purge, error) {
	if len(b) > MaxPurgeRecord {
		return nil, fmt.Errorf("manifest: purge record of %d bytes, want at most %d", len(b), MaxPurgeRecord)
	}
	var p Purge
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("manifest: purge record: %w", err)
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// PurgeAck is a POP's acknowledgement of a purge it applied; Purged
// entries of its cache went. A POP does not acknowledge a record it cannot
// apply (ParsePurge refuses it), so the issuer reports it as unconfirmed.
type PurgeAck struct {
	ID     string `json:"id"`
	POP    string `json:"pop"`
	Region string `json:"region"`
	Purged int    `json:"purged"`
}

// ParsePurgeAck decodes and checks an acknowledgement that arrived on
// subject (PurgeAckSubject): the POP it names must be the subject's, the
// one NATS let publish there, so that no POP acknowledges in another's
// name.
func ParsePurgeAck(subject string, b []byte) (*PurgeAck, error) {
	if len(b) > MaxPurgeRecord {
		return nil, fmt.Errorf("manifest: purge ack of %d bytes, want at most %d", len(b), MaxPurgeRecord)
	}
	var a PurgeAck
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("manifest: purge ack: %w", err)
	}
	if err := CheckName("pop", a.POP); err != nil {
		return nil, fmt.Errorf("manifest: purge ack: %w", err)
	}
	if want := PurgeAckSubject(a.ID, a.POP); subject != want {
		return nil, fmt.Errorf("manifest: purge ack from pop %q for purge %q on subject %q, want %q", a.POP, a.ID, subject, want)
	}
	return &a, nil
}
