package origin

import (
	"sync"
	"time"
)

// maxSeenHandshakes bounds the tunnel handshakes a Server remembers: 64 Ki
// entries, a few MiB. Past it, until some expire, handshakes are refused.
const maxSeenHandshakes = 1 << 16

// Where a frame's MAC lies (wire/README.md, "Frames"): it identifies the
// frame, since no byte of it can change without the MAC changing.
const (
	frameMACOff = 10
	frameMACLen = 16
)

// handshakes remembers the tunnel handshakes a Server accepted while a
// replay of them would still authenticate (within the codec's Skew of
// their timestamp). A replayed POST to wire.Path runs a request again; a
// replayed handshake would open an interactive session with the victim's
// identity, so it is refused. Handshakes are rare next to requests, so
// the set stays small.
type handshakes struct {
	mu   sync.Mutex
	seen map[[frameMACLen]byte]time.Time // MAC -> when a replay stops authenticating
	max  int                             // 0: maxSeenHandshakes
}

// first records the authenticated frame sealed at sealed, valid until
// sealed+skew, and reports whether it is the first time it was seen; false
// also when the set is full of handshakes still valid.
func (h *handshakes) first(frame []byte, sealed time.Time, skew time.Duration) bool {
	var mac [frameMACLen]byte
	copy(mac[:], frame[frameMACOff:])
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if until, ok := h.seen[mac]; ok && now.Before(until) {
		return false
	}
	if h.seen == nil {
		h.seen = map[[frameMACLen]byte]time.Time{}
	}
	limit := h.max
	if limit == 0 {
		limit = maxSeenHandshakes
	}
	if len(h.seen) >= limit {
		for k, until := range h.seen {
			if !now.Before(until) {
				delete(h.seen, k)
			}
		}
		if len(h.seen) >= limit {
			return false
		}
	}
	h.seen[mac] = sealed.Add(skew)
	return true
}
