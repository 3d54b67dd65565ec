package origin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/talowa/wedge/origin/wire"
)

// Session stickiness for engine.io, the transport under socket.io. An
// engine.io session lives in the memory of the application instance that
// opened it: its handshake (a request whose query names EIO but no sid)
// answers with the session's ID, and every later request of the session
// (the long polls, the messages POSTed, the upgrade to WebSocket) names it
// in the sid query parameter and must reach that instance, which answers
// any other session ID with 400.
//
// The proxy learns the ID from the handshake's answer and sends the
// session's requests to the upstream that gave it. It does not set a
// cookie of its own (as HAProxy's "cookie insert" does): socket.io clients
// outside browsers send cookies back only when told to (engine.io-client's
// withCredentials in Node, and not every client of other languages), while
// every client sends the sid. What this cannot do is share the sessions
// between several origin services in front of the same applications: the
// requests of one session must reach one origin service (one edge route
// to one origin address does that).
//
// A session whose upstream is out of rotation, or refuses the connection,
// goes to another upstream like any request; the application there does
// not know it and answers 400, and the socket.io client opens a new session,
// learned anew. Sessions are forgotten sessionIdle to twice that after their
// last request (a WebSocket session makes none after its upgrade and needs
// none), or sooner when more than maxSessions were learned within
// sessionIdle.

const (
	// sessionIdle is how long a session is kept at least after its last
	// request: far longer than engine.io's pingInterval (25 s by default),
	// the longest a polling client goes without a request.
	sessionIdle = 5 * time.Minute
	// maxSessions bounds the sessions learned within one sessionIdle.
	maxSessions = 100_000
	// maxSessionID bounds a session ID: engine.io's are 20 characters.
	maxSessionID = 64
)

// sessions maps engine.io session IDs to the index of the upstream that
// holds each. It keeps two generations: sessions used in the current
// period are in cur, those used in the one before only in old, and the
// periods turn every sessionIdle (or when cur is full), dropping old. The
// zero value is ready to use.
type sessions struct {
	mu       sync.Mutex
	cur, old map[string]int
	turned   time.Time // when cur began
}

// lookup returns the upstream holding session sid, or -1.
func (s *sessions) lookup(sid []byte, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn(now)
	if i, ok := s.cur[string(sid)]; ok {
		return i
	}
	i, ok := s.old[string(sid)]
	if !ok {
		return -1
	}
	// Still in use: keep it for the next period too.
	s.add(string(sid), i)
	return i
}

// learn records that upstream i holds session sid.
func (s *sessions) learn(sid string, i int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn(now)
	s.add(sid, i)
}

func (s *sessions) add(sid string, i int) {
	if len(s.cur) >= maxSessions {
		s.old, s.cur = s.cur, nil
	}
	if s.cur == nil {
		s.cur = map[string]int{}
	}
	s.cur[sid] = i
}

// turn starts a new period when the current one is over.
func (s *sessions) turn(now time.Time) {
	if now.Sub(s.turned) < sessionIdle {
		return
	}
	// A period that passed with no request at all drops both.
	if now.Sub(s.turned) >= 2*sessionIdle {
		s.cur = nil
	}
	s.old, s.cur, s.turned = s.cur, nil, now
}

// choose returns the upstream for req, not yet tried: the one that holds
// its engine.io session when that one is in rotation, otherwise the one
// pick chooses. The proxy's requests and its WebSocket handshakes both
// choose their upstream here.
func (p *Proxy) choose(req *wire.Request, start uint32, tried uint64) *upstream {
	if sid, ok := engineIO(req.Query); ok && len(sid) > 0 {
		if i := p.sessions.lookup(sid, time.Now()); i >= 0 {
			if u := p.ups[i]; tried&(1<<u.idx) == 0 && u.up.Load() {
				return u
			}
		}
	}
	return p.pick(start, tried)
}

// learnSession records the session that an engine.io handshake answered by
// u opened, so that the session's later requests go to u.
func (p *Proxy) learnSession(req *wire.Request, resp *wire.Response, u *upstream) {
	if resp.Status != 200 || string(req.Method) != "GET" {
		return
	}
	if sid, ok := engineIO(req.Query); !ok || len(sid) > 0 {
		return
	}
	sid, err := openSessionID(resp.Body)
	if err != nil {
		p.log.Debug("origin: engine.io handshake answer without a session", "upstream", u.name, "err", err)
		return
	}
	p.sessions.learn(sid, u.idx, time.Now())
}

// engineIO reports whether a query is engine.io's (it has an EIO
// parameter) and returns its sid parameter, empty on a handshake. A sid
// that is not a valid session ID is returned as none.
func engineIO(query []byte) (sid []byte, ok bool) {
	for len(query) > 0 {
		var param []byte
		param, query, _ = bytes.Cut(query, []byte("&"))
		name, value, _ := bytes.Cut(param, []byte("="))
		switch string(name) {
		case "EIO":
			ok = true
		case "sid":
			if validSessionID(value) {
				sid = value
			}
		}
	}
	return sid, ok
}

// openSessionID returns the session ID in the answer to an engine.io
// handshake over polling: its first packet is the open packet, "0"
// followed by a JSON object with the sid. Protocol 4 separates the packets
// of a payload with the record separator 0x1E; protocol 3 (socket.io 2)
// prefixes each with its length and a colon, as in `96:0{"sid":...}`.
func openSessionID(body []byte) (string, error) {
	packet := body
	if n, rest, ok := bytes.Cut(body, []byte(":")); ok && len(n) > 0 && len(n) <= 7 && allDigits(n) {
		size := 0
		for _, c := range n {
			size = size*10 + int(c-'0')
		}
		if size > len(rest) {
			return "", fmt.Errorf("packet of %d bytes in %d", size, len(rest))
		}
		packet = rest[:size]
	} else if i := bytes.IndexByte(body, 0x1e); i >= 0 {
		packet = body[:i]
	}
	if len(packet) < 2 || packet[0] != '0' || packet[1] != '{' {
		return "", errors.New("not an open packet")
	}
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(packet[1:], &open); err != nil {
		return "", fmt.Errorf("open packet: %w", err)
	}
	if !validSessionID([]byte(open.SID)) {
		return "", fmt.Errorf("session ID %q not valid", open.SID)
	}
	return open.SID, nil
}

// validSessionID reports whether id is 1 to maxSessionID characters a URL
// query carries as they are (RFC 3986 unreserved): engine.io's own IDs
// are base64url, and an application's custom ones (UUIDs) fit too.
func validSessionID(id []byte) bool {
	if len(id) == 0 || len(id) > maxSessionID {
		return false
	}
	for _, c := range id {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
		default:
			return false
		}
	}
	return true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
