package fleet

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SetClock makes the agent's view of its region read the time from now.
// Call it before Run.
func (a *Agent) SetClock(now func() time.Time) { a.members.now = now }

// SetStatusWatch makes the agent watch the status bucket with watch. Call
// it before Run.
func (a *Agent) SetStatusWatch(watch func(context.Context, jetstream.KeyValue) (jetstream.KeyWatcher, error)) {
	a.members.watch = watch
}
