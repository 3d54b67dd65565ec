package fleet

import "github.com/nats-io/nats.go/jetstream"

// SetPurgeMessages makes the agent read the purge stream's records from
// its consumer with messages. Call it before Run.
func (a *Agent) SetPurgeMessages(messages func(jetstream.Consumer) (jetstream.MessagesContext, error)) {
	a.purge.messages = messages
}
