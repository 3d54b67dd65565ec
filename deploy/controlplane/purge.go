// Purges everywhere, the issuing side: the purge stream's configuration,
// and Purge, which publishes a purge and waits for the POPs that are alive
// to acknowledge it. The POPs' side is edge/fleet's purge.go.

package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/manifest"
)

// PurgeStreamConfig is the purge stream's: bounded by age and count, the
// oldest records going first, so that the stream holds every purge of the
// last manifest.PurgeRetention unless more than manifest.PurgeMaxMsgs were
// issued in that time (a POP that was away longer purges its whole cache).
var PurgeStreamConfig = jetstream.StreamConfig{
	Name: manifest.StreamPurge, Subjects: []string{manifest.SubjectPurgeFleet, manifest.SubjectPurgeRegions},
	Description: "purges for the fleet or a region, kept for POPs that were away",
	Storage:     jetstream.FileStorage, MaxAge: manifest.PurgeRetention, MaxMsgs: manifest.PurgeMaxMsgs,
	MaxMsgSize: manifest.MaxPurgeRecord, Discard: jetstream.DiscardOld,
}

// PurgeResult is what came of one purge.
type PurgeResult struct {
	Purge manifest.Purge
	// Expected are the POPs that were alive (in the purge's region) when
	// it was issued, by name.
	Expected []string
	// Confirmed are the acknowledgements in the order they came, each
	// with the time from publishing to its arrival; a POP that was not
	// expected (it reported after the purge was issued) may be among them.
	Confirmed []Confirmation
	// Missing are the expected POPs that did not confirm in time.
	Missing []string
}

// Confirmation is one POP's acknowledgement, and when it came.
type Confirmation struct {
	manifest.PurgeAck
	After time.Duration
}

// Purge publishes p to the purge stream (filling in its ID and Time) and
// waits until every POP that is alive confirmed it or timeout passed. A POP
// is alive if its status entry in wedge_status was written within alive
// (by the control plane's clock against this process's: keep alive a few
// report intervals above any clock skew). POPs that did not confirm are
// Missing, not an error: the purge is durable, and they apply it when they
// are back. The error is for a purge that was not issued, or ctx ending.
func (s *Stores) Purge(ctx context.Context, p manifest.Purge, alive, timeout time.Duration) (*PurgeResult, error) {
	if p.ID == "" {
		p.ID = manifest.NewPurgeID()
	}
	if p.Time.IsZero() {
		p.Time = time.Now().UTC()
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	if s.Purges == nil {
		return nil, fmt.Errorf("controlplane: purge: the control plane has no stream %s: it predates purges (upgrade it: wedgectl up or wedgectl control create the stream)", manifest.StreamPurge)
	}
	res := &PurgeResult{Purge: p}
	statuses, err := s.ReadAll(ctx, s.Status, manifest.StatusKey("*", "*"))
	if err != nil {
		return nil, err
	}
	waiting := map[string]bool{}
	for _, e := range statuses {
		st, ok := manifest.StatusOf(e.Key(), e.Value())
		if !ok || time.Since(e.Created()) > alive {
			continue
		}
		if p.Region == "" || st.Region == p.Region {
			waiting[st.POP] = true
			res.Expected = append(res.Expected, st.POP)
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	// Listening before publishing, so no acknowledgement comes too early.
	sub, err := s.JS.Conn().SubscribeSync(manifest.PurgeAckSubject(p.ID, "*"))
	if err != nil {
		return nil, fmt.Errorf("controlplane: purge: %w", err)
	}
	defer sub.Unsubscribe()
	start := time.Now()
	if _, err := s.JS.Publish(ctx, p.Subject(), b, jetstream.WithMsgID(p.ID)); err != nil {
		return nil, fmt.Errorf("controlplane: purge: %w", err)
	}
	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := map[string]bool{}
	for len(waiting) > 0 {
		m, err := sub.NextMsgWithContext(wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			return nil, fmt.Errorf("controlplane: purge: %w", err)
		}
		a, err := manifest.ParsePurgeAck(m.Subject, m.Data)
		if err != nil || seen[a.POP] { // the subject holds it to p.ID and its POP
			continue
		}
		seen[a.POP] = true
		delete(waiting, a.POP)
		res.Confirmed = append(res.Confirmed, Confirmation{*a, time.Since(start)})
	}
	for pop := range waiting {
		res.Missing = append(res.Missing, pop)
	}
	slices.Sort(res.Missing)
	s.auditPurge(ctx, res)
	return res, nil
}

// auditPurge records a purge and who confirmed it in the audit stream,
// which keeps what the purge stream (a day) does not. The purge has
// happened by then: a failed write does not make it an error.
func (s *Stores) auditPurge(ctx context.Context, res *PurgeResult) {
	p := res.Purge
	what := "tag " + p.Tag
	if p.URL != "" {
		what = "URL " + p.URL
	}
	why := fmt.Sprintf("purge %s of %s: %d of %d POPs confirmed", p.ID, what, len(res.Confirmed), len(res.Expected))
	if len(res.Missing) > 0 {
		why += "; not confirmed by " + strings.Join(res.Missing, ", ")
	}
	b, err := json.Marshal(manifest.Audit{Time: time.Now().UTC(), Who: p.Who, Action: "purge", Region: p.Region, Why: why})
	if err != nil {
		return
	}
	_, _ = s.JS.Publish(ctx, manifest.SubjectAudit+".purge", b, jetstream.WithMsgID("audit-"+p.ID))
}
