// The controllers' turns and the rollouts' keys: the lease that lets one
// controller write at a time, and the per-key lock that lets one rollout
// of a key be active. Apart from the steps, which only call them.

package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
)

const leaseKey = manifest.ControllerKeys + "lease"

type lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
	// Every is how often the holder renews it (its tick).
	Every time.Duration `json:"every,omitempty"`
}

// lead takes or renews the lease; false means another controller holds it.
func (c *Controller) lead(ctx context.Context) (bool, error) {
	b, _ := json.Marshal(lease{Holder: c.id, Expires: time.Now().Add(c.opts.Lease), Every: c.opts.Tick})
	e, err := c.s.Rollouts.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		_, err = c.s.Rollouts.Create(ctx, leaseKey, b)
		return err == nil, ignoreConflict(err)
	}
	if err != nil {
		return false, err
	}
	var l lease
	json.Unmarshal(e.Value(), &l)
	if l.Holder != c.id && time.Now().Before(l.Expires) {
		return false, nil
	}
	_, err = c.s.Rollouts.Update(ctx, leaseKey, b, e.Revision())
	return err == nil, ignoreConflict(err)
}

// leaderless says why no controller acts at now, "" when one does: a
// lease renewed within two of its holder's ticks and a second is held.
func leaderless(ctx context.Context, s *controlplane.Stores, now time.Time) (string, error) {
	e, err := s.Rollouts.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "no controller holds the lease: no rollout advances and commands wait until one runs (wedgectl control)", nil
	}
	if err != nil {
		return "", fmt.Errorf("rollout: lease: %w", err)
	}
	var l lease
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return "", fmt.Errorf("rollout: lease: %w", err)
	}
	if quiet := now.Sub(e.Created()); quiet > 2*l.Every+time.Second {
		return fmt.Sprintf("no controller has renewed the lease for %s (holder %.8s, lease until %s): no rollout advances and commands wait until it runs out for another to take over",
			quiet.Round(time.Second), l.Holder, l.Expires.UTC().Format(time.TimeOnly)), nil
	}
	return "", nil
}

func ignoreConflict(err error) error {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}

// release gives the lease up so a successor need not wait for it to expire.
func (c *Controller) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := c.s.Rollouts.Get(ctx, leaseKey)
	if err != nil {
		return
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) == nil && l.Holder == c.id {
		c.s.Rollouts.Delete(ctx, leaseKey, jetstream.LastRevision(e.Revision()))
	}
}

// lock takes the key's active lock for r and returns its holder: r.ID
// when r has it (now or from before a restart).
func (c *Controller) lock(ctx context.Context, r *Rollout) (string, error) {
	_, err := c.s.Rollouts.Create(ctx, lockKey(r.Key), []byte(r.ID))
	if err == nil {
		return r.ID, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("rollout: lock %s: %w", r.Key, err)
	}
	e, err := c.s.Rollouts.Get(ctx, lockKey(r.Key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return c.lock(ctx, r) // released meanwhile
	}
	if err != nil {
		return "", fmt.Errorf("rollout: lock %s: %w", r.Key, err)
	}
	return string(e.Value()), nil
}

func (c *Controller) unlock(ctx context.Context, r *Rollout) error {
	e, err := c.s.Rollouts.Get(ctx, lockKey(r.Key))
	if err != nil || string(e.Value()) != r.ID {
		return nil
	}
	if err := c.s.Rollouts.Delete(ctx, lockKey(r.Key), jetstream.LastRevision(e.Revision())); err != nil && ignoreConflict(err) != nil {
		return fmt.Errorf("rollout: unlock %s: %w", r.Key, err)
	}
	return nil
}
